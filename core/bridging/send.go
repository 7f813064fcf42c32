package bridging

import (
	"context"
	"encoding/json/jsontext"

	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/core/rooms"
	"github.com/tributary-hs/tributary/core/types"
)

// SendRequest is a message event (StateKey nil) or state event its caller
// sends (PUT /rooms/{roomId}/send/… and /state/…).
type SendRequest struct {
	RoomID   id.RoomID
	Type     string
	StateKey *string
	Content  jsontext.Value
	// TxnID makes a message send idempotent per device.
	TxnID string
	// Timestamp is the origin_server_ts asked for (?ts=), in milliseconds:
	// 0 for none, negative for a value that is not a timestamp. Only an
	// appservice's counts; anyone else's is ignored, as the spec has it.
	Timestamp int64
}

// Send persists an event as caller — any caller, because whether the
// timestamp counts depends on who asks. Suspended and locked accounts may
// not send (an appservice acting as one is refused just the same).
func (s *Service) Send(ctx context.Context, caller *types.Principal, req SendRequest) (id.EventID, error) {
	if err := mayAct(caller); err != nil {
		return "", err
	}
	ts := req.Timestamp
	switch {
	case caller.Kind != types.PrincipalAppService:
		ts = 0
	case ts < 0:
		return "", types.InvalidParam("ts must be a timestamp in milliseconds")
	}
	return s.rooms.Send(ctx, &rooms.SendRequest{RoomID: req.RoomID, Sender: caller.UserID,
		DeviceID: caller.DeviceID, Type: req.Type, StateKey: req.StateKey, Content: req.Content, TxnID: req.TxnID,
		Timestamp: ts})
}

// mayAct refuses a locked or suspended caller the way core/httpx and the
// client API refuse their own requests.
func mayAct(caller *types.Principal) error {
	switch {
	case caller == nil || caller.UserID == "":
		return types.Forbidden("No caller")
	case caller.Locked:
		return types.ErrLocked
	case caller.Suspended:
		return types.ErrSuspended
	}
	return nil
}
