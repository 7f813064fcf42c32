package manager

import (
	"context"
	"encoding/json"
	"encoding/json/jsontext"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/appservice/registry"
	"github.com/tributary-hs/tributary/core/bridging"
	"github.com/tributary-hs/tributary/core/media"
	"github.com/tributary-hs/tributary/core/push"
	"github.com/tributary-hs/tributary/core/rooms"
	"github.com/tributary-hs/tributary/core/types"
	"github.com/tributary-hs/tributary/core/users"
	"github.com/tributary-hs/tributary/plugins/proto"
	"github.com/tributary-hs/tributary/storage"
)

// Contract is the appservice contract (core/bridging.Service): whom the
// plugin may act as, and sending with a timestamp.
type Contract interface {
	Masquerade(ctx context.Context, asID string, user id.UserID, deviceID id.DeviceID) (*types.Principal, error)
	Send(ctx context.Context, caller *types.Principal, req bridging.SendRequest) (id.EventID, error)
	BatchSend(ctx context.Context, asID string, roomID id.RoomID, req *bridging.BatchRequest) ([]id.EventID, error)
}

// Accounts creates the plugin's users, sets their profiles and account
// data (core/users.Service).
type Accounts interface {
	EnsureAppServiceSender(ctx context.Context, asID string, userID id.UserID) error
	SetProfileField(ctx context.Context, caller, userID id.UserID, key string, value any) error
	GetProfile(ctx context.Context, userID id.UserID) (map[string]json.RawMessage, error)
	GetAccount(ctx context.Context, userID id.UserID) (*users.Account, error)
	Restrictions(ctx context.Context, userID id.UserID) (suspended, locked bool, err error)
	SetAccountData(ctx context.Context, caller, userID id.UserID, roomID id.RoomID, dataType string, content json.RawMessage) error
	GetAccountData(ctx context.Context, caller, userID id.UserID, roomID id.RoomID, dataType string) (json.RawMessage, error)
	SetFullyRead(ctx context.Context, userID id.UserID, roomID id.RoomID, eventID id.EventID) error
}

// Memberships changes memberships, creates rooms, redacts and carries
// profile changes into rooms (core/rooms.Service).
type Memberships interface {
	ChangeMembership(ctx context.Context, req *rooms.MembershipRequest) (id.EventID, error)
	ProfileChanged(ctx context.Context, user id.UserID) error
	CreateRoom(ctx context.Context, req *rooms.CreateRequest) (id.RoomID, error)
	Redact(ctx context.Context, roomID id.RoomID, sender id.UserID, deviceID id.DeviceID, target id.EventID,
		reason string, txnID string) (id.EventID, error)
}

// RoomReader reads rooms as a user sees them (core/rooms.Reader).
type RoomReader interface {
	Membership(ctx context.Context, roomID id.RoomID, user id.UserID) (string, id.EventID, error)
	StateEvent(ctx context.Context, roomID id.RoomID, user id.UserID, evType, stateKey string) (*rooms.ClientEvent, error)
	Members(ctx context.Context, roomID id.RoomID, user id.UserID, req rooms.MembersRequest) ([]*rooms.ClientEvent, error)
	Event(ctx context.Context, roomID id.RoomID, user id.UserID, eventID id.EventID) (*rooms.ClientEvent, error)
	MutualRooms(ctx context.Context, user, other id.UserID) ([]id.RoomID, error)
}

// Ephemeral sets typing notifications and receipts (core/ephemeral.Service).
type Ephemeral interface {
	SetTyping(ctx context.Context, roomID id.RoomID, user id.UserID, typing bool, timeout time.Duration) error
	SetReceipt(ctx context.Context, roomID id.RoomID, user id.UserID, receiptType string, eventID id.EventID, threadID string) error
}

// PushRules mutes rooms (core/push.Service).
type PushRules interface {
	PutRule(ctx context.Context, user id.UserID, kind, ruleID, before, after string, body *push.RuleBody) error
	DeleteRule(ctx context.Context, user id.UserID, kind, ruleID string) error
}

// Media is the media repository (core/media.Service).
type Media interface {
	Upload(ctx context.Context, user id.UserID, contentType, fileName string, body io.Reader, declared int64) (string, error)
	Download(ctx context.Context, server, mediaID string, legacy bool, wait time.Duration) (*media.Content, error)
	MaxUploadBytes() int64
}

// Exclusive says which appservice claims a user exclusively
// (appservice/registry.Registry).
type Exclusive interface {
	ExclusiveUser(u id.UserID) *registry.AppService
}

// Portals finds the rooms `tributary import` made for the conversations of
// a network, and the messages it wrote in them (storage.BridgePortals).
type Portals interface {
	GetBridgePortal(ctx context.Context, network, portalID, receiver string) (*storage.BridgePortal, error)
	GetBridgePortalByRoom(ctx context.Context, roomID id.RoomID) (*storage.BridgePortal, error)
	BridgeMessageOf(ctx context.Context, eventID id.EventID) (*storage.BridgeMessage, error)
	BridgeMessageParts(ctx context.Context, roomID id.RoomID, messageID string) ([]*storage.BridgeMessage, error)
	BridgeMessageReactions(ctx context.Context, roomID id.RoomID, messageID string) ([]*storage.BridgeMessage, error)
}

