package rooms

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"runtime/debug"
	"slices"
	"sync/atomic"

	"github.com/tidwall/gjson"
	"golang.org/x/sync/errgroup"

	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/storage"
)

// SyncRoomRequest asks for one room's part of a /sync answer.
type SyncRoomRequest struct {
	User id.UserID
	// Device is the syncing device: its own events carry transaction IDs.
	Device id.DeviceID
	RoomID id.RoomID
	// Since is the events position of the client's token (0: initial sync).
	Since int64
	// Upto is the events position the answer covers.
	Upto int64
	// MembershipPos is the stream position of the user's current membership
	// event; for leave and ban the timeline ends there.
	MembershipPos   int64
	Membership      string
	MembershipEvent id.EventID
	TimelineLimit   int
	Filter          *EventFilter
	LazyMembers     bool
	FullState       bool
	// StateAfter asks for the state at the end of the timeline rather
	// than at its start (use_state_after, spec v1.16, MSC4222).
	StateAfter bool
	// Summary, when set, is the room's summary read beforehand (Summaries).
	Summary map[string]any
}

// RoomSync is one room of a /sync answer.
type RoomSync struct {
	Timeline  []*ClientEvent
	Limited   bool
	PrevBatch string
	// State is the state at the start of the timeline, or at its end with
	// StateAfter (the changes since the token, or all of it when fresh).
	State []*ClientEvent
	// Summary is set when the room is new to the client or its membership changed.
	Summary map[string]any
	// Fresh: the room is new to the client (a first sync, full state, or
	// a join since the token of a user not joined throughout); its
	// timeline reaches back past the token and its state is whole.
	Fresh bool
	// Empty: nothing for this room since the token.
	Empty bool
}

// pageKey names a timeline page: a room's events in (lower, before),
// newest first, at most limit.
type pageKey struct {
	room          id.RoomID
	before, lower int64
	limit         int
}

// timelinePage reads a page of a room's timeline for /sync. Incremental
// pages (lower > 0) are shared by the long-polls that ask the same at the
// same time (every member's, after a message): below a published position
// the timeline is settled. Pages reaching back to the start are not: history
// batches insert there without moving the stream.
func (s *Reader) timelinePage(ctx context.Context, roomID id.RoomID, before, lower int64, limit int) ([]*storage.Event, error) {
	if lower <= 0 || limit > 64 {
		return s.store.RoomEvents(ctx, roomID, before, lower, true, limit)
	}
	return s.pages.Get(ctx, pageKey{roomID, before, lower, limit}, func(ctx context.Context) ([]*storage.Event, error) {
		return s.store.RoomEvents(ctx, roomID, before, lower, true, limit)
	})
}

// SyncRoom computes a room's timeline and state for /sync: the last events
// up to Upto after Since (all of them for a room the client has not seen,
// newest TimelineLimit), and the state at the start of the timeline — in full
// for rooms new to the client, as the changes since the token otherwise.
func (s *Reader) SyncRoom(ctx context.Context, req *SyncRoomRequest) (*RoomSync, error) {
	out, err := s.SyncRooms(ctx, []*SyncRoomRequest{req})
	if err != nil {
		return nil, err
	}
	return out[0], nil
}

// roomRead is one room of SyncRooms on its way.
type roomRead struct {
	req         *SyncRoomRequest
	rv          id.RoomVersion
	upto, lower int64
	limit       int
	// fresh: the room is new to the client (its whole state is sent).
	fresh, stateless bool
	v                *viewer
	// page is the first page of the timeline when it was read with the
	// other rooms' (paged).
	page   []*storage.Event
	paged  bool
	picked []*storage.Event
	need   map[id.UserID]bool
	state  []*storage.Event
	out    *RoomSync
}

// syncRoomsAtOnce bounds how many rooms SyncRooms works on at the same
// time where it goes room by room (formatting, and the reads that are not
// made for all the rooms at once): enough to overlap the database's round
// trips and use every core, few enough that one user's first sync cannot
// take the whole connection pool from everyone else.
const syncRoomsAtOnce = 6

