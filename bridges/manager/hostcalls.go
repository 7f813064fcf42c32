package manager

import (
	"cmp"
	"context"
	"encoding/json"
	"encoding/json/jsontext"
	"errors"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	"google.golang.org/grpc"
	"maunium.net/go/mautrix/id"
	"maunium.net/go/mautrix/pushrules"

	"github.com/tributary-hs/tributary/core/push"
	"github.com/tributary-hs/tributary/core/rooms"
	"github.com/tributary-hs/tributary/core/types"
	"github.com/tributary-hs/tributary/plugins/proto"
	"github.com/tributary-hs/tributary/storage"
)

// The MatrixHost calls bridgev2's Matrix side needs beyond sending: reads,
// redactions, receipts and typing, account data, media, double puppeting
// and bridge states. Each acts as a user the plugin may act as (act) and is
// one call of the core service the client API calls for the same thing.

func (h *matrixHost) Redact(ctx context.Context, req *proto.RedactRequest) (*proto.SendEventResponse, error) {
	p, err := h.act(ctx, req.UserId)
	if err != nil {
		return nil, grpcError(err)
	}
	if err := mayAct(p); err != nil {
		return nil, grpcError(err)
	}
	evID, err := h.d.Memberships.Redact(ctx, id.RoomID(req.RoomId), p.UserID, "", id.EventID(req.EventId),
		req.Reason, req.TxnId)
	if err != nil {
		return nil, grpcError(err)
	}
	return &proto.SendEventResponse{EventId: string(evID)}, nil
}

func (h *matrixHost) EnsureJoined(ctx context.Context, req *proto.EnsureJoinedRequest) (*proto.EnsureJoinedResponse, error) {
	p, err := h.act(ctx, req.UserId)
	if err != nil {
		return nil, grpcError(err)
	}
	roomID := id.RoomID(req.RoomId)
	m, _, err := h.d.Rooms.Membership(ctx, roomID, p.UserID)
	if err != nil {
		return nil, grpcError(err)
	}
	if m == "join" {
		return &proto.EnsureJoinedResponse{}, nil
	}
	join := &rooms.MembershipRequest{RoomID: roomID, Sender: p.UserID, Target: p.UserID, Membership: "join"}
	_, err = h.d.Memberships.ChangeMembership(ctx, join)
	if err != nil && req.Inviter != "" && isForbidden(err) && m != "ban" {
		// As appservice intents do: the bot invites the ghost the room's
		// join rules keep out, then it joins.
		inviter, ierr := h.act(ctx, req.Inviter)
		if ierr != nil {
			return nil, grpcError(ierr)
		}
		if m != "invite" {
			if _, ierr = h.d.Memberships.ChangeMembership(ctx, &rooms.MembershipRequest{RoomID: roomID,
				Sender: inviter.UserID, Target: p.UserID, Membership: "invite"}); ierr != nil {
				return nil, grpcError(ierr)
			}
		}
		_, err = h.d.Memberships.ChangeMembership(ctx, join)
	}
	if err != nil {
		return nil, grpcError(err)
	}
	return &proto.EnsureJoinedResponse{Joined: true}, nil
}

func isForbidden(err error) bool {
	me, ok := types.AsError(err)
	return ok && me.Code == types.CodeForbidden
}

func (h *matrixHost) GetStateEvent(ctx context.Context, req *proto.GetStateEventRequest) (*proto.Event, error) {
	p, err := h.act(ctx, req.UserId)
	if err != nil {
		return nil, grpcError(err)
	}
	ev, err := h.d.Rooms.StateEvent(ctx, id.RoomID(req.RoomId), p.UserID, req.Type, req.StateKey)
	if err != nil {
		return nil, grpcError(err)
	}
	return toProtoEvent(ev)
}

