package rooms

import (
	"context"
	"slices"

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
	rv, err := s.roomVersion(ctx, req.RoomID)
	if err != nil {
		return nil, err
	}
	upto := req.Upto
	if req.Membership == "leave" || req.Membership == "ban" {
		upto = min(upto, req.MembershipPos)
	}
	fresh := req.Since == 0 || req.MembershipPos > req.Since || req.FullState
	// stateless: a room left since the token that the client did not hold
	// as a joined room then (an invite refused or withdrawn, a knock, a
	// stay that began after the token). Its timeline runs from the token
	// to the leave, as the history rules let the user see it; it has no
	// state, which the user could not see and the client does not keep.
	stateless := false
	if departed := req.Membership == "leave" || req.Membership == "ban"; departed && fresh && req.Since > 0 && !req.FullState {
		was, err := s.membershipAt(ctx, req.MembershipEvent, req.Since)
		if err != nil {
			return nil, err
		}
		// A room joined at the token: the changes since, as for a joined room.
		fresh, stateless = false, was != "join"
	}
	lower := req.Since
	if fresh {
		lower = 0
	}
	limit := req.TimelineLimit
	if limit <= 0 {
		limit = 10
	}
	// The caller read the membership with the user's other rooms.
	v, err := s.viewerWith(ctx, req.RoomID, req.User, req.Membership, req.MembershipEvent)
	if err != nil {
		return nil, err
	}
	// Newest first, one more than the limit to learn whether there are more.
	limited := false
	picked, _, err := v.pick(ctx, upto+1, limit+1, limit+1, func(cursor int64) ([]*storage.Event, error) {
		return s.timelinePage(ctx, req.RoomID, cursor, lower, limit+1)
	}, req.Filter.Allows)
	if err != nil {
		return nil, err
	}
	if len(picked) > limit {
		picked, limited = picked[:limit], true
	}
	slices.Reverse(picked)
	out := &RoomSync{Limited: limited}
	if !fresh && len(picked) == 0 && !limited {
		out.Empty = true
		return out, nil
	}
	start := upto + 1
	if len(picked) > 0 {
		start = picked[0].StreamPos
	}
	out.PrevBatch = Token(start)
	// The state is read up to the start of the timeline, or past its end
	// (every state event of the timeline included) with StateAfter.
	stateEnd := start
	if req.StateAfter {
		stateEnd = upto + 1
	}
	need := lazyNeed(picked, req.User, fresh)
	if req.StateAfter {
		// The client takes no state from the timeline: the members it
		// changes are part of the state it gets.
		for _, e := range picked {
			if e.Type == "m.room.member" && e.StateKey != nil {
				need[id.UserID(*e.StateKey)] = true
			}
		}
	}
	var stateEvents []*storage.Event
	switch {
	case stateless:
	case fresh:
		var keep func(storage.StateEntry) bool
		if req.LazyMembers {
			// Only the members lazyFilter keeps are read: in a room of
			// thousands, not thousands of member events per initial sync.
			keep = func(e storage.StateEntry) bool { return e.Type != "m.room.member" || need[id.UserID(e.StateKey)] }
		}
		if !req.StateAfter && len(picked) > 0 {
			stateEvents, err = s.stateBeforeEvent(ctx, picked[0], keep)
		} else {
			stateEvents, err = s.stateBefore(ctx, req.RoomID, stateEnd, keep)
		}
	case limited || req.StateAfter:
		stateEvents, err = s.stateChangesBetween(ctx, req.RoomID, req.Since, stateEnd)
	}
	if err != nil {
		return nil, err
	}
	if req.LazyMembers {
		stateEvents = lazyFilter(stateEvents, need)
	}
	// The device's transaction IDs of both lists in one read.
	txns, err := s.txnIDsOf(ctx, req.User, req.Device, picked, stateEvents)
	if err != nil {
		return nil, err
	}
	tf := s.formatter(rv).forUser(req.User).forDevice(req.Device).withTxnIDs(txns).
		withMembership(req.Filter.letsAll()).endingAs(req.Membership)
	if out.Timeline, err = tf.format(ctx, picked); err != nil {
		return nil, err
	}
	f := s.formatter(rv).forUser(req.User).forDevice(req.Device).withTxnIDs(txns)
	if out.State, err = f.format(ctx, stateEvents); err != nil {
		return nil, err
	}
	if fresh || hasMemberEvent(picked) || hasMemberEvent(stateEvents) {
		if out.Summary = req.Summary; out.Summary == nil {
			if out.Summary, err = s.summary(ctx, req.RoomID, req.User); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}

// membershipAt is the user's membership at stream position pos ("" for
// none), walking their membership events back from memEvent, the current
// one (a bounded walk: past it, none).
func (s *Reader) membershipAt(ctx context.Context, memEvent id.EventID, pos int64) (string, error) {
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
		if ev.ReplacesState == "" {
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
	ids := make([]id.EventID, 0, len(entries))
	for _, e := range entries {
		if keep == nil || keep(e) {
			ids = append(ids, e.EventID)
		}
	}
	evs, err := s.store.GetEvents(ctx, ids)
	if err != nil {
		return nil, err
	}
	slices.SortFunc(evs, func(a, b *storage.Event) int { return int(a.StreamPos - b.StreamPos) })
	return evs, nil
}

// stateBeforeEvent is the room state just before e, as events (those keep
// accepts; nil keeps all): the state after it (its group) with what it
// replaced in place of a state event. Unlike the state after the event
// before it in the stream, it is there for the first event of a room
// joined over federation, whose state came as outliers.
func (s *Reader) stateBeforeEvent(ctx context.Context, e *storage.Event, keep func(storage.StateEntry) bool) ([]*storage.Event, error) {
	entries, err := s.store.StateAt(ctx, e.StateGroup)
	if err != nil {
		return nil, err
	}
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
	evs, err := s.store.GetEvents(ctx, ids)
	if err != nil {
		return nil, err
	}
	slices.SortFunc(evs, func(a, b *storage.Event) int { return int(a.StreamPos - b.StreamPos) })
	return evs, nil
}

// stateChangesBetween is the state that changed in (after, before): the
// latest event of each key, in stream order.
func (s *Reader) stateChangesBetween(ctx context.Context, roomID id.RoomID, after, before int64) ([]*storage.Event, error) {
	evs, err := s.store.StateEventsBetween(ctx, roomID, after, before)
	if err != nil {
		return nil, err
	}
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
	return out, nil
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

// summary is the room summary of /sync: member counts and, for rooms without
// a name, up to five heroes.
func (s *Reader) summary(ctx context.Context, roomID id.RoomID, user id.UserID) (map[string]any, error) {
	got, err := s.Summaries(ctx, []id.RoomID{roomID}, user)
	return got[roomID], err
}

// Summaries are the /sync summaries of rooms, read together.
func (s *Reader) Summaries(ctx context.Context, rooms []id.RoomID, user id.UserID) (map[id.RoomID]map[string]any, error) {
	sums, err := s.store.RoomSummaries(ctx, rooms, user)
	if err != nil {
		return nil, err
	}
	out := make(map[id.RoomID]map[string]any, len(sums))
	for room, sum := range sums {
		heroes := sum.Heroes
		if heroes == nil {
			heroes = []id.UserID{}
		}
		out[room] = map[string]any{"m.heroes": heroes, "m.joined_member_count": sum.Joined, "m.invited_member_count": sum.Invited}
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