// SyncRooms is SyncRoom for many rooms (of one sync) at once. Each step
// reads for all the rooms together: their first timeline pages, the
// history visibility of those pages' state groups, the state before each
// timeline, its events, the device's transaction IDs and the summaries —
// a handful of statements whatever the number of rooms, where room by room
// each step was a round trip to the database.
func (s *Reader) SyncRooms(ctx context.Context, reqs []*SyncRoomRequest) ([]*RoomSync, error) {
	reads := make([]*roomRead, len(reqs))
	spans := map[int][]storage.RoomSpan{} // by page size
	for i, req := range reqs {
		r, err := s.prepareSync(ctx, req)
		if err != nil {
			return nil, err
		}
		reads[i] = r
		// The incremental page of a sync of one room, which timelinePage
		// shares among the long-polls a message wakes, is read through it.
		if r.paged = len(reqs) > 1 || r.lower <= 0 || r.limit+1 > 64; r.paged {
			spans[r.limit+1] = append(spans[r.limit+1], storage.RoomSpan{RoomID: req.RoomID, After: r.lower, Before: r.upto + 1})
		}
	}
	pages := map[id.RoomID][]*storage.Event{}
	for size, sp := range spans {
		got, err := s.store.LatestRoomEvents(ctx, sp, size)
		if err != nil {
			return nil, err
		}
		maps.Copy(pages, got)
	}
	for _, r := range reads {
		if r.paged {
			r.page = pages[r.req.RoomID]
		}
	}
	if err := s.visibilitiesOf(ctx, reads); err != nil {
		return nil, err
	}
	// Picking reads on past the first page where the history rules or the
	// filter leave too few events: rooms overlap those reads.
	if err := eachAtOnce(ctx, reads, syncRoomsAtOnce, s.pickTimeline); err != nil {
		return nil, err
	}
	if err := s.syncStates(ctx, reads); err != nil {
		return nil, err
	}
	if err := s.syncSummaries(ctx, reads); err != nil {
		return nil, err
	}
	// The device's transaction IDs of every list in one read.
	type device struct {
		user id.UserID
		id   id.DeviceID
	}
	lists := map[device][][]*storage.Event{}
	for _, r := range reads {
		if !r.out.Empty {
			d := device{r.req.User, r.req.Device}
			lists[d] = append(lists[d], r.picked, r.state)
		}
	}
	txns := map[device]map[id.EventID]string{}
	for d, l := range lists {
		got, err := s.txnIDsOf(ctx, d.user, d.id, l...)
		if err != nil {
			return nil, err
		}
		txns[d] = got
	}
	formatOne := func(ctx context.Context, r *roomRead) error {
		if r.out.Empty {
			return nil
		}
		req := r.req
		txns := txns[device{req.User, req.Device}]
		tf := s.formatter(r.rv).forUser(req.User).forDevice(req.Device).withTxnIDs(txns).
			withMembership(req.Filter.letsAll()).endingAs(req.Membership)
		var err error
		if r.out.Timeline, err = tf.format(ctx, r.picked); err != nil {
			return err
		}
		f := s.formatter(r.rv).forUser(req.User).forDevice(req.Device).withTxnIDs(txns)
		r.out.State, err = f.format(ctx, r.state)
		return err
	}
	if err := eachAtOnce(ctx, reads, syncRoomsAtOnce, formatOne); err != nil {
		return nil, err
	}
	out := make([]*RoomSync, len(reads))
	for i, r := range reads {
		out[i] = r.out
	}
	return out, nil
}

// eachAtOnce runs f on every item, up to limit at a time, and returns the
// first error. A panic in f is raised again in the caller's goroutine
// (which hands it to the request's), not in one of its own.
func eachAtOnce[T any](ctx context.Context, items []T, limit int, f func(context.Context, T) error) error {
	if len(items) == 1 {
		return f(ctx, items[0])
	}
	var panicked atomic.Value
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(limit)
	for _, it := range items {
		g.Go(func() (err error) {
			defer func() {
				if r := recover(); r != nil {
					panicked.CompareAndSwap(nil, fmt.Sprintf("%v\n%s", r, debug.Stack()))
					err = errors.New("panic while reading a room")
				}
			}()
			return f(gctx, it)
		})
	}
	err := g.Wait()
	if p := panicked.Load(); p != nil {
		panic(p)
	}
	return err
}

