package rooms

import (
	"context"
	"slices"
	"strconv"
	"strings"

	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/core/stream"
	"github.com/tributary-hs/tributary/core/types"
	"github.com/tributary-hs/tributary/storage"
)

// roomVersion returns the version of a known room.
func (s *Reader) roomVersion(ctx context.Context, roomID id.RoomID) (id.RoomVersion, error) {
	if rv, ok := s.versions.get(roomID); ok {
		return rv, nil // a room's version never changes
	}
	r, err := s.store.GetRoom(ctx, roomID)
	if storageNotFound(err) {
		return "", errNotMember(roomID)
	} else if err != nil {
		return "", err
	}
	s.versions.put(roomID, id.RoomVersion(r.RoomVersion))
	return id.RoomVersion(r.RoomVersion), nil
}

// readableState returns the state entries a user may read, or 403.
func (s *Reader) readableState(ctx context.Context, roomID id.RoomID, user id.UserID) ([]storage.StateEntry, error) {
	if _, err := s.roomVersion(ctx, roomID); err != nil {
		return nil, err
	}
	group, ok, err := s.stateGroupFor(ctx, roomID, user)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, errNotMember(roomID)
	}
	if group == 0 {
		return s.store.CurrentState(ctx, roomID)
	}
	return s.store.StateAt(ctx, group)
}

// StateEvent returns the content of one state event (GET /state/{type}/{key}).
func (s *Reader) StateEvent(ctx context.Context, roomID id.RoomID, user id.UserID, evType, stateKey string) (*ClientEvent, error) {
	entries, err := s.readableState(ctx, roomID, user)
	if err != nil {
		return nil, err
	}
	for _, e := range entries {
		if e.Type == evType && e.StateKey == stateKey {
			evs, err := s.eventsByID(ctx, roomID, []id.EventID{e.EventID})
			if err != nil {
				return nil, err
			}
			if len(evs) == 1 {
				return evs[0], nil
			}
		}
	}
	return nil, types.NotFound("No %s state event with key %q", evType, stateKey)
}

// eventsByID formats events by ID in the order given.
func (s *Reader) eventsByID(ctx context.Context, roomID id.RoomID, ids []id.EventID) ([]*ClientEvent, error) {
	rv, err := s.roomVersion(ctx, roomID)
	if err != nil {
		return nil, err
	}
	evs, err := s.store.GetEvents(ctx, ids)
	if err != nil {
		return nil, err
	}
	order := make(map[id.EventID]int, len(ids))
	for i, x := range ids {
		order[x] = i
	}
	slices.SortFunc(evs, func(a, b *storage.Event) int { return order[a.EventID] - order[b.EventID] })
	return s.formatter(rv).format(ctx, evs)
}

// State returns the full state a user may read (GET /state).
func (s *Reader) State(ctx context.Context, roomID id.RoomID, user id.UserID) ([]*ClientEvent, error) {
	entries, err := s.readableState(ctx, roomID, user)
	if err != nil {
		return nil, err
	}
	ids := make([]id.EventID, len(entries))
	for i, e := range entries {
		ids[i] = e.EventID
	}
	slices.Sort(ids)
	return s.eventsByID(ctx, roomID, ids)
}

// MembersRequest filters GET /members.
type MembersRequest struct {
	At            string
	Membership    string
	NotMembership string
}

// Members returns member events (GET /members).
func (s *Reader) Members(ctx context.Context, roomID id.RoomID, user id.UserID, req MembersRequest) ([]*ClientEvent, error) {
	for _, m := range []string{req.Membership, req.NotMembership} {
		switch m {
		case "", "join", "invite", "knock", "leave", "ban":
		default:
			return nil, types.InvalidParam("Unknown membership %q", m)
		}
	}
	entries, err := s.readableState(ctx, roomID, user)
	if err != nil {
		return nil, err
	}
	if req.At != "" {
		pos, err := ParseToken(req.At)
		if err != nil {
			return nil, err
		}
		prior, err := s.store.RoomEvents(ctx, roomID, pos, 0, true, 1)
		if err != nil {
			return nil, err
		}
		if len(prior) == 1 {
			v, err := s.newViewer(ctx, roomID, user)
			if err != nil {
				return nil, err
			}
			if ok, err := v.canSee(ctx, prior[0]); err != nil {
				return nil, err
			} else if !ok {
				return nil, errNotMember(roomID)
			}
			if entries, err = s.store.StateAt(ctx, prior[0].StateGroup); err != nil {
				return nil, err
			}
		}
	}
	var ids []id.EventID
	for _, e := range entries {
		if e.Type == "m.room.member" {
			ids = append(ids, e.EventID)
		}
	}
	evs, err := s.store.GetEvents(ctx, ids)
	if err != nil {
		return nil, err
	}
	evs = slices.DeleteFunc(evs, func(e *storage.Event) bool {
		return (req.Membership != "" && e.Membership != req.Membership) ||
			(req.NotMembership != "" && e.Membership == req.NotMembership)
	})
	slices.SortFunc(evs, func(a, b *storage.Event) int { return strings.Compare(*a.StateKey, *b.StateKey) })
	rv, err := s.roomVersion(ctx, roomID)
	if err != nil {
		return nil, err
	}
	return s.formatter(rv).format(ctx, evs)
}

