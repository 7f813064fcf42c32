package importer

import (
	"context"
	"encoding/json"
	"encoding/json/jsontext"
	"errors"
	"fmt"
	"io"
	"time"

	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/core/bridging"
	"github.com/tributary-hs/tributary/core/rooms"
	"github.com/tributary-hs/tributary/core/types"
	"github.com/tributary-hs/tributary/storage"
)

// Contract is the appservice contract (core/bridging.Service).
type Contract interface {
	Masquerade(ctx context.Context, asID string, user id.UserID, deviceID id.DeviceID) (*types.Principal, error)
	Send(ctx context.Context, caller *types.Principal, req bridging.SendRequest) (id.EventID, error)
	Import(ctx context.Context, asID string, roomID id.RoomID, evs []*bridging.BatchEvent) ([]id.EventID, error)
}

// Accounts registers ghosts and keeps profiles (core/users.Service).
type Accounts interface {
	GetAccount(ctx context.Context, userID id.UserID) (*storage.Account, error)
	EnsureAppServiceSender(ctx context.Context, asID string, userID id.UserID) error
	GetProfile(ctx context.Context, userID id.UserID) (map[string]json.RawMessage, error)
	SetProfileField(ctx context.Context, caller, userID id.UserID, key string, value any) error
}

// Rooms creates rooms and carries profile changes into them
// (core/rooms.Service).
type Rooms interface {
	CreateRoom(ctx context.Context, req *rooms.CreateRequest) (id.RoomID, error)
	ProfileChanged(ctx context.Context, user id.UserID) error
}

// Media stores uploads (core/media.Service).
type Media interface {
	Upload(ctx context.Context, user id.UserID, contentType, fileName string, body io.Reader, declared int64) (string, error)
	MXC(mediaID string) string
}

// Store is what Local reads and records directly.
type Store interface {
	storage.BridgePortals
	RoomMembers(ctx context.Context, roomID id.RoomID, memberships []string) ([]storage.CurrentMember, error)
	ResolveEventAliases(ctx context.Context, aliases []id.EventID) (map[id.EventID]id.EventID, error)
}

// Owns reports whether a user is in an appservice's namespace.
type Owns func(asID string, user id.UserID) bool

// LocalDeps are what Local acts through.
type LocalDeps struct {
	// Identities are the identities of the networks an import may be of.
	Identities map[string]*Identity
	Owns       Owns
	Contract   Contract
	Accounts   Accounts
	Rooms      Rooms
	// Media may be nil: uploads are then refused.
	Media Media
	Store Store
}

// Local is the Target of the core services in this process, for one
// network's import.
type Local struct {
	d       LocalDeps
	network string
	ident   *Identity
}

var _ Target = (*Local)(nil)

// NewLocal builds the target of a network's import.
func NewLocal(d LocalDeps, network string) (*Local, error) {
	if d.Owns == nil || d.Contract == nil || d.Accounts == nil || d.Rooms == nil || d.Store == nil {
		return nil, errors.New("importer: owns, contract, accounts, rooms and store are required")
	}
	ident := d.Identities[network]
	if ident == nil {
		return nil, types.InvalidParam("No import identity for network %q", network)
	}
	return &Local{d: d, network: network, ident: ident}, nil
}

// Identity implements Target; the bot's account is made on first use (a
// server that never imports has none).
func (l *Local) Identity(ctx context.Context) (*Identity, error) {
	if err := l.d.Accounts.EnsureAppServiceSender(ctx, l.ident.AppServiceID, l.ident.Bot); err != nil {
		return nil, err
	}
	return l.ident, nil
}