// prepareSync works out what a room's part of the sync covers.
func (s *Reader) prepareSync(ctx context.Context, req *SyncRoomRequest) (*roomRead, error) {
	rv, err := s.roomVersion(ctx, req.RoomID)
	if err != nil {
		return nil, err
	}
	r := &roomRead{req: req, rv: rv, upto: req.Upto, out: &RoomSync{}}
	if req.Membership == "leave" || req.Membership == "ban" {
		r.upto = min(r.upto, req.MembershipPos)
	}
	r.fresh = req.Since == 0 || req.MembershipPos > req.Since || req.FullState
	if req.Membership == "join" && r.fresh && req.Since > 0 && !req.FullState {
		// A join since the token that followed joins only (a display name
		// or avatar changed, a second join), of a user joined at the
		// token: the client holds the room and gets the changes since, as
		// for any joined room — not its whole timeline and state again.
		// An invite accepted, or a leave and a rejoin, since the token
		// make the room new to it (as Synapse does).
		stayed, err := s.JoinedThroughout(ctx, req.MembershipEvent, req.Since)
		if err != nil {
			return nil, err
		}
		r.fresh = !stayed
	}
	// stateless: a room left since the token that the client did not hold
	// as a joined room then (an invite refused or withdrawn, a knock, a
	// stay that began after the token). Its timeline runs from the token
	// to the leave, as the history rules let the user see it; it has no
	// state, which the user could not see and the client does not keep.
	if departed := req.Membership == "leave" || req.Membership == "ban"; departed && r.fresh && req.Since > 0 && !req.FullState {
		was, err := s.membershipAt(ctx, req.MembershipEvent, req.Since)
		if err != nil {
			return nil, err
		}
		// A room joined at the token: the changes since, as for a joined room.
		r.fresh, r.stateless = false, was != "join"
	}
	r.lower = req.Since
	if r.fresh {
		r.lower = 0
	}
	r.out.Fresh = r.fresh
	if r.limit = req.TimelineLimit; r.limit <= 0 {
		r.limit = 10
	}
	// The caller read the membership with the user's other rooms.
	r.v, err = s.viewerWith(ctx, req.RoomID, req.User, req.Membership, req.MembershipEvent)
	return r, err
}

// visibilitiesOf reads the history visibility of the state groups of the
// rooms' first pages that the cache does not hold, all at once (one room's
// at a time, viewer.facts reads it group by group).
func (s *Reader) visibilitiesOf(ctx context.Context, reads []*roomRead) error {
	var groups []int64
	seen := map[int64]bool{}
	for _, r := range reads {
		for _, e := range r.page {
			if _, ok := s.visibilities.get(e.StateGroup); !ok && !seen[e.StateGroup] {
				seen[e.StateGroup] = true
				groups = append(groups, e.StateGroup)
			}
		}
	}
	if len(groups) < 2 {
		return nil // as cheap by viewer.facts
	}
	ids, err := s.store.StateEntriesAt(ctx, groups, "m.room.history_visibility", "")
	if err != nil {
		return err
	}
	evIDs := make([]id.EventID, 0, len(ids))
	for _, eid := range ids {
		evIDs = append(evIDs, eid)
	}
	evs, err := s.store.GetEvents(ctx, evIDs)
	if err != nil {
		return err
	}
	vis := make(map[id.EventID]string, len(evs))
	for _, e := range evs {
		vis[e.EventID] = gjson.GetBytes(e.JSON, "content.history_visibility").Str
	}
	known := make(map[int64]string, len(groups))
	for _, g := range groups {
		known[g] = "shared" // the spec's default when the event is missing
		if hv := vis[ids[g]]; hv != "" {
			known[g] = hv
		}
		s.visibilities.put(g, known[g])
	}
	// The viewers keep them for this request even if the cache lets them go.
	for _, r := range reads {
		for _, e := range r.page {
			if hv, ok := known[e.StateGroup]; ok {
				if _, ok := r.v.groups[e.StateGroup]; !ok {
					r.v.groups[e.StateGroup] = groupFacts{visibility: hv}
				}
			}
		}
	}
	return nil
}

