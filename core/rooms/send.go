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
	// TxnID makes PUT /send idempotent per device.
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

// checkSendable refuses the events that have their own endpoints: the
// create event (createRoom) and redactions (the redact endpoint).
func checkSendable(evType string, stateKey *string) error {
	if evType == "m.room.create" {
		return types.Forbidden("m.room.create can only be sent by createRoom")
	}
	if stateKey == nil && evType == "m.room.redaction" {
		return types.InvalidParam("Use the redact endpoint to redact events")
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
	if err := checkSendable(req.Type, req.StateKey); err != nil {
		return "", err
	}
	if err := s.requireRoom(ctx, req.RoomID); err != nil {
		return "", err
	}
	if req.Type == "m.room.canonical_alias" && req.StateKey != nil && *req.StateKey == "" {
		if err := s.checkCanonicalAlias(ctx, req.RoomID, req.Content); err != nil {
			return "", err
		}
	}
	var txn *storage.EventTxn
	if req.TxnID != "" {
		txn = &storage.EventTxn{UserID: req.Sender, DeviceID: req.DeviceID, TxnID: txnKey(endpointSend, req.TxnID)}
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
// cannot tell an unknown room from one it is not in.
func (s *Reader) requireRoom(ctx context.Context, roomID id.RoomID) error {
	if _, err := s.store.GetRoom(ctx, roomID); err != nil {
		if storageNotFound(err) {
			return types.Forbidden("You are not in room %s", roomID)
		}
		return err
	}
	return nil
}

func storageNotFound(err error) bool { return errors.Is(err, storage.ErrNotFound) }

// Endpoints whose transaction IDs share the event_txns table.
const (
	endpointSend   = "send"
	endpointRedact = "redact"
)

// txnKey is the stored key of a client transaction ID. Transaction IDs are
// scoped to a device and one endpoint (client-server API, "Transaction
// identifiers"): the same ID on PUT /send and PUT /redact names two
// requests. /send keys are the ID itself (as stored before this scoping),
// except that IDs starting with "~" get a second "~"; other endpoints' keys
// start with "~" and a letter, so no two endpoints' keys can meet.
// clientTxnID turns a stored transaction key back into the client's ID.
func clientTxnID(key string) string {
	switch {
	case strings.HasPrefix(key, "~~"):
		return key[1:]
	case strings.HasPrefix(key, "~r"):
		return key[2:]
	}
	return key
}

func txnKey(endpoint, txnID string) string {
	switch endpoint {
	case endpointSend:
		if strings.HasPrefix(txnID, "~") {
			return "~" + txnID
		}
		return txnID
	case endpointRedact:
		return "~r" + txnID
	default:
		panic("rooms: unknown transaction endpoint " + endpoint)
	}
}

// Redact redacts an event: its sender may always, others need the redact power level.
func (s *Service) Redact(ctx context.Context, roomID id.RoomID, sender id.UserID, deviceID id.DeviceID, target id.EventID,
	reason string, txnID string) (id.EventID, error) {
	if err := types.CheckTxnID(txnID); err != nil {
		return "", err
	}
	suspended, err := s.restricted(ctx, sender, true)
	if err != nil {
		return "", err
	}
	if err := s.requireRoom(ctx, roomID); err != nil {
		return "", err
	}
	room, err := s.getRoom(ctx, roomID)
	if err != nil {
		return "", err
	}
	rv := id.RoomVersion(room.RoomVersion)
	if target, err = s.ResolveEventID(ctx, target); err != nil {
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
	content := map[string]any{}
	if reason != "" {
		content["reason"] = reason
	}
	proto := &events.Proto{Type: "m.room.redaction", Sender: sender, Content: content}
	if rv.RedactsInContent() {
		content["redacts"] = target
	} else {
		proto.Redacts = &target
	}
	var txn *storage.EventTxn
	if txnID != "" {
		txn = &storage.EventTxn{UserID: sender, DeviceID: deviceID, TxnID: txnKey(endpointRedact, txnID)}
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
