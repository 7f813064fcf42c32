package rooms

// Backfill (server-server API, "Backfilling and retrieving missing
// events"): when a client pages back past the oldest event this server
// has of a room it joined over federation, the events before it are asked
// from a server in the room (/backfill). They pass the checks on receipt
// (format, signatures, hashes, their auth events — fetched when missing —
// and the state before them: the state at the oldest fetched from the
// server with /state_ids, the rest worked out from there) and are stored
// as the room's history: below every timeline event, never a forward
// extremity, never the current state, never queued for anyone. History
// visibility then applies to them like to any event.

import (
	"context"
	"encoding/json/jsontext"
	"fmt"
	"maps"
	"slices"
	"sort"
	"time"

	"github.com/tidwall/gjson"
	"maunium.net/go/mautrix/federation/pdu"
	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/core/events"
	"github.com/tributary-hs/tributary/core/state"
	"github.com/tributary-hs/tributary/storage"
)

const (
	// backfillServers bounds the servers asked for one page.
	backfillServers = 3
	// authRounds bounds the rounds of fetching auth events a backfilled
	// page lacks (each round, the auth events of the last).
	authRounds = 4
)

// FetchHistory asks another server of the room for up to limit events before
// the oldest this server has, and stores those that pass the checks as
// the room's history; it returns how many it stored. 0 when the room's
// history begins here (its create event is stored in the timeline) or no
// server could help.
func (s *Service) FetchHistory(ctx context.Context, roomID id.RoomID, limit int) (int, error) {
	if s.opts.Remote == nil {
		return 0, nil
	}
	rv, err := s.knownRoomVersion(ctx, roomID)
	if err != nil || rv == "" {
		return 0, err
	}
	from, err := s.backwardExtremities(ctx, roomID)
	if err != nil || len(from) == 0 {
		return 0, err
	}
	servers, err := s.JoinedServers(ctx, roomID)
	if err != nil {
		return 0, err
	}
	servers = slices.DeleteFunc(servers, func(sv string) bool { return sv == s.opts.ServerName })
	limit = min(max(limit, 10), 100)
	var lastErr error
	for i, server := range servers {
		if i == backfillServers {
			break
		}
		n, err := s.backfillFrom(ctx, server, rv, roomID, from, limit)
		if err == nil {
			return n, nil
		}
		s.log.InfoContext(ctx, "backfill failed", "room", roomID, "server", server, "err", err)
		lastErr = err
	}
	return 0, lastErr
}

// backwardExtremities are the prev events of the room's oldest timeline
// event that are not in the timeline here (at most 5): where history
// continues on other servers.
func (s *Service) backwardExtremities(ctx context.Context, roomID id.RoomID) ([]id.EventID, error) {
	oldest, err := s.store.RoomEvents(ctx, roomID, -1<<62, 0, false, 1)
	if err != nil || len(oldest) == 0 {
		return nil, err
	}
	p, err := parsePDU(oldest[0])
	if err != nil {
		return nil, err
	}
	prevs, err := s.store.GetEvents(ctx, p.PrevEvents)
	if err != nil {
		return nil, err
	}
	inTimeline := map[id.EventID]bool{}
	for _, e := range prevs {
		inTimeline[e.EventID] = !e.Outlier && e.StateGroup != 0
	}
	var out []id.EventID
	for _, eid := range p.PrevEvents {
		if !inTimeline[eid] && len(out) < 5 {
			out = append(out, eid)
		}
	}
	return out, nil
}

