package rooms

import (
	"cmp"
	"context"
	"slices"

	"github.com/tidwall/gjson"
	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/storage"
)

// This file holds the reads of simplified sliding sync (MSC4186, core/sync's
// sliding.go): one room at a time, each bounded by stream positions.

// StateKey names one entry of a room state.
type StateKey struct {
	Type     string
	StateKey string
}

// MembershipFacts are what sliding sync needs of a membership event. They
// never change, so callers may cache them by event ID.
type MembershipFacts struct {
	// Sender of the event (another user for kicks and bans).
	Sender id.UserID
	// IsDirect is content.is_direct (invites to DMs).
	IsDirect bool
}

// MembershipFacts reads the facts of membership events; unknown events are
// left out.
func (s *Reader) MembershipFacts(ctx context.Context, eventIDs []id.EventID) (map[id.EventID]MembershipFacts, error) {
	evs, err := s.store.GetEvents(ctx, eventIDs)
	if err != nil {
		return nil, err
	}
	out := make(map[id.EventID]MembershipFacts, len(evs))
	for _, e := range evs {
		out[e.EventID] = MembershipFacts{Sender: e.Sender,
			IsDirect: gjson.GetBytes(e.JSON, "content.is_direct").Bool()}
	}
	return out, nil
}

// LastEventPos is the stream position of a room's latest accepted event at
// or before upto whose type is one of types (any type when types is empty);
// 0 when there is none.
func (s *Reader) LastEventPos(ctx context.Context, roomID id.RoomID, upto int64, types []string) (int64, error) {
	if r, ok := s.store.(storage.SlidingReader); ok {
		return r.LastEventPos(ctx, roomID, upto, types)
	}
	cursor := upto + 1
	for range 20 {
		batch, err := s.store.RoomEvents(ctx, roomID, cursor, 0, true, 50)
		if err != nil {
			return 0, err
		}
		for _, e := range batch {
			if len(types) == 0 || slices.Contains(types, e.Type) {
				return e.StreamPos, nil
			}
			cursor = e.StreamPos
		}
		if len(batch) < 50 {
			break
		}
	}
	return 0, nil
}

// SlidingTimelineRequest asks for the end of one room's timeline.
type SlidingTimelineRequest struct {
	User   id.UserID
	Device id.DeviceID
	RoomID id.RoomID
	// After is an exclusive lower bound (0: the whole history).
	After int64
	// Upto is the inclusive upper bound.
	Upto  int64
	Limit int
	// Membership is the user's membership at Upto ("" if unknown), from
	// which the events' unsigned.membership follow without a query.
	Membership string
}

// SlidingTimeline is the newest events of a room in (After, Upto] the user
// may see, oldest first.
type SlidingTimeline struct {
	Events []*ClientEvent
	// Positions are the stream positions of Events.
	Positions []int64
	// Limited: there are more visible events in the range than Limit.
	Limited bool
	// PrevBatch is a /messages token for the events before the timeline.
	PrevBatch string
	// Users are the senders of the events and the targets of member events.
	Users map[id.UserID]bool
}

// SlidingTimeline reads the newest events of a room for sliding sync.
func (s *Reader) SlidingTimeline(ctx context.Context, req *SlidingTimelineRequest) (*SlidingTimeline, error) {
	rv, err := s.roomVersion(ctx, req.RoomID)
	if err != nil {
		return nil, err
	}
	limit := max(req.Limit, 1)
	v, err := s.newViewer(ctx, req.RoomID, req.User)
	if err != nil {
		return nil, err
	}
	picked, _, err := v.pick(ctx, req.Upto+1, limit+1, limit+1, func(cursor int64) ([]*storage.Event, error) {
		return s.store.RoomEvents(ctx, req.RoomID, cursor, req.After, true, limit+1)
	}, nil)
	if err != nil {
		return nil, err
	}
	out := &SlidingTimeline{Users: map[id.UserID]bool{}}
	if len(picked) > limit {
		picked, out.Limited = picked[:limit], true
	}
	slices.Reverse(picked)
	if out.Events, err = s.formatter(rv).forUser(req.User).forDevice(req.Device).withMembership(true).endingAs(req.Membership).format(ctx, picked); err != nil {
		return nil, err
	}
	start := req.Upto + 1
	if len(picked) > 0 {
		start = picked[0].StreamPos
	}
	out.PrevBatch = Token(start)
	for _, e := range picked {
		out.Positions = append(out.Positions, e.StreamPos)
		out.Users[e.Sender] = true
		if e.Type == "m.room.member" && e.StateKey != nil {
			out.Users[id.UserID(*e.StateKey)] = true
		}
	}
	return out, nil
}

