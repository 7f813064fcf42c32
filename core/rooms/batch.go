package rooms

import (
	"context"
	"encoding/json/jsontext"
	"errors"
	"net/http"

	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/core/events"
	"github.com/tributary-hs/tributary/core/types"
	"github.com/tributary-hs/tributary/storage"
)

// maxBatchEvents bounds one batch send.
const maxBatchEvents = 10000

// BatchOptions shape a batch send.
type BatchOptions struct {
	// Notify computes push notifications for the events (send_notification).
	Notify bool
	// History puts the batch before the room's whole timeline (a backward
	// batch): older history than anything the room shows. Only message
	// events, and nobody is notified: it is the past. It is this server's
	// local history of the room, off the room's graph: its events chain from
	// the create event, are never prev events of live events nor forward
	// extremities, and are never sent or served to other servers.
	History bool
	// Aliases are the event IDs the appservice chose, one per event ("" for
	// none): each becomes an alias of its real event, and references to
	// them in this batch or later are to the real events.
	Aliases []id.EventID
	// Messages name, for events with an alias, the network message each
	// is (a part of, or a reaction to), one per event (nil for none): each
	// is recorded with the alias (storage.EventWrite.Message), in the
	// batch's transaction.
	Messages []*storage.BridgeMessage
}

// BatchSend persists events in one transaction, all or none, with the
// senders and timestamps given — the one batch-insert operation of
// appservice batch send, bridge backfill and imports. By default the events
// are appended to the room; with History they go before its timeline.
func (s *Service) BatchSend(ctx context.Context, roomID id.RoomID, protos []*events.Proto, opts BatchOptions) ([]id.EventID, error) {
	if len(protos) == 0 {
		return []id.EventID{}, nil
	}
	if len(protos) > maxBatchEvents {
		return nil, types.TooLarge("A batch holds at most %d events", maxBatchEvents)
	}
	for i, p := range protos {
		if err := checkType(p.Type, p.StateKey); err != nil {
			return nil, err
		}
		if err := checkSendable(p.Type); err != nil {
			return nil, err
		}
		if p.StateKey == nil && p.Type == "m.room.redaction" {
			return nil, types.InvalidParam("Redactions cannot be batch sent; use the redact endpoint")
		}
		if p.Type == "m.room.canonical_alias" && p.StateKey != nil {
			return nil, types.InvalidParam("m.room.canonical_alias cannot be batch sent; use the state endpoint")
		}
		if opts.History && p.StateKey != nil {
			return nil, types.InvalidParam("Event %d: state events cannot be inserted into history", i)
		}
	}
	if err := s.requireRoom(ctx, roomID); err != nil {
		return nil, err
	}
	refs, err := s.batchRefs(ctx, protos, opts.Aliases)
	if err != nil {
		return nil, err
	}
	res := s.queue(ctx, roomID, &sendReq{protos: protos, noPush: !opts.Notify || opts.History, history: opts.History,
		aliases: opts.Aliases, messages: opts.Messages, refs: refs})
	return res.eventIDs, res.err
}

// batchRefs checks a batch's aliases (valid, new and each used once) and
// resolves the references its events make to aliases stored before; those
// to aliases of the batch itself are resolved as it is built.
func (s *Service) batchRefs(ctx context.Context, protos []*events.Proto, aliases []id.EventID) (map[id.EventID]id.EventID, error) {
	if aliases == nil {
		return nil, nil
	}
	if len(aliases) != len(protos) {
		return nil, types.InvalidParam("One alias per event")
	}
	mine := map[id.EventID]bool{}
	var refs []id.EventID
	for i, a := range aliases {
		if a == "" {
			continue
		}
		if len(a) > 255 || a[0] != '$' {
			return nil, types.InvalidParam("Event %d: event_id must start with $ and be at most 255 bytes", i)
		}
		if mine[a] {
			return nil, types.InvalidParam("Event %d: event_id %s is used twice", i, a)
		}
		mine[a] = true
	}
	for _, p := range protos {
		if raw, ok := p.Content.(jsontext.Value); ok {
			for _, r := range contentRefs(raw) {
				if !mine[r] {
					refs = append(refs, r)
				}
			}
		}
	}
	// Whether a new name is taken already is found as the batch is stored
	// (takenAlias): looking each up first cost a batch of thousands as
	// much as a second insert.
	return s.store.ResolveEventAliases(ctx, refs)
}

// takenAlias is the error of a batch whose storing failed with err: a
// 409 naming an alias of the batch that is taken, when one is, else err.
func (s *Service) takenAlias(ctx context.Context, aliases []id.EventID, err error) error {
	if !errors.Is(err, storage.ErrConflict) {
		return err
	}
	var names []id.EventID
	for _, a := range aliases {
		if a != "" {
			names = append(names, a)
		}
	}
	if len(names) == 0 {
		return err
	}
	known, lerr := s.store.ResolveEventAliases(ctx, names)
	if lerr != nil {
		return err
	}
	for _, a := range names {
		if _, ok := known[a]; ok {
			return types.NewError(http.StatusConflict, types.CodeInvalidParam, "event_id %s is already taken", a)
		}
	}
	return err
}

// HasMessages reports whether a room's timeline holds any event that is not
// state (a new bridged room has none).
func (s *Reader) HasMessages(ctx context.Context, roomID id.RoomID) (bool, error) {
	return s.store.HasMessages(ctx, roomID)
}
