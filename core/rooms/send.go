package rooms

import (
	"context"
	"encoding/json"
	"encoding/json/jsontext"
	"errors"
	"net/http"
	"reflect"
	"strings"

	"maunium.net/go/mautrix/id"

	"github.com/tidwall/gjson"

	"github.com/tributary-hs/tributary/core/events"
	"github.com/tributary-hs/tributary/core/types"
	"github.com/tributary-hs/tributary/storage"
)

// SendRequest is a message or state event from a local client.
type SendRequest struct {
	RoomID   id.RoomID
	Sender   id.UserID
	DeviceID id.DeviceID
	Type     string
	StateKey *string // nil for message events
	Content  jsontext.Value
	// TxnID makes PUT /send idempotent per device, room and event type.
	TxnID string
	// Timestamp overrides origin_server_ts (appservice "ts"); 0 means now.
	Timestamp int64
}

// checkType validates an event type and state key from a client. Both are
// columns of their own: NUL and invalid UTF-8 are refused here, before the
// room writer, rather than by the storage of one engine.
func checkType(evType string, stateKey *string) error {
	if err := types.CheckEventType(evType); err != nil {
		return err
	}
	if stateKey != nil {
		return types.CheckStateKey(*stateKey)
	}
	return nil
}

// checkContent makes sure content is a JSON object.
func checkContent(c jsontext.Value) error {
	if t := strings.TrimSpace(string(c)); t == "" || t[0] != '{' {
		return types.BadJSON("Event content must be a JSON object")
	}
	return nil
}

// checkSendable refuses the create event, which has its own endpoint
// (createRoom). Redactions may be sent (spec v1.18, MSC4169).
func checkSendable(evType string) error {
	if evType == "m.room.create" {
		return types.Forbidden("m.room.create can only be sent by createRoom")
	}
	return nil
}

// Send persists a message or state event from a local user.
func (s *Service) Send(ctx context.Context, req *SendRequest) (id.EventID, error) {
	if err := checkType(req.Type, req.StateKey); err != nil {
		return "", err
	}
	if err := types.CheckTxnID(req.TxnID); err != nil {
		return "", err
	}
	if err := checkContent(req.Content); err != nil {
		return "", err
	}
	if err := checkSendable(req.Type); err != nil {
		return "", err
	}
	if req.Type == "m.room.redaction" && req.StateKey == nil {
		return s.sendRedaction(ctx, req)
	}
	if err := s.requireRoom(ctx, req.RoomID); err != nil {
		return "", err
	}
	if req.Type == "m.room.member" && req.StateKey != nil && gjson.GetBytes(req.Content, "membership").Str == "invite" {
		if err := s.checkInvite(ctx, req.Sender, id.UserID(*req.StateKey)); err != nil {
			return "", err
		}
	}
	if req.Type == "m.room.canonical_alias" && req.StateKey != nil && *req.StateKey == "" {
		if err := s.checkCanonicalAlias(ctx, req.RoomID, req.Content); err != nil {
			return "", err
		}
	}
	var txn *storage.EventTxn
	if req.TxnID != "" {
		txn = &storage.EventTxn{UserID: req.Sender, DeviceID: req.DeviceID, Endpoint: sendEndpoint(req.RoomID, req.Type),
			TxnID: req.TxnID}
	}
	content, err := s.resolveRefs(ctx, req.Content)
	if err != nil {
		return "", err
	}
	if req.StateKey != nil && req.Timestamp == 0 {
		if eid, ok, err := s.unchangedState(ctx, req.RoomID, req.Type, *req.StateKey, req.Sender, content); err != nil || ok {
			return eid, err
		}
	}
	return s.submit(ctx, req.RoomID, &sendReq{
		proto: &events.Proto{Type: req.Type, StateKey: req.StateKey, Sender: req.Sender, Content: jsontext.Value(content),
			OriginServerTS: req.Timestamp},
		txn: txn,
	})
}

// unchangedState finds the current state event a new one would repeat:
// same type, state key, sender and content. Sending identical state (or
// joining twice) then answers that event's ID instead of making a new
// event, as Synapse does; clients that resend state on every start do not
// grow the room.
func (s *Service) unchangedState(ctx context.Context, roomID id.RoomID, evType, stateKey string, sender id.UserID,
	content []byte) (id.EventID, bool, error) {
	cur, err := s.store.CurrentStateEvent(ctx, roomID, evType, stateKey)
	if storageNotFound(err) {
		return "", false, nil
	} else if err != nil {
		return "", false, err
	}
	ev, err := s.store.GetEvent(ctx, cur)
	if err != nil || ev.Sender != sender {
		return "", false, err
	}
	var a, b any
	if json.Unmarshal(content, &a) != nil || json.Unmarshal([]byte(gjson.GetBytes(ev.JSON, "content").Raw), &b) != nil {
		return "", false, nil
	}
	return cur, reflect.DeepEqual(a, b), nil
}

// requireRoom answers 403 for rooms this server does not know: a client
// cannot tell an unknown room from one it is not in. A room whose version
// is cached is known (DeleteRoom forgets it): every send asked storage
// before, a read that cost 6–9% of a send's CPU.
func (s *Reader) requireRoom(ctx context.Context, roomID id.RoomID) error {
	if _, ok := s.versions.get(roomID); ok {
		return nil
	}
	r, err := s.store.GetRoom(ctx, roomID)
	if err != nil {
		if storageNotFound(err) {
			return types.Forbidden("You are not in room %s", roomID)
		}
		return err
	}
	s.versions.put(roomID, id.RoomVersion(r.RoomVersion))
	return nil
}

