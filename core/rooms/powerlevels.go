package rooms

import (
	"context"
	"encoding/json/v2"
	"fmt"

	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/federation/pdu"
	"maunium.net/go/mautrix/id"
)

// stateEvent returns the PDU of a state key in the batch's state, or nil.
func (s *Reader) stateEvent(ctx context.Context, b *batchState, evType, stateKey string) (*pdu.PDU, error) {
	eid := b.get(pdu.StateKey{Type: evType, StateKey: stateKey})
	if eid == "" {
		return nil, nil
	}
	if p, ok := b.pending[eid]; ok {
		return p, nil
	}
	ps, err := s.loadPDUs(ctx, []id.EventID{eid})
	if err != nil {
		return nil, err
	}
	if ps[0] == nil {
		return nil, fmt.Errorf("state event %s missing", eid)
	}
	return ps[0], nil
}

// powerLevels returns the room's power levels as eventauth sees them (room
// creators have infinite power from room version 12).
func (s *Reader) powerLevels(ctx context.Context, b *batchState) (*event.PowerLevelsEventContent, error) {
	// The parsed content is kept per power levels event: it cannot change.
	// (Callers only read it.)
	plID := b.get(pdu.StateKey{Type: "m.room.power_levels"})
	if c := b.base.plCache; c != nil && b.base.plCacheID == plID {
		return c, nil
	}
	pl, err := s.parsePowerLevels(ctx, b)
	if err == nil {
		b.base.plCache, b.base.plCacheID = pl, plID
	}
	return pl, err
}

func (s *Reader) parsePowerLevels(ctx context.Context, b *batchState) (*event.PowerLevelsEventContent, error) {
	rv := b.base.version
	create, err := s.stateEvent(ctx, b, "m.room.create", "")
	if err != nil {
		return nil, err
	}
	if create == nil && rv.RoomIDIsCreateEventID() {
		ps, err := s.loadPDUs(ctx, []id.EventID{id.EventID("$" + string(b.roomID)[1:])})
		if err != nil {
			return nil, err
		}
		create = ps[0]
	}
	if create == nil {
		return nil, fmt.Errorf("room %s has no create event", b.roomID)
	}
	plEv, err := s.stateEvent(ctx, b, "m.room.power_levels", "")
	if err != nil {
		return nil, err
	}
	pl := &event.PowerLevelsEventContent{}
	if plEv != nil {
		if err := json.Unmarshal(plEv.Content, pl); err != nil {
			return nil, fmt.Errorf("parse power levels: %w", err)
		}
	} else if !rv.PrivilegedRoomCreators() {
		pl.Users = map[id.UserID]int{create.Sender: 100}
	}
	if rv.PrivilegedRoomCreators() {
		ce, err := create.ToClientEvent(rv)
		if err != nil {
			return nil, err
		}
		if err := ce.Content.ParseRaw(ce.Type); err != nil {
			return nil, err
		}
		pl.CreateEvent = ce
	}
	return pl, nil
}

func jsonUnmarshal(raw []byte, v any) error { return json.Unmarshal(raw, v) }

// stateType is an event type in the state class, for power level lookups.
func stateType(t string) event.Type { return event.Type{Type: t, Class: event.StateEventType} }