// JoinedMember is an entry of GET /joined_members. Both keys are always
// there, null when unset, as Synapse answers: clients read them without
// checking for them.
type JoinedMember struct {
	DisplayName *string `json:"display_name"`
	AvatarURL   *string `json:"avatar_url"`
}

// JoinedMembers lists the joined members with their profiles; only members may ask.
func (s *Reader) JoinedMembers(ctx context.Context, roomID id.RoomID, user id.UserID) (map[id.UserID]JoinedMember, error) {
	if _, err := s.roomVersion(ctx, roomID); err != nil {
		return nil, err
	}
	cur, _, err := s.Membership(ctx, roomID, user)
	if err != nil {
		return nil, err
	}
	if cur != "join" {
		if ok, err := s.mayPeek(ctx, roomID); err != nil {
			return nil, err
		} else if !ok {
			return nil, errNotMember(roomID)
		}
	}
	members, err := s.store.RoomMembers(ctx, roomID, []string{"join"})
	if err != nil {
		return nil, err
	}
	ids := make([]id.EventID, len(members))
	for i, m := range members {
		ids[i] = m.EventID
	}
	evs, err := s.store.GetEvents(ctx, ids)
	if err != nil {
		return nil, err
	}
	out := make(map[id.UserID]JoinedMember, len(evs))
	for _, e := range evs {
		p, err := pduOf(e)
		if err != nil {
			return nil, err
		}
		var c struct {
			DisplayName *string `json:"displayname"`
			AvatarURL   *string `json:"avatar_url"`
		}
		_ = jsonUnmarshal(p.Content, &c)
		out[id.UserID(*e.StateKey)] = JoinedMember{DisplayName: c.DisplayName, AvatarURL: c.AvatarURL}
	}
	return out, nil
}

// JoinedRooms lists the rooms the user is joined to.
func (s *Reader) JoinedRooms(ctx context.Context, user id.UserID) ([]id.RoomID, error) {
	ms, err := s.store.RoomsOfUser(ctx, user, []string{"join"})
	if err != nil {
		return nil, err
	}
	out := make([]id.RoomID, len(ms))
	for i, m := range ms {
		out[i] = m.RoomID
	}
	return out, nil
}

// Token renders a stream position as a pagination token.
func Token(pos int64) string { return "s" + strconv.FormatInt(pos, 10) }

// ParseToken reads a pagination token "s<pos>": the point just before the
// event at pos (negative for history inserted before the room's start). A
// sync token ("s<pos>_…", the events position first) is the point just
// after the event at pos — everything up to and including it was synced —
// so it reads as pos+1. Both are read strictly (types.ParsePosition): a
// position too large to add one to, or anything after the positions, is
// an invalid token.
func ParseToken(tok string) (int64, error) {
	bad := types.InvalidParam("Invalid pagination token %q", tok)
	rest, ok := strings.CutPrefix(tok, "s")
	if !ok {
		return 0, bad
	}
	parts := strings.Split(rest, "_")
	if len(parts) > len(stream.Positions{}) {
		return 0, bad
	}
	synced := len(parts) > 1
	pos, ok := types.ParsePosition(parts[0], !synced)
	if !ok {
		return 0, bad
	}
	for _, p := range parts[1:] {
		if _, ok := types.ParsePosition(p, false); !ok {
			return 0, bad
		}
	}
	if synced {
		pos++
	}
	return pos, nil
}

