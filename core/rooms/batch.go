package rooms

import (
	"context"

	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/core/events"
	"github.com/tributary-hs/tributary/core/types"
)

// maxBatchEvents bounds one batch send.
const maxBatchEvents = 5000

// BatchSend appends events to the end of a room in one transaction, all or
// none, with the senders and timestamps given (the one batch-insert
// operation of appservice batch send, bridge backfill and imports).
// notify false gives them no push notifications.
func (s *Service) BatchSend(ctx context.Context, roomID id.RoomID, protos []*events.Proto, notify bool) ([]id.EventID, error) {
	if len(protos) == 0 {
		return []id.EventID{}, nil
	}
	if len(protos) > maxBatchEvents {
		return nil, types.TooLarge("A batch holds at most %d events", maxBatchEvents)
	}
	for _, p := range protos {
		if err := checkType(p.Type, p.StateKey); err != nil {
			return nil, err
		}
		if err := checkSendable(p.Type, p.StateKey); err != nil {
			return nil, err
		}
		if p.Type == "m.room.canonical_alias" && p.StateKey != nil {
			return nil, types.InvalidParam("m.room.canonical_alias cannot be batch sent; use the state endpoint")
		}
	}
	if err := s.requireRoom(ctx, roomID); err != nil {
		return nil, err
	}
	res := s.queue(ctx, roomID, &sendReq{protos: protos, noPush: !notify})
	return res.eventIDs, res.err
}

// HasMessages reports whether a room's timeline holds any event that is not
// state (a new bridged room has none).
func (s *Service) HasMessages(ctx context.Context, roomID id.RoomID) (bool, error) {
	return s.store.HasMessages(ctx, string(roomID))
}
