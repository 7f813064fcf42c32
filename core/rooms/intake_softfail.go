package rooms

// Check 6 on receipt of a PDU: the event is allowed by the room's current
// state, the resolution of the states after its forward extremities (else
// soft-failed: stored, never served, never cited by events made here). And
// what an accepted event does to the room: it takes the place of those of
// its prev events that were forward extremities, and the current state
// follows.

import (
	"context"
	"fmt"

	"github.com/tidwall/gjson"
	"maunium.net/go/mautrix/federation/pdu"
	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/core/state"
	"github.com/tributary-hs/tributary/storage"
)

// checkCurrentState is check 6, against the writer's current state. An
// event whose prev events are the room's forward extremities had the
// current state as the state before it: check 5 said it all.
func (w *roomWriter) checkCurrentState(ctx context.Context, rec *received, prevs []*storage.Event) error {
	rs := w.rs
	if len(prevs) == len(rs.extremities) {
		same := true
		for _, p := range prevs {
			if !containsEvent(rs.extremities, p.EventID) {
				same = false
				break
			}
		}
		if same {
			return nil
		}
	}
	return w.svc.authorizeAgainst(ctx, rs.version, rec.ev, func(k pdu.StateKey) id.EventID { return rs.state[k] })
}

func containsEvent(ids []id.EventID, eid id.EventID) bool {
	for _, x := range ids {
		if x == eid {
			return true
		}
	}
	return false
}

// advance lays an accepted event on the batch: the forward extremities,
// the current state (the batch's overlay and wr.CurrentState) and the
// local members it changes. after is the state group of the state after
// the event and chain its delta chain length (-1: unknown).
//
// The current state is the state after the event when it is the only
// extremity left, else the resolution of the states after each extremity;
// a key that resolution drops (no candidate passed the auth checks, e.g. a
// ban by a user another fork demoted, of a user never in the room) leaves
// the current state, as it is in no server's resolved state.
func (w *roomWriter) advance(ctx context.Context, b *batchState, rec *received, before *priorState,
	entry *storage.StateEntry, after, chain int64, wr *storage.EventWrite) error {
	s, rs, ev := w.svc, w.rs, rec.ev
	eid := rec.eventID()
	ext := make([]id.EventID, 0, len(rs.extremities)+1)
	for _, x := range rs.extremities {
		if !containsEvent(ev.PrevEvents, x) {
			ext = append(ext, x)
		}
	}
	switch {
	case len(ext) == 0 && before.live:
		// The usual case: the event follows the room's one extremity.
		if entry != nil {
			b.overlay[stateKeyOf(entry)] = eid
		}
		b.group, b.chainLen = after, chain
	case len(ext) == 0:
		// It joins the extremities (or follows the only one, whose state
		// the writer did not hold as a group).
		overlayDiff(b, withEntry(before.state, entry), rs.state)
		if chain < 0 {
			g, err := s.store.GetStateGroup(ctx, after)
			if err != nil {
				return err
			}
			chain = g.ChainLen
		}
		b.group, b.chainLen = after, chain
	default:
		// A fork: the room's state is resolved over the states after each
		// extremity, the event's among them. The next local event stores
		// it as a snapshot (group 0, as loadRoomState leaves it).
		others, err := s.store.GetEvents(ctx, ext)
		if err != nil {
			return err
		}
		sets := make([]state.Map, 0, len(others)+1)
		for _, o := range others {
			m, err := s.stateMap(ctx, o.StateGroup)
			if err != nil {
				return err
			}
			sets = append(sets, m)
		}
		sets = append(sets, withEntry(before.state, entry))
		resolved, err := s.resolveStates(ctx, rs.version, sets, ev)
		if err != nil {
			return fmt.Errorf("resolve the state after %s: %w", eid, err)
		}
		overlayDiff(b, resolved, rs.state)
		b.group, b.chainLen = 0, 0
	}
	ext = append(ext, eid)
	b.extremities = ext
	b.depth = max(rs.depth, ev.Depth)
	wr.Extremities = ext
	for k, v := range b.overlay {
		wr.CurrentState = append(wr.CurrentState, storage.StateEntry{Type: k.Type, StateKey: k.StateKey, EventID: v})
	}
	return w.localMembers(ctx, b, rec)
}

// localMembers records in the batch the memberships that the new current
// state changes (local users' for push rules, everyone's for the servers
// in the room).
func (w *roomWriter) localMembers(ctx context.Context, b *batchState, rec *received) error {
	s := w.svc
	for k, v := range b.overlay {
		if k.Type != "m.room.member" {
			continue
		}
		u := id.UserID(k.StateKey)
		if v == "" { // no longer in the state: not joined
			b.setJoined(u, false, u.Homeserver() == s.opts.ServerName)
			continue
		}
		ev := rec.ev
		if v != rec.eventID() {
			ps, err := s.loadPDUs(ctx, []id.EventID{v})
			if err != nil {
				return err
			}
			if ev = ps[0]; ev == nil {
				return fmt.Errorf("state event %s missing", v)
			}
		}
		b.setJoined(u, gjson.GetBytes(ev.Content, "membership").Str == "join", u.Homeserver() == s.opts.ServerName)
	}
	return nil
}

// resolveStates runs state resolution over sets; extra are events not
// stored yet that the sets may name.
func (s *Service) resolveStates(ctx context.Context, rv id.RoomVersion, sets []state.Map, extra ...*pdu.PDU) (state.Map, error) {
	load := func(ctx context.Context, ids []id.EventID) (map[id.EventID]*pdu.PDU, error) {
		out := make(map[id.EventID]*pdu.PDU, len(ids))
		var rest []id.EventID
	next:
		for _, eid := range ids {
			for _, e := range extra {
				if e.InternalMeta.EventID == eid {
					out[eid] = e
					continue next
				}
			}
			rest = append(rest, eid)
		}
		ps, err := s.loadPDUs(ctx, rest)
		if err != nil {
			return nil, err
		}
		for _, p := range ps {
			if p != nil {
				out[p.InternalMeta.EventID] = p
			}
		}
		return out, nil
	}
	return state.ResolveExact(ctx, rv, sets, load, s.getKey)
}

func stateKeyOf(e *storage.StateEntry) pdu.StateKey {
	return pdu.StateKey{Type: e.Type, StateKey: e.StateKey}
}

// withEntry is m with entry set (m itself when there is none).
func withEntry(m state.Map, entry *storage.StateEntry) state.Map {
	if entry == nil {
		return m
	}
	out := make(state.Map, len(m)+1)
	for k, v := range m {
		out[k] = v
	}
	out[stateKeyOf(entry)] = entry.EventID
	return out
}

// overlayDiff puts in the batch's overlay the entries of to that from lacks
// or holds otherwise, and "" (removed) for the keys of from that to lacks.
func overlayDiff(b *batchState, to, from state.Map) {
	for k, v := range to {
		if from[k] != v {
			b.overlay[k] = v
		}
	}
	for k := range from {
		if _, ok := to[k]; !ok {
			b.overlay[k] = "" // removed
		}
	}
}
