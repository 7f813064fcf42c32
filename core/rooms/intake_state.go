package rooms

// Check 5 on receipt of a PDU: the event is allowed by the state before it
// (else rejected). That state is the state after its prev event, or the
// resolution of the states after each when it has several; so the prev
// events (and the auth events) must be known here first.

import (
	"context"
	"fmt"

	"maunium.net/go/mautrix/federation/pdu"
	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/core/state"
	"github.com/tributary-hs/tributary/storage"
)

// prevEvents returns the stored prev events of the event. When some prev
// or auth events are unknown, nothing can be checked: the event waits
// (*MissingEventsError) until federation has fetched them.
func (s *Service) prevEvents(ctx context.Context, rec *received) ([]*storage.Event, error) {
	ev := rec.ev
	ids := make([]id.EventID, 0, len(ev.PrevEvents))
	seen := map[id.EventID]bool{}
	for _, p := range ev.PrevEvents {
		if !seen[p] {
			seen[p] = true
			ids = append(ids, p)
		}
	}
	stored, err := s.store.GetEvents(ctx, ids)
	if err != nil {
		return nil, err
	}
	byID := make(map[id.EventID]*storage.Event, len(stored))
	for _, e := range stored {
		byID[e.EventID] = e
	}
	missing := &MissingEventsError{EventID: rec.eventID(), Origin: rec.origin}
	prevs := make([]*storage.Event, 0, len(ids))
	for _, p := range ids {
		e := byID[p]
		switch {
		case e == nil || (e.Outlier && e.StateGroup == 0):
			// Unknown, or known without the state after it (part of a
			// state this server was given): the same to check 5.
			missing.Prev = append(missing.Prev, p)
		case e.RoomID != rec.roomID:
			return nil, &DroppedError{EventID: rec.eventID(), Check: "format",
				Err: fmt.Errorf("prev event %s is in another room", p)}
		default:
			prevs = append(prevs, e)
		}
	}
	auth, err := s.loadPDUs(ctx, ev.AuthEvents)
	if err != nil {
		return nil, err
	}
	for i, a := range auth {
		if a == nil {
			missing.Auth = append(missing.Auth, ev.AuthEvents[i])
		}
	}
	if len(missing.Prev) > 0 || len(missing.Auth) > 0 {
		return nil, missing
	}
	return prevs, nil
}

// priorState is the room state before a remote event.
type priorState struct {
	// state is read only: it may be the writer's own current state.
	state state.Map
	// live: state is the writer's current state (w.rs.state) itself.
	live bool
	// group is the state group that holds exactly this state (0: none,
	// the state was resolved from several); chainLen is its delta chain
	// length, -1 until read.
	group    int64
	chainLen int64
}

// stateBeforeEvent works out the state before the event. The usual case, an
// event on the room's only forward extremity, takes the writer's state
// and reads nothing.
func (s *Service) stateBeforeEvent(ctx context.Context, rs *roomState, rec *received, prevs []*storage.Event) (*priorState, error) {
	if len(prevs) == 1 {
		g := prevs[0].StateGroup
		if rs.group != 0 && g == rs.group {
			return &priorState{state: rs.state, live: true, group: g, chainLen: rs.chainLen}, nil
		}
		m, err := s.stateMap(ctx, g)
		if err != nil {
			return nil, err
		}
		return &priorState{state: m, group: g, chainLen: -1}, nil
	}
	m, err := s.resolveExtremities(ctx, rec.rv, prevs)
	if err != nil {
		return nil, fmt.Errorf("state before %s: %w", rec.eventID(), err)
	}
	return &priorState{state: m}, nil
}

// checkStateBefore is check 5.
func (s *Service) checkStateBefore(ctx context.Context, rec *received, before *priorState) error {
	return s.authorizeAgainst(ctx, rec.rv, rec.ev, func(k pdu.StateKey) id.EventID { return before.state[k] })
}

// stateMap reads the state a group holds.
func (s *Service) stateMap(ctx context.Context, group int64) (state.Map, error) {
	entries, err := s.store.StateAt(ctx, group)
	if err != nil {
		return nil, err
	}
	m := make(state.Map, len(entries))
	for _, e := range entries {
		m[pdu.StateKey{Type: e.Type, StateKey: e.StateKey}] = e.EventID
	}
	return m, nil
}

// chainOf is the delta chain length of the group holding the state.
func (s *Service) chainOf(ctx context.Context, p *priorState) (int64, error) {
	if p.group == 0 {
		return 0, nil
	}
	if p.chainLen < 0 {
		g, err := s.store.GetStateGroup(ctx, p.group)
		if err != nil {
			return 0, err
		}
		p.chainLen = g.ChainLen
	}
	return p.chainLen, nil
}
