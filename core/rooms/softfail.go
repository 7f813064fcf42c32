package rooms

import (
	"context"

	"maunium.net/go/mautrix/federation/pdu"
	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/core/events"
)

// softFailed reports whether an event that passed authorisation against its
// own auth events fails against the room's current state (the spec's
// "soft failure", server-server API "Checks performed on receipt of a
// PDU", step 6): it is then stored but neither served to clients nor used
// as a prev event. Local events are built with auth events chosen from the
// current state, so for them the two checks agree; events from other
// servers, which may cite older state, are checked here as they arrive.
func (s *Service) softFailed(ctx context.Context, b *batchState, ev *pdu.PDU) (bool, error) {
	rv := b.base.version
	var authIDs []id.EventID
	for _, k := range ev.AuthEventSelection(rv) {
		if eid := b.get(k); eid != "" {
			authIDs = append(authIDs, eid)
		}
	}
	return events.AuthorizeAgainst(rv, ev, authIDs, s.batchEvents(ctx, b), s.getKey) != nil, nil
}

// SoftFailCheck runs the soft-failure check of an event against a room's
// current state as storage holds it, outside the room's writer (Intake
// runs its own check inside the writer).
func (s *Service) SoftFailCheck(ctx context.Context, roomID id.RoomID, ev *pdu.PDU) (bool, error) {
	rs, err := s.loadRoomState(ctx, roomID)
	if err != nil {
		return false, err
	}
	return s.softFailed(ctx, newBatch(rs), ev)
}
