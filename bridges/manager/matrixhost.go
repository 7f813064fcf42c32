package manager

import (
	"context"
	"encoding/json"
	"encoding/json/jsontext"
	"errors"
	"net/http"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/appservice/registry"
	"github.com/tributary-hs/tributary/core/bridging"
	"github.com/tributary-hs/tributary/core/rooms"
	"github.com/tributary-hs/tributary/core/types"
	"github.com/tributary-hs/tributary/plugins/proto"
)

// Contract is the appservice contract (core/bridging.Service): whom the
// plugin may act as, and sending with a timestamp.
type Contract interface {
	Masquerade(ctx context.Context, asID string, user id.UserID, deviceID id.DeviceID) (*types.Principal, error)
	Send(ctx context.Context, caller *types.Principal, req bridging.SendRequest) (id.EventID, error)
	BatchSend(ctx context.Context, asID string, roomID id.RoomID, req *bridging.BatchRequest) ([]id.EventID, error)
}

// Accounts creates the plugin's users and sets their profiles
// (core/users.Service).
type Accounts interface {
	EnsureAppServiceSender(ctx context.Context, asID string, userID id.UserID) error
	SetProfileField(ctx context.Context, caller, userID id.UserID, key string, value any) error
}

// Memberships changes memberships and carries profile changes into rooms
// (core/rooms.Service).
type Memberships interface {
	ChangeMembership(ctx context.Context, req *rooms.MembershipRequest) (id.EventID, error)
	ProfileChanged(ctx context.Context, user id.UserID) error
	CreateRoom(ctx context.Context, req *rooms.CreateRequest) (id.RoomID, error)
}

// HostDeps are the core services MatrixHost calls: the ones the appservice
// HTTP routes call, so a plugin meets the same rules as an HTTP bridge.
type HostDeps struct {
	Contract    Contract
	Accounts    Accounts
	Memberships Memberships
}

// matrixHost is one plugin's MatrixHost.
type matrixHost struct {
	proto.UnimplementedMatrixHostServer
	asID string
	as   *registry.AppService
	d    HostDeps
}

var _ proto.MatrixHostServer = (*matrixHost)(nil)

// act is the principal of the plugin acting as user (its bot or a ghost).
func (h *matrixHost) act(ctx context.Context, user string) (*types.Principal, error) {
	return h.d.Contract.Masquerade(ctx, h.asID, id.UserID(user), "")
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
	switch req.Membership {
	case proto.Membership_MEMBERSHIP_JOIN:
		mr.Membership = "join"
	case proto.Membership_MEMBERSHIP_LEAVE:
		mr.Membership = "leave"
	case proto.Membership_MEMBERSHIP_INVITE:
		mr.Membership, mr.Target = "invite", id.UserID(req.Target)
	default:
		return nil, status.Error(codes.InvalidArgument, "membership must be join, leave or invite")
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