func (h *matrixHost) GetMembers(ctx context.Context, req *proto.GetMembersRequest) (*proto.GetMembersResponse, error) {
	p, err := h.act(ctx, req.UserId)
	if err != nil {
		return nil, grpcError(err)
	}
	evs, err := h.d.Rooms.Members(ctx, id.RoomID(req.RoomId), p.UserID, rooms.MembersRequest{})
	if err != nil {
		return nil, grpcError(err)
	}
	out := &proto.GetMembersResponse{Events: make([]*proto.Event, 0, len(evs))}
	for _, ev := range evs {
		pe, err := toProtoEvent(ev)
		if err != nil {
			return nil, err
		}
		out.Events = append(out.Events, pe)
	}
	return out, nil
}

func (h *matrixHost) GetEvent(ctx context.Context, req *proto.GetEventRequest) (*proto.Event, error) {
	p, err := h.act(ctx, req.UserId)
	if err != nil {
		return nil, grpcError(err)
	}
	ev, err := h.d.Rooms.Event(ctx, id.RoomID(req.RoomId), p.UserID, id.EventID(req.EventId))
	if err != nil {
		return nil, grpcError(err)
	}
	return toProtoEvent(ev)
}

// toProtoEvent carries a client event to the plugin.
func toProtoEvent(ev *rooms.ClientEvent) (*proto.Event, error) {
	pe := &proto.Event{EventId: string(ev.EventID), RoomId: string(ev.RoomID), Sender: string(ev.Sender),
		Type: ev.Type, StateKey: ev.StateKey, OriginServerTs: ev.OriginServerTS, Content: []byte(ev.Content)}
	if len(ev.Unsigned) > 0 {
		raw, err := json.Marshal(ev.Unsigned)
		if err != nil {
			return nil, grpcError(err)
		}
		pe.Unsigned = raw
	}
	return pe, nil
}

// GetProfile answers for any user, as GET /profile does for a client.
func (h *matrixHost) GetProfile(ctx context.Context, req *proto.GetProfileRequest) (*proto.GetProfileResponse, error) {
	prof, err := h.d.Accounts.GetProfile(ctx, id.UserID(req.UserId))
	if err != nil {
		return nil, grpcError(err)
	}
	raw, err := json.Marshal(prof)
	if err != nil {
		return nil, grpcError(err)
	}
	return &proto.GetProfileResponse{Profile: raw}, nil
}

func (h *matrixHost) SetTyping(ctx context.Context, req *proto.SetTypingRequest) (*proto.Empty, error) {
	p, err := h.act(ctx, req.UserId)
	if err != nil {
		return nil, grpcError(err)
	}
	if err := h.d.Ephemeral.SetTyping(ctx, id.RoomID(req.RoomId), p.UserID, req.Typing,
		time.Duration(req.TimeoutMs)*time.Millisecond); err != nil {
		return nil, grpcError(err)
	}
	return &proto.Empty{}, nil
}

func (h *matrixHost) MarkRead(ctx context.Context, req *proto.MarkReadRequest) (*proto.Empty, error) {
	p, err := h.act(ctx, req.UserId)
	if err != nil {
		return nil, grpcError(err)
	}
	roomID, eventID := id.RoomID(req.RoomId), id.EventID(req.EventId)
	typ := req.ReceiptType
	if typ == "" {
		typ = "m.read"
	}
	if typ != "m.read" && typ != "m.read.private" {
		return nil, grpcError(types.InvalidParam("receipt_type must be m.read or m.read.private"))
	}
	if err := h.d.Ephemeral.SetReceipt(ctx, roomID, p.UserID, typ, eventID, req.ThreadId); err != nil {
		return nil, grpcError(err)
	}
	if req.FullyRead {
		if _, err := h.d.Rooms.Event(ctx, roomID, p.UserID, eventID); err != nil {
			return nil, grpcError(err)
		}
		if err := h.d.Accounts.SetFullyRead(ctx, p.UserID, roomID, eventID); err != nil {
			return nil, grpcError(err)
		}
	}
	return &proto.Empty{}, nil
}