// pickTimeline chooses the events of a room's timeline, starting from its
// first page when it was read ahead.
func (s *Reader) pickTimeline(ctx context.Context, r *roomRead) error {
	req := r.req
	limit := r.limit
	// Newest first, one more than the limit to learn whether there are more.
	limited := false
	first := r.paged
	picked, _, err := r.v.pick(ctx, r.upto+1, limit+1, limit+1, func(cursor int64) ([]*storage.Event, error) {
		if first {
			first = false
			return r.page, nil
		}
		return s.timelinePage(ctx, req.RoomID, cursor, r.lower, limit+1)
	}, req.Filter.Allows)
	if err != nil {
		return err
	}
	if len(picked) > limit {
		picked, limited = picked[:limit], true
	}
	slices.Reverse(picked)
	r.picked, r.out.Limited = picked, limited
	if !r.fresh && len(picked) == 0 && !limited {
		r.out.Empty = true
		return nil
	}
	start := r.upto + 1
	if len(picked) > 0 {
		start = picked[0].StreamPos
	}
	r.out.PrevBatch = Token(start)
	r.need = lazyNeed(picked, req.User, r.fresh)
	if req.StateAfter {
		// The client takes no state from the timeline: the members it
		// changes are part of the state it gets.
		for _, e := range picked {
			if e.Type == "m.room.member" && e.StateKey != nil {
				r.need[id.UserID(*e.StateKey)] = true
			}
		}
	}
	return nil
}

// syncStates reads the state of each room's answer: up to the start of
// the timeline, or past its end (every state event of the timeline
// included) with StateAfter. The whole state of rooms new to the client,
// the usual case of a first sync, is read for all the rooms at once, its
// events too: the state before the timeline's first event, or with
// StateAfter (or no timeline) the state after the newest event of the
// first page (the room's last up to the answer's end, as LastEventBefore
// finds it).
func (s *Reader) syncStates(ctx context.Context, reads []*roomRead) error {
	// at is the state of one room to read with the others': that of
	// group, where first (the timeline's first event, when set) gives way
	// to the event it replaced.
	type at struct {
		r     *roomRead
		group int64
		first *storage.Event
	}
	var together []at
	var alone, changed []*roomRead
	for _, r := range reads {
		switch {
		case r.out.Empty || r.stateless:
		case r.fresh && !r.req.StateAfter && len(r.picked) > 0:
			together = append(together, at{r, r.picked[0].StateGroup, r.picked[0]})
		case r.fresh && r.paged && r.lower <= 0:
			if len(r.page) > 0 { // else the room has no event yet: no state
				together = append(together, at{r, r.page[0].StateGroup, nil})
			}
		case r.fresh:
			alone = append(alone, r)
		case r.out.Limited || r.req.StateAfter:
			changed = append(changed, r)
		}
	}
	// The others room by room, several at a time.
	err := eachAtOnce(ctx, alone, syncRoomsAtOnce, func(ctx context.Context, r *roomRead) error {
		var err error
		r.state, err = s.stateBefore(ctx, r.req.RoomID, r.stateEnd(), r.keep())
		return err
	})
	if err != nil {
		return err
	}
	// The state changes since the token of rooms known to the client, up
	// to their timelines (a gap) or past their ends, for all at once.
	if len(changed) > 0 {
		spans := make([]storage.RoomSpan, len(changed))
		for i, r := range changed {
			spans[i] = storage.RoomSpan{RoomID: r.req.RoomID, After: r.req.Since, Before: r.stateEnd()}
		}
		evs, err := s.store.StateEventsIn(ctx, spans)
		if err != nil {
			return err
		}
		for _, r := range changed {
			r.state = latestOfEachKey(evs[r.req.RoomID])
		}
	}
	if len(together) > 0 {
		groups := make([]int64, len(together))
		for i, a := range together {
			groups[i] = a.group
		}
		states, err := s.statesAt(ctx, groups)
		if err != nil {
			return err
		}
		ids := make([][]id.EventID, len(together))
		var all []id.EventID
		for i, a := range together {
			if a.first != nil {
				ids[i] = stateIDsBefore(a.first, states[a.group], a.r.keep())
			} else {
				ids[i] = stateIDs(states[a.group], a.r.keep())
			}
			all = append(all, ids[i]...)
		}
		evs, err := s.store.GetEvents(ctx, all)
		if err != nil {
			return err
		}
		byID := make(map[id.EventID]*storage.Event, len(evs))
		for _, e := range evs {
			byID[e.EventID] = e
		}
		for i, a := range together {
			r := a.r
			for _, eid := range ids[i] {
				if e, ok := byID[eid]; ok {
					r.state = append(r.state, e)
				}
			}
			slices.SortFunc(r.state, func(a, b *storage.Event) int { return int(a.StreamPos - b.StreamPos) })
		}
	}
	for _, r := range reads {
		if r.req.LazyMembers {
			r.state = lazyFilter(r.state, r.need)
		}
	}
	return nil
}