func (l *Local) Portal(ctx context.Context, portalID string) (*Portal, error) {
	p, err := l.d.Store.GetBridgePortal(ctx, l.network, portalID, "")
	if errors.Is(err, storage.ErrNotFound) {
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	return portalOf(p), nil
}

func portalOf(p *storage.BridgePortal) *Portal {
	return &Portal{PortalID: p.PortalID, RoomID: p.RoomID, Kind: p.Kind, Cursor: p.ImportCursor, Meta: p.ImportMeta}
}

func (l *Local) CreatePortal(ctx context.Context, req *CreatePortal) (*Portal, error) {
	if req.PortalID == "" || req.Kind == "" {
		return nil, types.MissingParam("A portal needs an ID and a kind")
	}
	if existing, err := l.Portal(ctx, req.PortalID); err != nil || existing != nil {
		return existing, err
	}
	var cr rooms.CreateRequest
	if len(req.Room) > 0 {
		if err := json.Unmarshal(req.Room, &cr); err != nil {
			return nil, types.BadJSON("room: %v", err)
		}
	}
	cr.Creator, cr.Timestamp = l.ident.Bot, req.Timestamp
	roomID, err := l.d.Rooms.CreateRoom(ctx, &cr)
	if err != nil {
		return nil, err
	}
	p := &storage.BridgePortal{Network: l.network, PortalID: req.PortalID, RoomID: roomID, Kind: req.Kind,
		CreatedTS: time.Now().UnixMilli()}
	if err := l.d.Store.CreateBridgePortal(ctx, p); errors.Is(err, storage.ErrConflict) {
		// Another import made the portal meanwhile: its room is the one.
		if existing, gerr := l.Portal(ctx, req.PortalID); gerr == nil && existing != nil {
			return existing, nil
		}
		return nil, err
	} else if err != nil {
		return nil, fmt.Errorf("record portal %s (room %s): %w", req.PortalID, roomID, err)
	}
	return portalOf(p), nil
}

func (l *Local) SetImportCursor(ctx context.Context, portalID, cursor, meta string) error {
	return l.d.Store.SetBridgePortalImport(ctx, l.network, portalID, "", cursor, meta)
}

func (l *Local) EnsureGhost(ctx context.Context, g *Ghost) error {
	asID := l.ident.AppServiceID
	if !l.d.Owns(asID, g.UserID) || g.UserID == l.ident.Bot {
		return types.Forbidden("%s is not a ghost of the %s import's namespace", g.UserID, l.network)
	}
	existed := true
	if _, err := l.d.Accounts.GetAccount(ctx, g.UserID); err != nil {
		if me, ok := types.AsError(err); !ok || me.Code != types.CodeNotFound {
			return err
		}
		existed = false
		if err := l.d.Accounts.EnsureAppServiceSender(ctx, asID, g.UserID); err != nil {
			return err
		}
	}
	prof, err := l.d.Accounts.GetProfile(ctx, g.UserID)
	if err != nil {
		return err
	}
	changed := false
	for _, f := range []struct{ key, want string }{{"displayname", g.DisplayName}, {"avatar_url", g.AvatarURL}} {
		var have string
		_ = json.Unmarshal(prof[f.key], &have)
		if f.want == "" || have == f.want {
			continue
		}
		if err := l.d.Accounts.SetProfileField(ctx, g.UserID, g.UserID, f.key, f.want); err != nil {
			return err
		}
		changed = true
	}
	if changed && existed {
		// The ghost's rooms show the new profile, as the profile routes do.
		_ = l.d.Rooms.ProfileChanged(ctx, g.UserID)
	}
	return nil
}

func (l *Local) Profile(ctx context.Context, user id.UserID) (*Ghost, error) {
	acc, err := l.d.Accounts.GetAccount(ctx, user)
	if err != nil {
		return nil, err
	}
	if acc.Deactivated {
		return nil, types.NotFound("%s is deactivated", user)
	}
	prof, err := l.d.Accounts.GetProfile(ctx, user)
	if err != nil {
		return nil, err
	}
	g := &Ghost{UserID: user}
	_ = json.Unmarshal(prof["displayname"], &g.DisplayName)
	_ = json.Unmarshal(prof["avatar_url"], &g.AvatarURL)
	return g, nil
}

func (l *Local) Joined(ctx context.Context, roomID id.RoomID) ([]id.UserID, error) {
	ms, err := l.d.Store.RoomMembers(ctx, roomID, []string{"join"})
	if err != nil {
		return nil, err
	}
	out := make([]id.UserID, len(ms))
	for i, m := range ms {
		out[i] = m.UserID
	}
	return out, nil
}

func (l *Local) Media(ctx context.Context, remoteID string) (string, error) {
	mxc, err := l.d.Store.GetBridgeMedia(ctx, l.network, remoteID)
	if errors.Is(err, storage.ErrNotFound) {
		return "", nil
	}
	return mxc, err
}

func (l *Local) Upload(ctx context.Context, up *Upload, body io.Reader) (string, error) {
	if l.d.Media == nil {
		return "", types.NewError(503, types.CodeUnknown, "No media repository")
	}
	if _, err := l.d.Accounts.GetAccount(ctx, up.Owner); err != nil {
		return "", err
	}
	mediaID, err := l.d.Media.Upload(ctx, up.Owner, up.ContentType, up.FileName, body, up.Size)
	if err != nil {
		return "", err
	}
	mxc := l.d.Media.MXC(mediaID)
	if up.RemoteID != "" {
		if err := l.d.Store.PutBridgeMedia(ctx, l.network, up.RemoteID, mxc); err != nil {
			return "", err
		}
	}
	return mxc, nil
}

func (l *Local) BatchSend(ctx context.Context, roomID id.RoomID, evs []*Event) ([]id.EventID, error) {
	bes := make([]*bridging.BatchEvent, len(evs))
	for i, ev := range evs {
		if ev == nil {
			return nil, types.BadJSON("Event %d is null", i)
		}
		bes[i] = &bridging.BatchEvent{EventID: ev.Alias, Type: ev.Type, StateKey: ev.StateKey, Sender: ev.Sender,
			Content: ev.Content, OriginServerTS: ev.OriginServerTS}
		if ev.Message != "" && ev.Alias != "" && (ev.Type != "m.reaction" || ev.Emoji != "" && ev.SenderID != "") {
			// Recorded with the event's alias, in the batch's transaction.
			bes[i].Message = &storage.BridgeMessage{MessageID: ev.Message, PartID: ev.Part, SenderID: ev.SenderID,
				EmojiID: ev.Emoji}
		}
	}
	return l.d.Contract.Import(ctx, l.ident.AppServiceID, roomID, bes)
}

func (l *Local) ResolveAliases(ctx context.Context, aliases []id.EventID) (map[id.EventID]id.EventID, error) {
	return l.d.Store.ResolveEventAliases(ctx, aliases)
}

func (l *Local) SendState(ctx context.Context, roomID id.RoomID, sender id.UserID, evType, stateKey string,
	content jsontext.Value) (id.EventID, error) {
	p, err := l.d.Contract.Masquerade(ctx, l.ident.AppServiceID, sender, "")
	if err != nil {
		return "", err
	}
	return l.d.Contract.Send(ctx, p, bridging.SendRequest{RoomID: roomID, Type: evType, StateKey: &stateKey, Content: content})
}