// HostDeps are the core services MatrixHost calls: the ones the appservice
// HTTP routes call, so a plugin meets the same rules as an HTTP bridge.
type HostDeps struct {
	Contract    Contract
	Accounts    Accounts
	Memberships Memberships
	Rooms       RoomReader
	Ephemeral   Ephemeral
	Push        PushRules
	Media       Media
	Exclusive   Exclusive
	// Portals are the portal rooms `tributary import` made; nil: none.
	Portals Portals
	// DefaultRoomVersion is the version of rooms created without one.
	DefaultRoomVersion string
}

// matrixHost is one plugin's MatrixHost.
type matrixHost struct {
	proto.UnimplementedMatrixHostServer
	asID       string
	as         *registry.AppService
	serverName string
	d          HostDeps
	log        *slog.Logger

	mu sync.Mutex
	// puppets are the local users the host vouched for (DoublePuppet).
	puppets map[id.UserID]bool
	// states are the latest bridge states the plugin reported, by login
	// ("" for the bridge's own).
	states map[string]LoginState
}

var _ proto.MatrixHostServer = (*matrixHost)(nil)

func newMatrixHost(asID string, as *registry.AppService, serverName string, d HostDeps, log *slog.Logger) *matrixHost {
	return &matrixHost{asID: asID, as: as, serverName: serverName, d: d, log: log,
		puppets: map[id.UserID]bool{}, states: map[string]LoginState{}}
}

// act is the principal of the plugin acting as user: its bot or a ghost,
// as an appservice masquerades, or a local user the host vouched for
// (DoublePuppet), as a double-puppeting appservice acts for its users.
func (h *matrixHost) act(ctx context.Context, user string) (*types.Principal, error) {
	u := id.UserID(user)
	if !h.as.OwnsUser(u) && h.isPuppet(u) {
		return h.puppet(ctx, u)
	}
	return h.d.Contract.Masquerade(ctx, h.asID, u, "")
}

// isPuppet: the host vouched for the user (DoublePuppet).
func (h *matrixHost) isPuppet(u id.UserID) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.puppets[u]
}

func (h *matrixHost) EnsureRegistered(ctx context.Context, req *proto.EnsureRegisteredRequest) (*proto.EnsureRegisteredResponse, error) {
	u := id.UserID(req.UserId)
	if !h.as.OwnsUser(u) {
		return nil, grpcError(types.Forbidden("%s is not in the plugin's namespace", u))
	}
	if err := h.d.Accounts.EnsureAppServiceSender(ctx, h.asID, u); err != nil {
		return nil, grpcError(err)
	}
	return &proto.EnsureRegisteredResponse{}, nil
}

func (h *matrixHost) SendEvent(ctx context.Context, req *proto.SendEventRequest) (*proto.SendEventResponse, error) {
	return h.send(ctx, req.UserId, bridging.SendRequest{RoomID: id.RoomID(req.RoomId), Type: req.Type,
		Content: jsontext.Value(req.Content), TxnID: req.TxnId, Timestamp: req.Timestamp})
}

func (h *matrixHost) SendState(ctx context.Context, req *proto.SendStateRequest) (*proto.SendEventResponse, error) {
	key := req.StateKey
	return h.send(ctx, req.UserId, bridging.SendRequest{RoomID: id.RoomID(req.RoomId), Type: req.Type,
		StateKey: &key, Content: jsontext.Value(req.Content), Timestamp: req.Timestamp})
}

func (h *matrixHost) send(ctx context.Context, user string, req bridging.SendRequest) (*proto.SendEventResponse, error) {
	if len(req.Content) == 0 || !jsontext.Value(req.Content).IsValid() || jsontext.Value(req.Content).Kind() != '{' {
		return nil, grpcError(types.BadJSON("content must be a JSON object"))
	}
	p, err := h.act(ctx, user)
	if err != nil {
		return nil, grpcError(err)
	}
	evID, err := h.d.Contract.Send(ctx, p, req)
	if err != nil {
		return nil, grpcError(err)
	}
	return &proto.SendEventResponse{EventId: string(evID)}, nil
}

func (h *matrixHost) SetMembership(ctx context.Context, req *proto.SetMembershipRequest) (*proto.SendEventResponse, error) {
	p, err := h.act(ctx, req.UserId)
	if err != nil {
		return nil, grpcError(err)
	}
	mr := &rooms.MembershipRequest{RoomID: id.RoomID(req.RoomId), Sender: p.UserID, Target: p.UserID,
		Reason: req.Reason}
	if p.Kind == types.PrincipalAppService {
		mr.Timestamp = req.Timestamp
	}
	target := id.UserID(req.Target)
	switch req.Membership {
	case proto.Membership_MEMBERSHIP_JOIN:
		mr.Membership = "join"
	case proto.Membership_MEMBERSHIP_LEAVE:
		mr.Membership = "leave"
		if target != "" {
			mr.Target = target // a kick when it is someone else
		}
	case proto.Membership_MEMBERSHIP_INVITE:
		mr.Membership, mr.Target = "invite", target
	case proto.Membership_MEMBERSHIP_BAN:
		mr.Membership, mr.Target = "ban", target
	default:
		return nil, status.Error(codes.InvalidArgument, "membership must be join, leave, invite or ban")
	}
	if mr.Target == "" {
		return nil, grpcError(types.MissingParam("target is required"))
	}
	evID, err := h.d.Memberships.ChangeMembership(ctx, mr)
	if err != nil {
		return nil, grpcError(err)
	}
	return &proto.SendEventResponse{EventId: string(evID)}, nil
}