func (h *matrixHost) SetAccountData(ctx context.Context, req *proto.SetAccountDataRequest) (*proto.Empty, error) {
	p, err := h.act(ctx, req.UserId)
	if err != nil {
		return nil, grpcError(err)
	}
	if v := jsontext.Value(req.Content); !v.IsValid() || v.Kind() != '{' {
		return nil, grpcError(types.BadJSON("content must be a JSON object"))
	}
	if err := h.d.Accounts.SetAccountData(ctx, p.UserID, p.UserID, id.RoomID(req.RoomId), req.Type,
		json.RawMessage(req.Content)); err != nil {
		return nil, grpcError(err)
	}
	return &proto.Empty{}, nil
}

func (h *matrixHost) GetAccountData(ctx context.Context, req *proto.GetAccountDataRequest) (*proto.GetAccountDataResponse, error) {
	p, err := h.act(ctx, req.UserId)
	if err != nil {
		return nil, grpcError(err)
	}
	content, err := h.d.Accounts.GetAccountData(ctx, p.UserID, p.UserID, id.RoomID(req.RoomId), req.Type)
	if err != nil {
		return nil, grpcError(err)
	}
	return &proto.GetAccountDataResponse{Content: content}, nil
}

// SetRoomMuted puts (or deletes) a room rule without actions, as clients
// mute a room.
func (h *matrixHost) SetRoomMuted(ctx context.Context, req *proto.SetRoomMutedRequest) (*proto.Empty, error) {
	p, err := h.act(ctx, req.UserId)
	if err != nil {
		return nil, grpcError(err)
	}
	if req.Muted {
		err = h.d.Push.PutRule(ctx, p.UserID, "room", req.RoomId, "", "",
			&push.RuleBody{Actions: pushrules.PushActionArray{}})
	} else if err = h.d.Push.DeleteRule(ctx, p.UserID, "room", req.RoomId); isNotFound(err) {
		err = nil
	}
	if err != nil {
		return nil, grpcError(err)
	}
	return &proto.Empty{}, nil
}

func isNotFound(err error) bool {
	me, ok := types.AsError(err)
	return ok && me.Code == types.CodeNotFound
}

// UploadMedia streams the plugin's chunks into the media repository as
// the user, within the server's upload limit and the user's quota.
func (h *matrixHost) UploadMedia(stream grpc.ClientStreamingServer[proto.UploadMediaChunk, proto.UploadMediaResponse]) error {
	ctx := stream.Context()
	first, err := stream.Recv()
	if errors.Is(err, io.EOF) {
		return grpcError(types.MissingParam("no upload"))
	} else if err != nil {
		return err
	}
	p, err := h.act(ctx, first.UserId)
	if err != nil {
		return grpcError(err)
	}
	if err := mayAct(p); err != nil {
		return grpcError(err)
	}
	size := first.Size
	if size == 0 && len(first.Data) == 0 {
		size = -1
	}
	r := &chunkReader{buf: first.Data, next: func() ([]byte, error) {
		c, err := stream.Recv()
		if err != nil {
			return nil, err
		}
		return c.Data, nil
	}}
	mxc, err := h.d.Media.Upload(ctx, p.UserID, first.ContentType, first.FileName, r, size)
	if err != nil {
		return grpcError(err)
	}
	return stream.SendAndClose(&proto.UploadMediaResponse{ContentUri: mxc})
}

// chunkReader reads a stream of chunks as one body.
type chunkReader struct {
	buf  []byte
	next func() ([]byte, error)
}

func (r *chunkReader) Read(p []byte) (int, error) {
	for len(r.buf) == 0 {
		b, err := r.next()
		if err != nil {
			return 0, err
		}
		r.buf = b
	}
	n := copy(p, r.buf)
	r.buf = r.buf[n:]
	return n, nil
}

// downloadChunk is the size of the chunks DownloadMedia sends.
const downloadChunk = 256 << 10

