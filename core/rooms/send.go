package rooms

import (
	"context"
	"encoding/json/jsontext"
	"errors"
	"net/http"
	"strings"

	"maunium.net/go/mautrix/id"

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

// checkType validates an event type and state key from a client.
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
	if len(c) == 0 || strings.TrimSpace(string(c))[0] != '{' {
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
		txn = &storage.EventTxn{UserID: req.Sender, DeviceID: req.DeviceID, Endpoint: sendEndpoint(req.RoomID, req.Type),
			TxnID: req.TxnID}
	}
	content, err := s.resolveRefs(ctx, req.Content)
	if err != nil {
		return "", err
	}
	return s.submit(ctx, req.RoomID, &sendReq{
		proto: &events.Proto{Type: req.Type, StateKey: req.StateKey, Sender: req.Sender, Content: jsontext.Value(content),
			OriginServerTS: req.Timestamp},
		txn: txn,
	})
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

// Redact redacts an event: its sender may always, others need the redact power level.
func (s *Service) Redact(ctx context.Context, roomID id.RoomID, sender id.UserID, deviceID id.DeviceID, target id.EventID,
	reason string, txnID string) (id.EventID, error) {
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
		txn = &storage.EventTxn{UserID: sender, DeviceID: deviceID, Endpoint: redactEndpoint(roomID, target), TxnID: txnID}
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