// MessagesRequest is GET /messages.
type MessagesRequest struct {
	RoomID    id.RoomID
	User      id.UserID
	Device    id.DeviceID
	From, To  string
	Backwards bool
	Limit     int
	Filter    *EventFilter
	// admin reads as a server admin: every event, whatever the room's
	// history visibility and the admin's membership (AdminMessages).
	admin bool
}

// Page is a page of timeline events.
type Page struct {
	Chunk []*ClientEvent `json:"chunk"`
	Start string         `json:"start"`
	End   string         `json:"end,omitempty"`
	State []*ClientEvent `json:"state,omitempty"`
}

// CheckReadable answers 403 unless the room exists and the user may read
// its history as Messages lets them (a member, a former member up to their
// leave, anyone in a world-readable room). Handlers use it before they
// answer a parameter error, which would otherwise tell a stranger that the
// room exists.
func (s *Reader) CheckReadable(ctx context.Context, roomID id.RoomID, user id.UserID) error {
	if _, err := s.roomVersion(ctx, roomID); err != nil {
		return err
	}
	if _, ok, err := s.stateGroupFor(ctx, roomID, user); err != nil {
		return err
	} else if !ok {
		return errNotMember(roomID)
	}
	return nil
}

// Messages pages through a room's timeline (GET /messages). A token P is the
// point just before the event at position P.
func (s *Reader) Messages(ctx context.Context, req *MessagesRequest) (*Page, error) {
	rv, err := s.roomVersion(ctx, req.RoomID)
	if err != nil {
		return nil, err
	}
	v := &viewer{s: s, roomID: req.RoomID, all: true}
	if !req.admin {
		if v, err = s.newViewer(ctx, req.RoomID, req.User); err != nil {
			return nil, err
		}
		if v.current != "join" {
			if _, ok, err := s.stateGroupFor(ctx, req.RoomID, req.User); err != nil {
				return nil, err
			} else if !ok {
				return nil, errNotMember(req.RoomID)
			}
		}
	}
	limit := req.Limit
	if limit <= 0 {
		limit = 10
	}
	limit = min(limit, 1000)
	var from int64
	switch {
	case req.From != "":
		if from, err = ParseToken(req.From); err != nil {
			return nil, err
		}
	case req.Backwards:
		max, err := s.store.MaxStreamPos(ctx)
		if err != nil {
			return nil, err
		}
		from = max + 1
	default:
		from = -1 << 62
	}
	var to int64
	if req.To != "" {
		if to, err = ParseToken(req.To); err != nil {
			return nil, err
		}
	}
	page := &Page{Start: Token(from), Chunk: []*ClientEvent{}}
	cursor := from
	var picked []*storage.Event
	exhausted := false
	backfills := 0
	for len(picked) < limit && !exhausted {
		var batch []*storage.Event
		if req.Backwards {
			bound := int64(0)
			if req.To != "" {
				bound = to - 1
			}
			batch, err = s.store.RoomEvents(ctx, req.RoomID, cursor, bound, true, limit)
		} else {
			bound := int64(0)
			if req.To != "" {
				bound = to
			}
			batch, err = s.store.RoomEvents(ctx, req.RoomID, cursor-1, bound, false, limit)
		}
		if err != nil {
			return nil, err
		}
		if len(batch) < limit {
			exhausted = true
		}
		for _, e := range batch {
			if req.Backwards {
				cursor = e.StreamPos
			} else {
				cursor = e.StreamPos + 1
			}
			if !req.Filter.Allows(e) {
				continue
			}
			ok, err := v.canSee(ctx, e)
			if err != nil {
				return nil, err
			}
			if ok {
				picked = append(picked, e)
				if len(picked) == limit {
					break
				}
			}
		}
		if exhausted && req.Backwards && req.To == "" && len(picked) < limit && s.backfill != nil && backfills < 2 {
			// Past the oldest event stored: other servers of the room may
			// have more (a room joined over federation). What they give
			// is stored below the cursor.
			backfills++
			n, err := s.backfill(ctx, req.RoomID, limit-len(picked))
			if err != nil {
				s.log.InfoContext(ctx, "backfill for /messages failed", "room", req.RoomID, "err", err)
			}
			exhausted = n == 0
		}
	}
	// end is left out only where the room's history begins: forwards the
	// client keeps paging (new events come), and a page stopped by "to" is
	// not the start of the room.
	if !req.Backwards || !exhausted || len(picked) == limit || req.To != "" {
		page.End = Token(cursor)
	}
	f := s.formatter(rv).forUser(req.User).forDevice(req.Device)
	cf := s.formatter(rv).forUser(req.User).forDevice(req.Device).withMembership(req.Filter.letsAll())
	if req.Backwards {
		slices.Reverse(picked) // oldest first, to follow the user's membership
	}
	if page.Chunk, err = cf.format(ctx, picked); err != nil {
		return nil, err
	}
	if req.Backwards {
		slices.Reverse(picked)
		slices.Reverse(page.Chunk)
	}
	if req.Filter != nil && req.Filter.LazyLoadMembers {
		if page.State, err = s.lazyMembers(ctx, req.RoomID, picked, f); err != nil {
			return nil, err
		}
	}
	return page, nil
}