func (h *matrixHost) DownloadMedia(req *proto.DownloadMediaRequest, stream grpc.ServerStreamingServer[proto.DownloadMediaChunk]) error {
	server, mediaID, ok := strings.Cut(strings.TrimPrefix(req.ContentUri, "mxc://"), "/")
	if !ok || !strings.HasPrefix(req.ContentUri, "mxc://") || server == "" || mediaID == "" {
		return grpcError(types.InvalidParam("%q is not an mxc URI", req.ContentUri))
	}
	c, err := h.d.Media.Download(stream.Context(), server, mediaID, false, 0)
	if err != nil {
		return grpcError(err)
	}
	defer c.Body.Close()
	chunk := &proto.DownloadMediaChunk{ContentType: c.ContentType, FileName: c.FileName, Size: c.Size}
	buf := make([]byte, downloadChunk)
	for first := true; ; first = false {
		n, err := io.ReadFull(c.Body, buf)
		if n > 0 || first {
			chunk.Data = buf[:n]
			if serr := stream.Send(chunk); serr != nil {
				return serr
			}
			chunk = &proto.DownloadMediaChunk{}
		}
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil
		} else if err != nil {
			return grpcError(err)
		}
	}
}

// DoublePuppet vouches for a local user who uses the bridge: an active
// account of this server that no appservice claims and that shares a room
// with the plugin's bot (the user talked to the bot to log in). Without a
// shared secret, that is the host's proof the user asked for the bridge.
func (h *matrixHost) DoublePuppet(ctx context.Context, req *proto.DoublePuppetRequest) (*proto.Empty, error) {
	u := id.UserID(req.UserId)
	if h.as.OwnsUser(u) {
		return nil, grpcError(types.Forbidden("%s is the plugin's own user", u))
	}
	if err := types.CheckUserID(u, h.serverName); err != nil {
		return nil, grpcError(types.Forbidden("%s is not a user of this server", u))
	}
	if as := h.d.Exclusive.ExclusiveUser(u); as != nil {
		return nil, grpcError(types.Forbidden("%s belongs to another application service", u))
	}
	if _, err := h.puppet(ctx, u); err != nil {
		return nil, grpcError(err)
	}
	shared, err := h.d.Rooms.MutualRooms(ctx, u, h.as.Sender)
	if err != nil {
		return nil, grpcError(err)
	}
	if len(shared) == 0 {
		return nil, grpcError(types.Forbidden("%s shares no room with %s", u, h.as.Sender))
	}
	h.mu.Lock()
	h.puppets[u] = true
	h.mu.Unlock()
	h.log.Info("plugin double-puppets a local user", "plugin", h.asID, "user", u)
	return &proto.Empty{}, nil
}

// puppet is the principal of a local user the plugin acts for: refused
// once the account is gone or deactivated, restricted as the user is.
func (h *matrixHost) puppet(ctx context.Context, u id.UserID) (*types.Principal, error) {
	acc, err := h.d.Accounts.GetAccount(ctx, u)
	if err != nil {
		if isNotFound(err) {
			return nil, types.Forbidden("%s is not a user of this server", u)
		}
		return nil, err
	}
	if acc.Deactivated || acc.AppServiceID != "" {
		return nil, types.Forbidden("%s cannot be double-puppeted", u)
	}
	p := &types.Principal{Kind: types.PrincipalAppService, UserID: u, AppServiceID: h.asID}
	if p.Suspended, p.Locked, err = h.d.Accounts.Restrictions(ctx, u); err != nil {
		return nil, err
	}
	return p, nil
}

// LoginState is the latest bridge state of one login of a plugin (or, with
// no RemoteID, of the plugin's bridge as a whole).
type LoginState struct {
	State      string    `json:"state"`
	UserID     string    `json:"user_id,omitempty"`
	RemoteID   string    `json:"remote_id,omitempty"`
	RemoteName string    `json:"remote_name,omitempty"`
	Error      string    `json:"error,omitempty"`
	Message    string    `json:"message,omitempty"`
	Since      time.Time `json:"since"`
}