// backfillFrom is one server's page of history.
func (s *Service) backfillFrom(ctx context.Context, server string, rv id.RoomVersion, roomID id.RoomID,
	from []id.EventID, limit int) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	raws, err := s.opts.Remote.Backfill(ctx, server, roomID, from, limit)
	if err != nil {
		return 0, err
	}
	// Their auth events, where neither the page nor this server has them.
	all := slices.Clone(raws)
	for range authRounds {
		need, err := s.missingAuth(ctx, rv, roomID, all)
		if err != nil {
			return 0, err
		}
		if len(need) == 0 {
			break
		}
		got, err := s.fetchEvents(ctx, server, need)
		if err != nil {
			return 0, err
		}
		all = append(all, got...)
	}
	set, ids, err := s.checkFetched(ctx, server, rv, roomID, all)
	if err != nil {
		return 0, err
	}
	page := map[id.EventID]bool{}
	for _, eid := range ids[:len(raws)] {
		page[eid] = true
	}
	stored, err := s.store.GetEvents(ctx, set.order)
	if err != nil {
		return 0, err
	}
	have := map[id.EventID]*storage.Event{}
	for _, e := range stored {
		have[e.EventID] = e
	}
	// The page's events this server lacks in its timeline, oldest first.
	var hist []*received
	for _, eid := range set.order {
		if e := have[eid]; page[eid] && (e == nil || e.Outlier) {
			hist = append(hist, set.get(eid))
		}
	}
	if len(hist) == 0 {
		return 0, nil
	}
	sort.SliceStable(hist, func(i, j int) bool {
		if hist[i].ev.Depth != hist[j].ev.Depth {
			return hist[i].ev.Depth < hist[j].ev.Depth
		}
		return hist[i].eventID() < hist[j].eventID()
	})
	// The state after the prev events of the page that lie outside it and
	// are not known with their state: fetched (state_ids at them).
	inPage := map[id.EventID]bool{}
	for _, r := range hist {
		inPage[r.eventID()] = true
	}
	fetched := map[id.EventID]bool{}
	for _, r := range hist {
		for _, p := range r.ev.PrevEvents {
			if inPage[p] || fetched[p] {
				continue
			}
			if e := have[p]; e != nil && e.StateGroup != 0 {
				continue
			}
			if e, err := s.store.GetEvent(ctx, p); err == nil && e.StateGroup != 0 {
				continue
			} else if err != nil && !storageNotFound(err) {
				return 0, err
			}
			if len(fetched) == maxGapPrevs {
				return 0, fmt.Errorf("%w: the page has more than %d unknown prev events", errBadAnswer, maxGapPrevs)
			}
			fetched[p] = true
			if err := s.fetchStateAt(ctx, server, rv, roomID, p); err != nil {
				return 0, err
			}
		}
	}
	res := s.queue(ctx, roomID, &sendReq{backfill: &backfillWrite{rv: rv, set: set, hist: hist}})
	if res.err != nil {
		return 0, res.err
	}
	return len(res.eventIDs), nil
}

// missingAuth are the auth events of the events that are neither among
// them nor stored.
func (s *Service) missingAuth(ctx context.Context, rv id.RoomVersion, roomID id.RoomID, raws []jsontext.Value) ([]id.EventID, error) {
	have := map[id.EventID]bool{}
	var cited []id.EventID
	for _, raw := range raws {
		rec, err := parseFetched("", rv, roomID, raw)
		if err != nil {
			return nil, err
		}
		have[rec.eventID()] = true
		cited = append(cited, rec.ev.AuthEvents...)
	}
	cited = slices.Compact(slices.Sorted(slices.Values(cited)))
	cited = slices.DeleteFunc(cited, func(eid id.EventID) bool { return have[eid] })
	stored, err := s.storedAmong(ctx, cited)
	if err != nil {
		return nil, err
	}
	return slices.DeleteFunc(cited, func(eid id.EventID) bool { return stored[eid] }), nil
}

// backfillWrite is a checked page of history to store.
type backfillWrite struct {
	rv id.RoomVersion
	// set holds the page and the auth events fetched for it; hist are the
	// page's events to store, oldest first.
	set  *fetchedSet
	hist []*received
}

// groupInfo is a state group and its delta chain length.
type groupInfo struct {
	id, chain int64
	state     state.Map
}

// processBackfill works out the state before each event of the page in
// order, checks it against it (check 5; a failure stores it rejected),
// and stores the page as history in one commit, with the auth events
// fetched for it as outliers.
func (w *roomWriter) processBackfill(r *sendReq) {
	ids, err := w.storeBackfill(r.backfill)
	r.done <- sendResult{eventIDs: ids, err: err}
}

