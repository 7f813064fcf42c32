package rooms

// Filling a gap before a remote event (server-server API, "Retrieving
// missing events" and the checks on receipt of a PDU): when its prev
// events cannot be fetched (get_missing_events closed no gap), the state
// before the event is asked for instead. For each prev event P this
// server lacks, the origin gives the state before P as event IDs
// (/state_ids); the events of it this server lacks are fetched one by one
// (/event), or all at once (/state) when they are many; they and P pass
// the checks on receipt together, and are kept as outliers, P with the
// state after it as its state group. The event is then taken in like any
// other: its prev events are known with their state, and the state before
// it is resolved from theirs as usual.

import (
	"context"
	"encoding/json/jsontext"
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/tidwall/gjson"
	"maunium.net/go/mautrix/federation/pdu"
	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/core/state"
	"github.com/tributary-hs/tributary/storage"
)

const (
	// maxGapPrevs bounds the prev events whose state is fetched for one event.
	maxGapPrevs = 5
	// fetchOneByOne is how many missing events are fetched with /event
	// before /state (every event of the state at once) is the cheaper ask.
	fetchOneByOne = 50
	// fetchParallel bounds the /event requests in flight to one server.
	fetchParallel = 8
)

// IntakeFilling is Intake for an event from origin whose prev or auth
// events this server may not have, even after get_missing_events: the
// state at each unknown prev event, and the unknown auth events, are
// fetched from origin and kept, then the event is taken in. Without
// Options.Remote it is Intake.
func (s *Service) IntakeFilling(ctx context.Context, origin string, raw []byte) (*IntakeResult, error) {
	res, err := s.Intake(ctx, origin, raw)
	var missing *MissingEventsError
	if !errors.As(err, &missing) || s.opts.Remote == nil || len(missing.Prev) > maxGapPrevs {
		return res, err
	}
	roomID := id.RoomID(gjson.GetBytes(raw, "room_id").Str)
	rv, verr := s.knownRoomVersion(ctx, roomID)
	if verr != nil || rv == "" {
		return res, err
	}
	if len(missing.Auth) > 0 {
		if ferr := s.fetchAuthChain(ctx, origin, rv, roomID, missing.EventID); ferr != nil {
			s.log.InfoContext(ctx, "auth chain not fetched", "origin", origin, "event", missing.EventID, "err", ferr)
			return res, err
		}
	}
	for _, p := range missing.Prev {
		if ferr := s.fetchStateAt(ctx, origin, rv, roomID, p); ferr != nil {
			s.log.InfoContext(ctx, "state not fetched", "origin", origin, "event", p, "err", ferr)
			return res, err
		}
	}
	return s.Intake(ctx, origin, raw)
}

// fetchAuthChain fetches and keeps the auth chain of an event (its auth
// events among it) as outliers.
func (s *Service) fetchAuthChain(ctx context.Context, origin string, rv id.RoomVersion, roomID id.RoomID, eventID id.EventID) error {
	raws, err := s.opts.Remote.AuthChain(ctx, origin, roomID, eventID)
	if err != nil {
		return err
	}
	set, _, err := s.checkFetched(ctx, origin, rv, roomID, raws)
	if err != nil {
		return err
	}
	return s.storeOutliers(ctx, roomID, set, "", nil)
}