// lazyMembers returns the member events of the senders of evs, at each
// sender's most recent event in the page.
func (s *Reader) lazyMembers(ctx context.Context, roomID id.RoomID, evs []*storage.Event, f *formatter) ([]*ClientEvent, error) {
	seen := map[id.UserID]bool{}
	var ids []id.EventID
	for _, e := range evs {
		if seen[e.Sender] {
			continue
		}
		seen[e.Sender] = true
		eid, err := s.store.StateEntryAt(ctx, e.StateGroup, "m.room.member", e.Sender.String())
		if err != nil {
			return nil, err
		}
		if eid != "" {
			ids = append(ids, eid)
		}
	}
	mevs, err := s.store.GetEvents(ctx, ids)
	if err != nil {
		return nil, err
	}
	return f.format(ctx, mevs)
}

// Event returns one event the user may see (GET /rooms/{id}/event/{eventId}).
// EventAnywhere returns an event the user may see, whatever its room
// (GET /events/{eventId}, deprecated).
func (s *Reader) EventAnywhere(ctx context.Context, user id.UserID, eventID id.EventID) (*ClientEvent, error) {
	eventID, err := s.ResolveEventID(ctx, eventID)
	if err != nil {
		return nil, err
	}
	e, err := s.store.GetEvent(ctx, eventID)
	if storageNotFound(err) {
		return nil, types.NotFound("Event not found")
	} else if err != nil {
		return nil, err
	}
	return s.Event(ctx, e.RoomID, user, eventID)
}

func (s *Reader) Event(ctx context.Context, roomID id.RoomID, user id.UserID, eventID id.EventID) (*ClientEvent, error) {
	return s.EventForDevice(ctx, roomID, user, "", eventID)
}

// EventForDevice is Event for a device (GET /event): the device's own
// events carry unsigned.transaction_id, as in sync and /messages.
func (s *Reader) EventForDevice(ctx context.Context, roomID id.RoomID, user id.UserID, device id.DeviceID,
	eventID id.EventID) (*ClientEvent, error) {
	return s.eventFor(ctx, roomID, user, device, eventID, false)
}

// eventFor is EventForDevice, or for a server admin (every event).
func (s *Reader) eventFor(ctx context.Context, roomID id.RoomID, user id.UserID, device id.DeviceID,
	eventID id.EventID, admin bool) (*ClientEvent, error) {
	rv, err := s.roomVersion(ctx, roomID)
	if err != nil {
		return nil, err
	}
	if eventID, err = s.ResolveEventID(ctx, eventID); err != nil {
		return nil, err
	}
	e, err := s.store.GetEvent(ctx, eventID)
	if storageNotFound(err) || (err == nil && (e.RoomID != roomID || e.Rejected || e.SoftFailed)) {
		return nil, types.NotFound("Event not found")
	} else if err != nil {
		return nil, err
	}
	v := &viewer{s: s, roomID: roomID, all: true}
	if !admin {
		if v, err = s.newViewer(ctx, roomID, user); err != nil {
			return nil, err
		}
	}
	if ok, err := v.canSee(ctx, e); err != nil {
		return nil, err
	} else if !ok {
		return nil, types.NotFound("Event not found")
	}
	out, err := s.formatter(rv).forUser(user).forDevice(device).withMembership(false).format(ctx, []*storage.Event{e})
	if err != nil {
		return nil, err
	}
	return out[0], nil
}