func (w *roomWriter) storeBackfill(bf *backfillWrite) ([]id.EventID, error) {
	s := w.svc
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rv := bf.rv
	histIDs := map[id.EventID]bool{}
	for _, r := range bf.hist {
		histIDs[r.eventID()] = true
	}
	stored, err := s.store.GetEvents(ctx, bf.set.order)
	if err != nil {
		return nil, err
	}
	have := map[id.EventID]*storage.Event{}
	for _, e := range stored {
		have[e.EventID] = e
	}
	// Outliers first: the fetched auth events this server lacks.
	var outliers []*storage.EventWrite
	for _, eid := range bf.set.order {
		if have[eid] == nil && !histIDs[eid] {
			wr, err := outlierWrite(bf.set.get(eid))
			if err != nil {
				return nil, err
			}
			outliers = append(outliers, wr)
		}
	}
	if len(outliers) > 0 {
		if err := s.store.PersistEvents(ctx, outliers); err != nil {
			return nil, fmt.Errorf("persist auth events of a backfill: %w", err)
		}
	}
	get := func(ids []id.EventID) ([]*pdu.PDU, error) {
		out := make([]*pdu.PDU, len(ids))
		var rest []id.EventID
		for i, eid := range ids {
			if r := bf.set.get(eid); r != nil {
				out[i] = r.ev
			} else {
				rest = append(rest, eid)
			}
		}
		if len(rest) == 0 {
			return out, nil
		}
		loaded, err := s.loadPDUs(ctx, rest)
		if err != nil {
			return nil, err
		}
		j := 0
		for i := range out {
			if out[i] == nil {
				out[i] = loaded[j]
				j++
			}
		}
		return out, nil
	}
	after := map[id.EventID]*groupInfo{} // the state after each event of the page
	known := func(eid id.EventID) (*groupInfo, error) {
		if g := after[eid]; g != nil {
			return g, nil
		}
		e, err := s.store.GetEvent(ctx, eid)
		if err != nil {
			return nil, err
		}
		if e.StateGroup == 0 {
			return nil, fmt.Errorf("the state after %s is not known", eid)
		}
		m, err := s.stateMap(ctx, e.StateGroup)
		if err != nil {
			return nil, err
		}
		sg, err := s.store.GetStateGroup(ctx, e.StateGroup)
		if err != nil {
			return nil, err
		}
		return &groupInfo{id: e.StateGroup, chain: sg.ChainLen, state: m}, nil
	}
	var writes []*storage.EventWrite
	var built []*pdu.PDU
	var accepted []id.EventID
	for _, rec := range bf.hist {
		ev := rec.ev
		var before *groupInfo
		if len(ev.PrevEvents) == 1 {
			if before, err = known(ev.PrevEvents[0]); err != nil {
				return nil, err
			}
		} else {
			sets := make([]state.Map, 0, len(ev.PrevEvents))
			for _, p := range ev.PrevEvents {
				g, err := known(p)
				if err != nil {
					return nil, err
				}
				sets = append(sets, g.state)
			}
			var extra []*pdu.PDU
			for _, h := range bf.hist {
				extra = append(extra, h.ev)
			}
			m, err := s.resolveStates(ctx, rv, sets, extra...)
			if err != nil {
				return nil, fmt.Errorf("state before %s: %w", rec.eventID(), err)
			}
			before = &groupInfo{state: m}
		}
		rejected := false
		authIDs := []id.EventID{}
		for _, k := range ev.AuthEventSelection(rv) {
			if eid := before.state[k]; eid != "" {
				authIDs = append(authIDs, eid)
			}
		}
		if err := events.AuthorizeAgainst(rv, ev, authIDs, get, s.getKey); err != nil {
			rejected = true
			s.log.InfoContext(ctx, "backfilled event rejected", "event", rec.eventID(), "err", err)
		}
		raw, err := rec.wire()
		if err != nil {
			return nil, err
		}
		se := &storage.Event{EventID: rec.eventID(), RoomID: w.roomID, Type: ev.Type, StateKey: ev.StateKey,
			Sender: ev.Sender, OriginServerTS: ev.OriginServerTS, Depth: ev.Depth, JSON: raw, Rejected: rejected}
		if ev.Type == "m.room.member" {
			se.Membership = gjson.GetBytes(ev.Content, "membership").Str
		}
		se.RelType, se.RelatesTo = relationOf(ev.Content)
		wr := &storage.EventWrite{Event: se, History: true, Replace: have[rec.eventID()] != nil}
		g := before
		if ev.StateKey != nil && !rejected {
			k := pdu.StateKey{Type: ev.Type, StateKey: *ev.StateKey}
			se.ReplacesState = before.state[k]
			m := maps.Clone(before.state)
			m[k] = rec.eventID()
			gid, err := s.nextGroupID(ctx)
			if err != nil {
				return nil, err
			}
			ng := &storage.StateGroup{GroupID: gid, RoomID: w.roomID}
			if before.id != 0 && before.chain+1 < snapshotEvery {
				ng.PrevGroup, ng.ChainLen = before.id, before.chain+1
				ng.Entries = []storage.StateEntry{{Type: k.Type, StateKey: k.StateKey, EventID: rec.eventID()}}
			} else {
				ng.Entries = stateEntries(m)
			}
			wr.NewGroup = ng
			g = &groupInfo{id: gid, chain: ng.ChainLen, state: m}
		} else if before.id == 0 {
			// The state was resolved: it gets a snapshot of its own.
			gid, err := s.nextGroupID(ctx)
			if err != nil {
				return nil, err
			}
			wr.NewGroup = &storage.StateGroup{GroupID: gid, RoomID: w.roomID, Entries: stateEntries(before.state)}
			g = &groupInfo{id: gid, state: before.state}
		}
		se.StateGroup = g.id
		after[rec.eventID()] = g
		ev.InternalMeta.Rejected = rejected
		writes = append(writes, wr)
		built = append(built, ev)
		if !rejected {
			accepted = append(accepted, rec.eventID())
		}
	}
	if err := s.store.PersistEvents(ctx, writes); err != nil {
		return nil, fmt.Errorf("persist backfilled events: %w", err)
	}
	for _, ev := range built {
		s.cache.put(ev.InternalMeta.EventID, ev)
	}
	return accepted, nil
}