func (h *matrixHost) SetProfile(ctx context.Context, req *proto.SetProfileRequest) (*proto.SetProfileResponse, error) {
	p, err := h.act(ctx, req.UserId)
	if err != nil {
		return nil, grpcError(err)
	}
	for key, v := range map[string]*string{"displayname": req.Displayname, "avatar_url": req.AvatarUrl} {
		if v == nil {
			continue
		}
		if err := h.d.Accounts.SetProfileField(ctx, p.UserID, p.UserID, key, *v); err != nil {
			return nil, grpcError(err)
		}
	}
	if req.Displayname != nil || req.AvatarUrl != nil {
		// As the profile routes do: a room refusing the update does not
		// undo the profile.
		_ = h.d.Memberships.ProfileChanged(ctx, p.UserID)
	}
	return &proto.SetProfileResponse{}, nil
}

func (h *matrixHost) CreateRoom(ctx context.Context, req *proto.CreateRoomRequest) (*proto.CreateRoomResponse, error) {
	p, err := h.act(ctx, req.UserId)
	if err != nil {
		return nil, grpcError(err)
	}
	if err := mayAct(p); err != nil {
		return nil, grpcError(err)
	}
	var cr rooms.CreateRequest
	if len(req.Request) > 0 {
		if err := json.Unmarshal(req.Request, &cr); err != nil {
			return nil, grpcError(types.BadJSON("request: %v", err))
		}
	}
	cr.Creator, cr.Timestamp = p.UserID, req.Timestamp
	roomID, err := h.d.Memberships.CreateRoom(ctx, &cr)
	if err != nil {
		return nil, grpcError(err)
	}
	return &proto.CreateRoomResponse{RoomId: string(roomID)}, nil
}

func (h *matrixHost) BatchSend(ctx context.Context, req *proto.BatchSendRequest) (*proto.BatchSendResponse, error) {
	br := &bridging.BatchRequest{Forward: req.Forward, ForwardIfNoMessages: req.ForwardIfNoMessages,
		SendNotification: req.SendNotification, MarkReadBy: id.UserID(req.MarkReadBy),
		Events: make([]*bridging.BatchEvent, 0, len(req.Events))}
	for _, ev := range req.Events {
		if u := id.UserID(ev.Sender); !h.as.OwnsUser(u) && h.isPuppet(u) {
			// A double-puppeted user's own messages in the history.
			if br.Puppets == nil {
				br.Puppets = map[id.UserID]bool{}
			}
			if !br.Puppets[u] {
				if _, err := h.puppet(ctx, u); err != nil {
					return nil, grpcError(err)
				}
				br.Puppets[u] = true
			}
		}
		br.Events = append(br.Events, &bridging.BatchEvent{EventID: id.EventID(ev.EventId), Type: ev.Type,
			StateKey: ev.StateKey, Sender: id.UserID(ev.Sender), Content: jsontext.Value(ev.Content),
			OriginServerTS: ev.OriginServerTs})
	}
	ids, err := h.d.Contract.BatchSend(ctx, h.asID, id.RoomID(req.RoomId), br)
	if err != nil {
		return nil, grpcError(err)
	}
	out := &proto.BatchSendResponse{EventIds: make([]string, len(ids))}
	for i, evID := range ids {
		out.EventIds[i] = string(evID)
	}
	return out, nil
}

// mayAct refuses a suspended or locked user, as core/bridging does for
// sends (room creation has no such check of its own).
func mayAct(p *types.Principal) error {
	switch {
	case p.Locked:
		return types.ErrLocked
	case p.Suspended:
		return types.ErrSuspended
	}
	return nil
}

// grpcError carries a Matrix error to the plugin: the status code follows
// the HTTP status, the message starts with the errcode.
func grpcError(err error) error {
	me, ok := types.AsError(err)
	if !ok {
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			return status.FromContextError(err).Err()
		}
		return status.Error(codes.Internal, "internal error")
	}
	code := codes.Unknown
	switch me.Status {
	case http.StatusBadRequest:
		code = codes.InvalidArgument
	case http.StatusUnauthorized, http.StatusForbidden:
		code = codes.PermissionDenied
	case http.StatusNotFound:
		code = codes.NotFound
	case http.StatusConflict:
		code = codes.AlreadyExists
	case http.StatusTooManyRequests:
		code = codes.ResourceExhausted
	case http.StatusInternalServerError:
		code = codes.Internal
	}
	return status.Error(code, me.Code+": "+me.Message)
}