func storageNotFound(err error) bool { return errors.Is(err, storage.ErrNotFound) }

// Transaction IDs are scoped by the device and the endpoint, its method
// and path (client-server API, "Transaction identifiers"): the same ID in
// another room, with another event type or for another redaction target is
// another request. These name the paths of the endpoints that store
// transaction IDs with their events, by their parameters: room and event
// IDs hold no spaces, so the last parameter may (event types can).

// sendEndpoint is PUT /rooms/{roomId}/send/{eventType}/{txnId}.
func sendEndpoint(roomID id.RoomID, evType string) string {
	return "send " + string(roomID) + " " + evType
}

// redactEndpoint is PUT /rooms/{roomId}/redact/{eventId}/{txnId}.
func redactEndpoint(roomID id.RoomID, target id.EventID) string {
	return "redact " + string(roomID) + " " + string(target)
}

// Redact redacts an event (PUT /rooms/{roomId}/redact/{eventId}/{txnId}):
// its sender may always, others need the redact power level.
func (s *Service) Redact(ctx context.Context, roomID id.RoomID, sender id.UserID, deviceID id.DeviceID, target id.EventID,
	reason string, txnID string) (id.EventID, error) {
	if err := types.CheckTxnID(txnID); err != nil {
		return "", err
	}
	content := map[string]jsontext.Value{}
	if reason != "" {
		raw, err := json.Marshal(reason)
		if err != nil {
			return "", err
		}
		content["reason"] = raw
	}
	return s.redact(ctx, &redaction{roomID: roomID, sender: sender, deviceID: deviceID, target: target,
		content: content, txnID: txnID})
}

// sendRedaction is an m.room.redaction sent with PUT /send (spec v1.18,
// MSC4169): its content names the target in "redacts", which moves to the
// top level of the event in room versions before 11; the rest of the
// content is kept.
func (s *Service) sendRedaction(ctx context.Context, req *SendRequest) (id.EventID, error) {
	var content map[string]jsontext.Value
	if err := json.Unmarshal(req.Content, &content); err != nil {
		return "", types.BadJSON("Event content must be a JSON object")
	}
	var target id.EventID
	if err := json.Unmarshal(content["redacts"], &target); err != nil || target == "" {
		return "", types.BadJSON("An m.room.redaction needs the event ID it redacts in content.redacts")
	}
	if err := types.CheckEventID(target); err != nil {
		return "", err
	}
	return s.redact(ctx, &redaction{roomID: req.RoomID, sender: req.Sender, deviceID: req.DeviceID, target: target,
		content: content, txnID: req.TxnID, endpoint: sendEndpoint(req.RoomID, req.Type), ts: req.Timestamp})
}

// redaction is a request to redact an event, from either endpoint.
type redaction struct {
	roomID   id.RoomID
	sender   id.UserID
	deviceID id.DeviceID
	target   id.EventID
	// content is the redaction's content; redacts is set (or removed) here.
	content map[string]jsontext.Value
	txnID   string
	// endpoint scopes txnID ("": the redact endpoint of the target).
	endpoint string
	ts       int64
}

func (s *Service) redact(ctx context.Context, r *redaction) (id.EventID, error) {
	roomID, sender := r.roomID, r.sender
	suspended, err := s.restricted(ctx, sender, true)
	if err != nil {
		return "", err
	}
	if err := s.requireRoom(ctx, roomID); err != nil {
		return "", err
	}
	rv, err := s.roomVersion(ctx, roomID)
	if err != nil {
		return "", err
	}
	target, err := s.ResolveEventID(ctx, r.target)
	if err != nil {
		return "", err
	}
	tev, err := s.store.GetEvent(ctx, target)
	if storageNotFound(err) || (err == nil && tev.RoomID != roomID) {
		return "", types.NotFound("Event not found")
	} else if err != nil {
		return "", err
	}
	if suspended && tev.Sender != sender {
		return "", types.ErrSuspended // a suspended account may redact its own events only
	}
	content := r.content
	proto := &events.Proto{Type: "m.room.redaction", Sender: sender, OriginServerTS: r.ts}
	if rv.RedactsInContent() {
		raw, err := json.Marshal(target)
		if err != nil {
			return "", err
		}
		content["redacts"] = raw
	} else {
		delete(content, "redacts")
		proto.Redacts = &target
	}
	raw, err := json.Marshal(content)
	if err != nil {
		return "", err
	}
	proto.Content = jsontext.Value(raw)
	var txn *storage.EventTxn
	if r.txnID != "" {
		endpoint := r.endpoint
		if endpoint == "" {
			endpoint = redactEndpoint(roomID, target)
		}
		txn = &storage.EventTxn{UserID: sender, DeviceID: r.deviceID, Endpoint: endpoint, TxnID: r.txnID}
	}
	return s.submit(ctx, roomID, &sendReq{proto: proto, txn: txn, redacts: target,
		check: func(b *batchState) error {
			if tev.Sender == sender {
				return nil
			}
			pl, err := s.powerLevels(ctx, b)
			if err != nil {
				return err
			}
			if pl.GetUserLevel(sender) < pl.Redact() {
				return types.NewError(http.StatusForbidden, types.CodeForbidden,
					"You need power level %d to redact other users' events", pl.Redact())
			}
			return nil
		}})
}