// keep is which state entries of the room to read: with lazy-loaded
// members, only those lazyFilter keeps (in a room of thousands, not
// thousands of member events per initial sync); else all (nil).
func (r *roomRead) keep() func(storage.StateEntry) bool {
	if !r.req.LazyMembers {
		return nil
	}
	return func(e storage.StateEntry) bool { return e.Type != "m.room.member" || r.need[id.UserID(e.StateKey)] }
}

// syncSummaries gives the rooms new to the client, or whose members
// changed, their summaries: those the caller did not read beforehand all
// at once.
func (s *Reader) syncSummaries(ctx context.Context, reads []*roomRead) error {
	missing := map[id.UserID][]id.RoomID{} // heroes are the others than the user
	for _, r := range reads {
		if r.out.Empty || !(r.fresh || hasMemberEvent(r.picked) || hasMemberEvent(r.state)) {
			continue
		}
		if r.out.Summary = r.req.Summary; r.out.Summary == nil {
			missing[r.req.User] = append(missing[r.req.User], r.req.RoomID)
		}
	}
	for user, rooms := range missing {
		sums, err := s.Summaries(ctx, rooms, user)
		if err != nil {
			return err
		}
		for _, r := range reads {
			if sum, ok := sums[r.req.RoomID]; ok && r.req.User == user && r.out.Summary == nil {
				r.out.Summary = sum
			}
		}
	}
	return nil
}

// membershipAt is the user's membership at stream position pos ("" for
// none), walking their membership events back from memEvent, the current
// one.
func (s *Reader) membershipAt(ctx context.Context, memEvent id.EventID, pos int64) (string, error) {
	return s.membershipSince(ctx, memEvent, pos, func(string) bool { return true })
}

// JoinedThroughout reports whether the user of a membership event was
// joined at position pos and every membership of theirs since, up to and
// including memEvent, was a join.
func (s *Reader) JoinedThroughout(ctx context.Context, memEvent id.EventID, pos int64) (bool, error) {
	at, err := s.membershipSince(ctx, memEvent, pos, func(m string) bool { return m == "join" })
	return at == "join", err
}

// membershipSince walks the user's membership events back from memEvent,
// the current one, through those each replaced, to their membership at
// stream position pos. It gives "" when there is none, when an event
// after pos has a membership keep refuses (the walk stops there), or past
// a bounded walk.
func (s *Reader) membershipSince(ctx context.Context, memEvent id.EventID, pos int64, keep func(membership string) bool) (string, error) {
	eid := memEvent
	for range 100 {
		ev, err := s.store.GetEvent(ctx, eid)
		if storageNotFound(err) {
			return "", nil
		} else if err != nil {
			return "", err
		}
		if ev.StreamPos <= pos {
			return ev.Membership, nil
		}
		if !keep(ev.Membership) || ev.ReplacesState == "" {
			return "", nil
		}
		eid = ev.ReplacesState
	}
	return "", nil
}