// fetchStateAt fetches the state before p and p itself from origin,
// checks them and keeps them as outliers, p with the state after it.
func (s *Service) fetchStateAt(ctx context.Context, origin string, rv id.RoomVersion, roomID id.RoomID, p id.EventID) error {
	stateIDs, authIDs, err := s.opts.Remote.StateIDs(ctx, origin, roomID, p)
	if err != nil {
		return err
	}
	want := slices.Compact(slices.Sorted(slices.Values(slices.Concat(stateIDs, authIDs, []id.EventID{p}))))
	known, err := s.storedAmong(ctx, want)
	if err != nil {
		return err
	}
	var need []id.EventID
	for _, eid := range want {
		if !known[eid] {
			need = append(need, eid)
		}
	}
	var raws []jsontext.Value
	if len(need) > fetchOneByOne {
		st, err := s.opts.Remote.StateAt(ctx, origin, roomID, p)
		if err != nil {
			return err
		}
		raws = append(append(raws, st.State...), st.AuthChain...)
		if !known[p] {
			ev, err := s.opts.Remote.Event(ctx, origin, p)
			if err != nil {
				return err
			}
			raws = append(raws, ev)
		}
	} else if raws, err = s.fetchEvents(ctx, origin, need); err != nil {
		return err
	}
	set, _, err := s.checkFetched(ctx, origin, rv, roomID, raws)
	if err != nil {
		return err
	}
	// The state before p, by key, from what came and what is stored.
	before := make(state.Map, len(stateIDs))
	var stored []id.EventID
	for _, eid := range stateIDs {
		if r := set.get(eid); r != nil {
			if r.ev.StateKey == nil {
				return fmt.Errorf("%w: %s in the state before %s is not a state event", errBadAnswer, eid, p)
			}
			before[pdu.StateKey{Type: r.ev.Type, StateKey: *r.ev.StateKey}] = eid
		} else {
			stored = append(stored, eid)
		}
	}
	for chunk := range slices.Chunk(stored, 500) {
		evs, err := s.store.GetEvents(ctx, chunk)
		if err != nil {
			return err
		}
		for _, e := range evs {
			if e.RoomID != roomID || e.StateKey == nil {
				return fmt.Errorf("%w: %s in the state before %s is not a state event of the room", errBadAnswer, e.EventID, p)
			}
			before[pdu.StateKey{Type: e.Type, StateKey: *e.StateKey}] = e.EventID
		}
	}
	if len(before) != len(slices.Compact(slices.Sorted(slices.Values(stateIDs)))) {
		return fmt.Errorf("%w: the state before %s is not all there", errBadAnswer, p)
	}
	after := maps.Clone(before)
	prev := set.get(p)
	if prev == nil {
		pe, err := s.loadPDUs(ctx, []id.EventID{p})
		if err != nil {
			return err
		}
		if pe[0] == nil {
			return fmt.Errorf("%w: %s did not send %s", errBadAnswer, origin, p)
		}
		if pe[0].StateKey != nil {
			after[pdu.StateKey{Type: pe[0].Type, StateKey: *pe[0].StateKey}] = p
		}
	} else if prev.ev.StateKey != nil {
		after[pdu.StateKey{Type: prev.ev.Type, StateKey: *prev.ev.StateKey}] = p
	}
	return s.storeOutliers(ctx, roomID, set, p, after)
}

// fetchEvents fetches events from server by ID, a few at a time.
func (s *Service) fetchEvents(ctx context.Context, server string, ids []id.EventID) ([]jsontext.Value, error) {
	out := make([]jsontext.Value, len(ids))
	sem := make(chan struct{}, fetchParallel)
	err := parallel(len(ids), func(i int) error {
		sem <- struct{}{}
		defer func() { <-sem }()
		raw, err := s.opts.Remote.Event(ctx, server, ids[i])
		out[i] = raw
		return err
	})
	return out, err
}

// storeOutliers keeps the events of a checked set as outliers (those not
// stored yet); withState, when set, is kept with after, the state after it,
// as its state group (replacing its row when it was an outlier without).
func (s *Service) storeOutliers(ctx context.Context, roomID id.RoomID, set *fetchedSet, withState id.EventID,
	after state.Map) error {
	res := s.queue(ctx, roomID, &sendReq{fetched: &fetchedWrite{set: set, withState: withState, after: after}})
	return res.err
}

// fetchedWrite is a checked set to keep as outliers.
type fetchedWrite struct {
	set       *fetchedSet
	withState id.EventID
	after     state.Map
}

// processFetched stores a fetchedWrite: it changes nothing of the room's
// state, so the writer's state stays as it is.
func (w *roomWriter) processFetched(r *sendReq) {
	s := w.svc
	f := r.fetched
	ctx, cancel := context.WithTimeout(context.Background(), remoteJoinTimeout)
	defer cancel()
	err := func() error {
		ids := slices.Clone(f.set.order)
		if f.withState != "" && !slices.Contains(ids, f.withState) {
			ids = append(ids, f.withState)
		}
		stored, err := s.store.GetEvents(ctx, ids)
		if err != nil {
			return err
		}
		have := map[id.EventID]*storage.Event{}
		for _, e := range stored {
			have[e.EventID] = e
		}
		var writes []*storage.EventWrite
		for _, eid := range f.set.order {
			if have[eid] != nil || eid == f.withState {
				continue
			}
			wr, err := outlierWrite(f.set.get(eid))
			if err != nil {
				return err
			}
			writes = append(writes, wr)
		}
		if f.withState != "" {
			var wr *storage.EventWrite
			switch e := have[f.withState]; {
			case e == nil:
				if wr, err = outlierWrite(f.set.get(f.withState)); err != nil {
					return err
				}
			case e.Outlier && e.StateGroup == 0:
				c := *e
				wr = &storage.EventWrite{Event: &c, Replace: true}
			}
			if wr != nil {
				gid, err := s.nextGroupID(ctx)
				if err != nil {
					return err
				}
				wr.NewGroup = &storage.StateGroup{GroupID: gid, RoomID: w.roomID, Entries: stateEntries(f.after)}
				wr.Event.StateGroup = gid
				writes = append(writes, wr)
			}
		}
		if len(writes) == 0 {
			return nil
		}
		if err := s.store.PersistEvents(ctx, writes); err != nil {
			return fmt.Errorf("persist fetched events: %w", err)
		}
		return nil
	}()
	r.done <- sendResult{err: err}
}