// ContextResult is GET /context.
type ContextResult struct {
	Event        *ClientEvent   `json:"event"`
	EventsBefore []*ClientEvent `json:"events_before"`
	EventsAfter  []*ClientEvent `json:"events_after"`
	State        []*ClientEvent `json:"state"`
	Start        string         `json:"start"`
	End          string         `json:"end"`
}

// Context returns an event with the events around it and the state at it.
func (s *Reader) Context(ctx context.Context, roomID id.RoomID, user id.UserID, eventID id.EventID, limit int, filter *EventFilter) (*ContextResult, error) {
	return s.context(ctx, roomID, user, eventID, limit, filter, false)
}

// AdminContext is Context for a server admin: every event, whatever the
// room's history visibility and the admin's membership.
func (s *Reader) AdminContext(ctx context.Context, roomID id.RoomID, admin id.UserID, eventID id.EventID, limit int, filter *EventFilter) (*ContextResult, error) {
	if _, err := s.getRoom(ctx, roomID); err != nil {
		return nil, err
	}
	return s.context(ctx, roomID, admin, eventID, limit, filter, true)
}

// AdminMessages is Messages for a server admin (see AdminContext).
func (s *Reader) AdminMessages(ctx context.Context, req *MessagesRequest) (*Page, error) {
	if _, err := s.getRoom(ctx, req.RoomID); err != nil {
		return nil, err
	}
	r := *req
	r.admin = true
	return s.Messages(ctx, &r)
}

func (s *Reader) context(ctx context.Context, roomID id.RoomID, user id.UserID, eventID id.EventID, limit int, filter *EventFilter,
	admin bool) (*ContextResult, error) {
	ev, err := s.eventFor(ctx, roomID, user, "", eventID, admin)
	if err != nil {
		return nil, err
	}
	if limit < 0 {
		return nil, types.InvalidParam("limit must not be negative")
	}
	limit = min(limit, 100) // 0: the event alone (the HTTP default is 10)
	// The limit counts both sides; with a limit of 1 there is nothing before
	// (Messages would take a limit of 0 as its default of 10).
	before := &Page{Chunk: []*ClientEvent{}}
	if limit/2 > 0 {
		if before, err = s.Messages(ctx, &MessagesRequest{RoomID: roomID, User: user, From: Token(ev.pos), Backwards: true,
			Limit: limit / 2, Filter: filter, admin: admin}); err != nil {
			return nil, err
		}
	}
	after := &Page{Chunk: []*ClientEvent{}}
	if limit-limit/2 > 0 {
		if after, err = s.Messages(ctx, &MessagesRequest{RoomID: roomID, User: user, From: Token(ev.pos + 1),
			Limit: limit - limit/2, Filter: filter, admin: admin}); err != nil {
			return nil, err
		}
	}
	res := &ContextResult{Event: ev, EventsBefore: before.Chunk, EventsAfter: after.Chunk,
		Start: Token(ev.pos), End: Token(ev.pos + 1)}
	if n := len(before.Chunk); n > 0 {
		res.Start = Token(before.Chunk[n-1].pos)
	}
	if n := len(after.Chunk); n > 0 {
		res.End = Token(after.Chunk[n-1].pos + 1)
	}
	stored, err := s.store.GetEvent(ctx, eventID)
	if err != nil {
		return nil, err
	}
	entries, err := s.store.StateAt(ctx, stored.StateGroup)
	if err != nil {
		return nil, err
	}
	var ids []id.EventID
	for _, e := range entries {
		if filter != nil && filter.LazyLoadMembers && e.Type == "m.room.member" {
			continue
		}
		ids = append(ids, e.EventID)
	}
	if res.State, err = s.eventsByID(ctx, roomID, ids); err != nil {
		return nil, err
	}
	if filter != nil && filter.LazyLoadMembers {
		all := append(append([]*ClientEvent{ev}, before.Chunk...), after.Chunk...)
		need := map[id.UserID]bool{}
		for _, c := range all {
			need[c.Sender] = true
		}
		for u := range need {
			if eid, err := s.store.StateEntryAt(ctx, stored.StateGroup, "m.room.member", string(u)); err != nil {
				return nil, err
			} else if eid != "" {
				mem, err := s.eventsByID(ctx, roomID, []id.EventID{eid})
				if err != nil {
					return nil, err
				}
				res.State = append(res.State, mem...)
			}
		}
	}
	return res, nil
}