func (h *matrixHost) ReportBridgeState(_ context.Context, req *proto.BridgeState) (*proto.Empty, error) {
	if req.StateEvent == "" {
		return nil, grpcError(types.MissingParam("state_event is required"))
	}
	st := LoginState{State: req.StateEvent, UserID: req.UserId, RemoteID: req.RemoteId, RemoteName: req.RemoteName,
		Error: req.Error, Message: req.Message, Since: time.UnixMilli(req.Timestamp)}
	if req.Timestamp == 0 {
		st.Since = time.Now()
	}
	key := req.UserId + "\x00" + req.RemoteId
	h.mu.Lock()
	prev, had := h.states[key]
	if req.StateEvent == "LOGGED_OUT" && req.RemoteId != "" {
		delete(h.states, key)
	} else {
		h.states[key] = st
	}
	h.mu.Unlock()
	if !had || prev.State != st.State {
		h.log.Info("bridge state", "plugin", h.asID, "state", st.State, "user", st.UserID, "remote_id", st.RemoteID,
			"error", st.Error)
	}
	return &proto.Empty{}, nil
}

// loginStates lists the plugin's reported states: its logins, then the
// bridge's own (when no login reported one).
func (h *matrixHost) loginStates() []LoginState {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []LoginState
	var global *LoginState
	for _, st := range h.states {
		if st.RemoteID == "" {
			g := st
			global = &g
			continue
		}
		out = append(out, st)
	}
	if len(out) == 0 && global != nil {
		out = append(out, *global)
	}
	slices.SortFunc(out, func(a, b LoginState) int {
		return cmp.Or(cmp.Compare(a.UserID, b.UserID), cmp.Compare(a.RemoteID, b.RemoteID))
	})
	return out
}

// FindPortal hands a plugin the room an import made for one of its
// conversations. Only a room the plugin's bot is joined to is handed over:
// the import acts as the plugin (same ghost prefix) and its bot creates the
// rooms; a room some other identity made is not the plugin's to take.
func (h *matrixHost) FindPortal(ctx context.Context, req *proto.FindPortalRequest) (*proto.FindPortalResponse, error) {
	if h.d.Portals == nil {
		return nil, grpcError(types.NotFound("No portal rooms on this server"))
	}
	p, err := h.d.Portals.GetBridgePortal(ctx, req.Network, req.PortalId, req.Receiver)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, grpcError(types.NotFound("No room for portal %s", req.PortalId))
	} else if err != nil {
		return nil, grpcError(err)
	}
	bot := id.NewUserID(h.as.Reg.SenderLocalpart, h.serverName)
	m, _, err := h.d.Rooms.Membership(ctx, p.RoomID, bot)
	if err != nil {
		return nil, grpcError(err)
	}
	if m != "join" {
		return nil, grpcError(types.NotFound("The bot is not in the room of portal %s", req.PortalId))
	}
	return &proto.FindPortalResponse{RoomId: string(p.RoomID), Kind: p.Kind}, nil
}