// SlidingStateIDs is the room state a user with this membership may read,
// as event IDs: the current state while they are joined, the state at their
// membership event after they left or were banned.
func (s *Reader) SlidingStateIDs(ctx context.Context, roomID id.RoomID, membership string, memberEvent id.EventID) (map[StateKey]id.EventID, error) {
	var entries []storage.StateEntry
	var err error
	if membership == "leave" || membership == "ban" {
		ev, gerr := s.store.GetEvent(ctx, memberEvent)
		if gerr != nil {
			return nil, gerr
		}
		entries, err = s.store.StateAt(ctx, ev.StateGroup)
	} else {
		entries, err = s.store.CurrentState(ctx, roomID)
	}
	if err != nil {
		return nil, err
	}
	out := make(map[StateKey]id.EventID, len(entries))
	for _, e := range entries {
		if e.EventID != "" {
			out[StateKey{e.Type, e.StateKey}] = e.EventID
		}
	}
	return out, nil
}

// ChangedStateKeys lists the state keys of a room that state events in
// (after, upto] set.
func (s *Reader) ChangedStateKeys(ctx context.Context, roomID id.RoomID, after, upto int64) (map[StateKey]bool, error) {
	evs, err := s.store.StateEventsBetween(ctx, roomID, after, upto+1)
	if err != nil {
		return nil, err
	}
	out := map[StateKey]bool{}
	for _, e := range evs {
		if e.StateKey != nil {
			out[StateKey{e.Type, *e.StateKey}] = true
		}
	}
	return out, nil
}

// FormatStateEvents renders state events by ID, in stream order.
func (s *Reader) FormatStateEvents(ctx context.Context, roomID id.RoomID, user id.UserID, ids []id.EventID) ([]*ClientEvent, error) {
	if len(ids) == 0 {
		return []*ClientEvent{}, nil
	}
	rv, err := s.roomVersion(ctx, roomID)
	if err != nil {
		return nil, err
	}
	evs, err := s.store.GetEvents(ctx, ids)
	if err != nil {
		return nil, err
	}
	slices.SortFunc(evs, func(a, b *storage.Event) int {
		if a.StreamPos != b.StreamPos {
			return cmp.Compare(a.StreamPos, b.StreamPos)
		}
		return cmp.Compare(a.EventID, b.EventID)
	})
	return s.formatter(rv).forUser(user).format(ctx, evs)
}

// MemberCounts counts a room's joined and invited members and picks up to
// five heroes (other joined or invited members, by user ID; left or banned
// ones when there are none).
func (s *Reader) MemberCounts(ctx context.Context, roomID id.RoomID, user id.UserID) (joined, invited int, heroes []id.UserID, err error) {
	members, err := s.store.RoomMembers(ctx, roomID, nil)
	if err != nil {
		return 0, 0, nil, err
	}
	var others []id.UserID
	for _, m := range members {
		switch m.Membership {
		case "join":
			joined++
		case "invite":
			invited++
		}
		if m.UserID == user {
			continue
		}
		if m.Membership == "join" || m.Membership == "invite" {
			heroes = append(heroes, m.UserID)
		} else if m.Membership == "leave" || m.Membership == "ban" {
			others = append(others, m.UserID)
		}
	}
	if len(heroes) == 0 {
		heroes = others
	}
	slices.Sort(heroes)
	if len(heroes) > 5 {
		heroes = heroes[:5]
	}
	return joined, invited, heroes, nil
}