// stateBefore is the room state just before position pos, as events (those
// keep accepts; nil keeps all).
func (s *Reader) stateBefore(ctx context.Context, roomID id.RoomID, pos int64, keep func(storage.StateEntry) bool) ([]*storage.Event, error) {
	prev, err := s.store.LastEventBefore(ctx, roomID, pos)
	if storageNotFound(err) {
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	entries, err := s.store.StateAt(ctx, prev.StateGroup)
	if err != nil {
		return nil, err
	}
	evs, err := s.store.GetEvents(ctx, stateIDs(entries, keep))
	if err != nil {
		return nil, err
	}
	slices.SortFunc(evs, func(a, b *storage.Event) int { return int(a.StreamPos - b.StreamPos) })
	return evs, nil
}

// stateIDs are the events of the entries that keep accepts (nil: all).
func stateIDs(entries []storage.StateEntry, keep func(storage.StateEntry) bool) []id.EventID {
	ids := make([]id.EventID, 0, len(entries))
	for _, e := range entries {
		if keep == nil || keep(e) {
			ids = append(ids, e.EventID)
		}
	}
	return ids
}

// stateIDsBefore are the events of the room state just before e (those
// keep accepts; nil keeps all), given the entries of the state after it
// (its group): those, with what e replaced in place of a state event.
// Unlike the state after the event before it in the stream, it is there
// for the first event of a room joined over federation, whose state came
// as outliers.
func stateIDsBefore(e *storage.Event, entries []storage.StateEntry, keep func(storage.StateEntry) bool) []id.EventID {
	ids := make([]id.EventID, 0, len(entries))
	for _, en := range entries {
		if e.StateKey != nil && !e.Rejected && en.Type == e.Type && en.StateKey == *e.StateKey {
			if en.EventID == e.EventID {
				en.EventID = e.ReplacesState
			}
			if en.EventID == "" {
				continue
			}
		}
		if keep == nil || keep(en) {
			ids = append(ids, en.EventID)
		}
	}
	return ids
}

// latestOfEachKey keeps the last of state events (in stream order) of
// each key.
func latestOfEachKey(evs []*storage.Event) []*storage.Event {
	latest := map[[2]string]int{}
	for i, e := range evs {
		latest[[2]string{e.Type, *e.StateKey}] = i
	}
	out := evs[:0:0]
	for i, e := range evs {
		if latest[[2]string{e.Type, *e.StateKey}] == i {
			out = append(out, e)
		}
	}
	return out
}

// stateEnd is where the state of a room's answer ends: at the start of
// its timeline, or past its end with StateAfter (or no timeline).
func (r *roomRead) stateEnd() int64 {
	if len(r.picked) > 0 && !r.req.StateAfter {
		return r.picked[0].StreamPos
	}
	return r.upto + 1
}

// lazyNeed are the users whose member events lazyFilter keeps.
func lazyNeed(timeline []*storage.Event, user id.UserID, fresh bool) map[id.UserID]bool {
	need := map[id.UserID]bool{}
	for _, e := range timeline {
		need[e.Sender] = true
	}
	if fresh {
		need[user] = true
	}
	return need
}

// lazyFilter keeps the member events of the users need names (lazyNeed's:
// the timeline's senders and, for a room new to the client, the user) and
// every non-member state event.
func lazyFilter(state []*storage.Event, need map[id.UserID]bool) []*storage.Event {
	out := state[:0:0]
	for _, e := range state {
		if e.Type != "m.room.member" || need[id.UserID(*e.StateKey)] {
			out = append(out, e)
		}
	}
	return out
}

func hasMemberEvent(evs []*storage.Event) bool {
	return slices.ContainsFunc(evs, func(e *storage.Event) bool { return e.Type == "m.room.member" })
}

// Summaries are the /sync summaries of rooms, read together: member
// counts and, for rooms without a name, up to five heroes.
//
// They are cached until the next commit to their room (see roomGens): a
// first sync of a room where nothing happened since the last one reads
// nothing. Callers must not change them.
func (s *Reader) Summaries(ctx context.Context, rooms []id.RoomID, user id.UserID) (map[id.RoomID]map[string]any, error) {
	out := make(map[id.RoomID]map[string]any, len(rooms))
	var missing []id.RoomID
	gens := make(map[id.RoomID]int64, len(rooms))
	for _, room := range rooms {
		gen := s.gens.of(room)
		if c, ok := s.summaries.get(summaryKey{room, user}); ok && c.gen == gen {
			out[room] = c.sum
			continue
		}
		gens[room] = gen
		missing = append(missing, room)
	}
	if len(missing) == 0 {
		return out, nil
	}
	sums, err := s.store.RoomSummaries(ctx, missing, user)
	if err != nil {
		return nil, err
	}
	for room, sum := range sums {
		heroes := sum.Heroes
		if heroes == nil {
			heroes = []id.UserID{}
		}
		out[room] = map[string]any{"m.heroes": heroes, "m.joined_member_count": sum.Joined, "m.invited_member_count": sum.Invited}
		// Kept only if no commit to the room was seen while reading: one
		// seen after belongs to a later generation.
		if gen, ok := gens[room]; ok && s.gens.of(room) == gen {
			s.summaries.put(summaryKey{room, user}, cachedSummary{gen, out[room]})
		}
	}
	return out, nil
}

// StrippedState is the stripped state shown with an invite or knock.
func (s *Reader) StrippedState(ctx context.Context, roomID id.RoomID, memberEvent id.EventID) ([]map[string]any, error) {
	mem, err := s.store.GetEvent(ctx, memberEvent)
	if err != nil {
		return nil, err
	}
	// An invite to a room this server is not in carries what the inviting
	// server said of the room.
	if out, ok, err := outlierStrippedState(mem); ok || err != nil {
		return out, err
	}
	entries, err := s.store.CurrentState(ctx, roomID)
	if err != nil {
		return nil, err
	}
	keep := map[string]bool{"m.room.create": true, "m.room.join_rules": true, "m.room.name": true,
		"m.room.avatar": true, "m.room.canonical_alias": true, "m.room.encryption": true, "m.room.topic": true}
	// The inviter's member event too, so that clients can name who invited
	// (as Synapse sends it).
	ids := []id.EventID{memberEvent}
	for _, e := range entries {
		if (keep[e.Type] && e.StateKey == "") ||
			(e.Type == "m.room.member" && e.StateKey == mem.Sender.String() && e.EventID != memberEvent) {
			ids = append(ids, e.EventID)
		}
	}
	evs, err := s.store.GetEvents(ctx, ids)
	if err != nil {
		return nil, err
	}
	out := make([]map[string]any, 0, len(evs))
	for _, e := range evs {
		p, err := parsePDU(e)
		if err != nil {
			return nil, err
		}
		out = append(out, map[string]any{"type": p.Type, "state_key": *p.StateKey, "content": p.Content, "sender": p.Sender})
	}
	return out, nil
}

// UserMembership is a user's current membership in one room.
type UserMembership struct {
	RoomID     id.RoomID
	Membership string
	EventID    id.EventID
	Pos        int64
}

// UserMemberships lists every room the user has a membership in, with the
// stream position of their membership event.
func (s *Reader) UserMemberships(ctx context.Context, user id.UserID) ([]UserMembership, error) {
	ms, err := s.store.RoomsOfUser(ctx, user, nil)
	if err != nil {
		return nil, err
	}
	ids := make([]id.EventID, len(ms))
	for i, m := range ms {
		ids[i] = m.EventID
	}
	evs, err := s.store.GetEvents(ctx, ids)
	if err != nil {
		return nil, err
	}
	pos := make(map[id.EventID]int64, len(evs))
	for _, e := range evs {
		pos[e.EventID] = e.StreamPos
	}
	out := make([]UserMembership, len(ms))
	for i, m := range ms {
		out[i] = UserMembership{RoomID: m.RoomID, Membership: m.Membership, EventID: m.EventID,
			Pos: pos[m.EventID]}
	}
	return out, nil
}

// IsForgotten reports whether the user forgot the room.
func (s *Reader) IsForgotten(ctx context.Context, user id.UserID, roomID id.RoomID) (bool, error) {
	return s.store.IsForgotten(ctx, user, roomID)
}