// FindMessage hands a plugin the events an import wrote for a message of
// its network (storage.BridgeMessage), found from one of its events or
// from its portal and ID, so that bridgev2 can act on imported messages as
// on those it bridged itself. As with FindPortal, only in a portal room of
// the plugin's network that its bot is in, and only events the bot may see.
func (h *matrixHost) FindMessage(ctx context.Context, req *proto.FindMessageRequest) (*proto.FindMessageResponse, error) {
	if h.d.Portals == nil {
		return nil, grpcError(types.NotFound("No imported messages on this server"))
	}
	var p *storage.BridgePortal
	var messageID string
	var err error
	switch {
	case req.EventId != "":
		// A part of the message, or a reaction to it.
		var m *storage.BridgeMessage
		if m, err = h.d.Portals.BridgeMessageOf(ctx, id.EventID(req.EventId)); err == nil {
			messageID = m.MessageID
			p, err = h.d.Portals.GetBridgePortalByRoom(ctx, m.RoomID)
		}
	case req.PortalId != "" && req.MessageId != "":
		messageID = req.MessageId
		p, err = h.d.Portals.GetBridgePortal(ctx, req.Network, req.PortalId, req.Receiver)
	default:
		return nil, grpcError(types.InvalidParam("Name a message by event_id, or by portal_id and message_id"))
	}
	if errors.Is(err, storage.ErrNotFound) || (err == nil && p.Network != req.Network) {
		return nil, grpcError(types.NotFound("No imported message"))
	} else if err != nil {
		return nil, grpcError(err)
	}
	bot := id.NewUserID(h.as.Reg.SenderLocalpart, h.serverName)
	if m, _, err := h.d.Rooms.Membership(ctx, p.RoomID, bot); err != nil {
		return nil, grpcError(err)
	} else if m != "join" {
		return nil, grpcError(types.NotFound("The bot is not in the room of portal %s", p.PortalID))
	}
	parts, err := h.d.Portals.BridgeMessageParts(ctx, p.RoomID, messageID)
	if err != nil {
		return nil, grpcError(err)
	}
	resp := &proto.FindMessageResponse{PortalId: p.PortalID, Receiver: p.Receiver, RoomId: string(p.RoomID), MessageId: messageID}
	for _, part := range parts {
		ev, err := h.d.Rooms.Event(ctx, p.RoomID, bot, part.EventID)
		var te *types.Error
		if errors.Is(err, storage.ErrNotFound) || (errors.As(err, &te) && te.Status == http.StatusNotFound) {
			continue // redacted away or purged: not a part to act on
		} else if err != nil {
			return nil, grpcError(err)
		}
		mp := &proto.MessagePart{PartId: part.PartID, EventId: string(part.EventID),
			Sender: string(ev.Sender), Timestamp: ev.OriginServerTS, Alias: string(part.Alias),
			SenderId: part.SenderID}
		// A part in a thread names the thread's root message: a network
		// may need it to reach the message (a Discord thread is a
		// channel of its own).
		if rel := relationOf(ev.Content); rel.RelType == "m.thread" && rel.EventID != "" {
			if root, err := h.d.Portals.BridgeMessageOf(ctx, rel.EventID); err == nil && root.RoomID == p.RoomID {
				mp.ThreadRoot = root.MessageID
			} else if err != nil && !errors.Is(err, storage.ErrNotFound) {
				return nil, grpcError(err)
			}
		}
		resp.Parts = append(resp.Parts, mp)
	}
	if len(resp.Parts) == 0 {
		return nil, grpcError(types.NotFound("No imported message %s", messageID))
	}
	reactions, err := h.d.Portals.BridgeMessageReactions(ctx, p.RoomID, messageID)
	if err != nil {
		return nil, grpcError(err)
	}
	for _, r := range reactions {
		ev, err := h.d.Rooms.Event(ctx, p.RoomID, bot, r.EventID)
		var te *types.Error
		if errors.Is(err, storage.ErrNotFound) || (errors.As(err, &te) && te.Status == http.StatusNotFound) {
			continue
		} else if err != nil {
			return nil, grpcError(err)
		}
		// A redacted reaction (its key gone) is listed too: the plugin is
		// told of a redaction after it was applied, and asks then.
		key := relationOf(ev.Content).Key
		resp.Reactions = append(resp.Reactions, &proto.MessageReaction{PartId: r.PartID, EventId: string(r.EventID),
			Alias: string(r.Alias), Sender: string(ev.Sender), SenderId: r.SenderID, EmojiId: r.EmojiID, Emoji: key,
			Timestamp: ev.OriginServerTS})
	}
	return resp, nil
}

// relation is an event's m.relates_to, as far as FindMessage reads it.
type relation struct {
	RelType string     `json:"rel_type"`
	EventID id.EventID `json:"event_id"`
	Key     string     `json:"key"`
}

// relationOf is the m.relates_to of an event's content (empty if it has
// none, as a redacted reaction).
func relationOf(content []byte) relation {
	var c struct {
		RelatesTo relation `json:"m.relates_to"`
	}
	_ = json.Unmarshal(content, &c)
	return c.RelatesTo
}
