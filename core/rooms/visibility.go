package rooms

import (
	"context"
	"math"
	"sync"

	"github.com/tidwall/gjson"
	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/storage"
)

// viewer answers "may this user see this event" for one request, caching
// what it learns per state group (client-server API, "History visibility").
type viewer struct {
	s       *Reader
	user    id.UserID
	roomID  id.RoomID
	current string // the user's current membership
	// joinedUntil is the stream position at which the user's last stay in
	// the room ended (the event that replaced their join), MaxInt64 while
	// they are joined, 0 if they never were: "shared" history is visible up
	// to it.
	joinedUntil int64
	groups      map[int64]groupFacts
	// ignored are the users the viewer ignores: their events other than
	// state are not shown (spec, "Ignoring Users").
	ignored map[id.UserID]bool
	// all: a server admin's view, which sees every event.
	all bool
}

// groupFacts is what a state group says for one viewer: the room's
// history visibility (the same for everyone) and the viewer's membership
// (looked up only when the visibility leaves the answer to it).
type groupFacts struct {
	visibility string
	membership string
	// membershipKnown: membership was looked up.
	membershipKnown bool
}

func (s *Reader) newViewer(ctx context.Context, roomID id.RoomID, user id.UserID) (*viewer, error) {
	cur, memEvent, err := s.Membership(ctx, roomID, user)
	if err != nil {
		return nil, err
	}
	return s.viewerWith(ctx, roomID, user, cur, memEvent)
}

// viewerWith builds a viewer from a membership the caller already knows.
func (s *Reader) viewerWith(ctx context.Context, roomID id.RoomID, user id.UserID, cur string, memEvent id.EventID) (*viewer, error) {
	var err error
	v := &viewer{s: s, user: user, roomID: roomID, current: cur, groups: map[int64]groupFacts{}}
	if v.ignored, err = s.IgnoredBy(ctx, user); err != nil {
		return nil, err
	}
	if cur == "join" {
		v.joinedUntil = math.MaxInt64
	} else if cur != "" {
		if v.joinedUntil, err = s.lastJoinEnd(ctx, memEvent); err != nil {
			return nil, err
		}
	}
	return v, nil
}

// IgnoredBy is the set of users a user ignores (their m.ignored_user_list;
// nil if none), cached until their account data changes.
func (s *Reader) IgnoredBy(ctx context.Context, user id.UserID) (map[id.UserID]bool, error) {
	if s.opts.AccountData == nil {
		return nil, nil
	}
	return s.ignores.Get(user, func() (map[id.UserID]bool, bool, error) {
		e, err := s.opts.AccountData.GetAccountData(ctx, user, "", IgnoredUserListType)
		if storageNotFound(err) {
			return nil, true, nil
		} else if err != nil {
			return nil, false, err
		}
		var set map[id.UserID]bool
		gjson.GetBytes(e.Content, "ignored_users").ForEach(func(k, _ gjson.Result) bool {
			if set == nil {
				set = map[id.UserID]bool{}
			}
			set[id.UserID(k.Str)] = true
			return true
		})
		return set, true, nil
	})
}

// lastJoinEnd walks a user's membership events back from their current one
// to the one that ended their last join, and returns its stream position (0
// if they were never joined, as far as a bounded walk goes).
func (s *Reader) lastJoinEnd(ctx context.Context, memEvent id.EventID) (int64, error) {
	eid := memEvent
	for range 100 {
		ev, err := s.store.GetEvent(ctx, eid)
		if storageNotFound(err) {
			return 0, nil
		} else if err != nil {
			return 0, err
		}
		if ev.ReplacesState == "" {
			return 0, nil
		}
		prev, err := s.store.GetEvent(ctx, ev.ReplacesState)
		if storageNotFound(err) {
			return 0, nil
		} else if err != nil {
			return 0, err
		}
		if prev.Membership == "join" {
			return ev.StreamPos, nil
		}
		eid = ev.ReplacesState
	}
	return 0, nil
}

func (v *viewer) facts(ctx context.Context, group int64) (groupFacts, error) {
	if f, ok := v.groups[group]; ok {
		return f, nil
	}
	// State groups never change, so what they say is cached across
	// requests: the visibility per group, a membership per group and user.
	vis, ok := v.s.visibilities.get(group)
	if !ok {
		vis = "shared" // the spec's default when the event is missing
		// The key and its event in one read.
		if ev, err := v.s.store.StateEventAt(ctx, group, "m.room.history_visibility", ""); err == nil {
			if hv := gjson.GetBytes(ev.JSON, "content.history_visibility").Str; hv != "" {
				vis = hv
			}
		} else if !storageNotFound(err) {
			return groupFacts{}, err
		}
		v.s.visibilities.put(group, vis)
	}
	f := groupFacts{visibility: vis}
	v.groups[group] = f
	return f, nil
}

// membershipAt completes f with the viewer's membership in the group.
func (v *viewer) membershipAt(ctx context.Context, group int64, f groupFacts) (groupFacts, error) {
	if f.membershipKnown {
		return f, nil
	}
	m, err := v.s.membershipInGroup(ctx, group, v.user)
	if err != nil {
		return f, err
	}
	f.membership, f.membershipKnown = m, true
	v.groups[group] = f
	return f, nil
}

// membershipInGroup is a user's membership in a state group ("" for none),
// cached across requests: state groups never change.
func (s *Reader) membershipInGroup(ctx context.Context, group int64, user id.UserID) (string, error) {
	key := factsKey{group: group, user: user}
	if m, ok := s.facts.get(key); ok {
		return m, nil
	}
	memID, err := s.store.StateEntryAt(ctx, group, "m.room.member", string(user))
	if err != nil {
		return "", err
	}
	m := ""
	if memID != "" {
		if ev, err := s.store.GetEvent(ctx, memID); err == nil {
			m = ev.Membership
		} else if !storageNotFound(err) {
			return "", err
		}
	}
	s.facts.put(key, m)
	return m, nil
}

type factsKey struct {
	group int64
	user  id.UserID
}

// lru is a small bounded cache: when full, a quarter of the entries go, the
// oldest first. Reads share the lock (a message read by 2,000 woken
// long-polls at once). With a size function it is bounded by the sizes of
// its values too: past maxSize the oldest go until a quarter is free.
type lru[K comparable, V any] struct {
	mu      sync.RWMutex
	max     int
	items   map[K]V
	order   []K
	size    func(V) int
	maxSize int
	total   int // the sizes of items' values, with size
}

func newLRU[K comparable, V any](max int) *lru[K, V] {
	return &lru[K, V]{max: max, items: make(map[K]V)} // grows on demand: idle servers stay small
}

// newSizedLRU bounds the cache by max values and by maxSize, the sum of
// their sizes as size tells them: values whose sizes vary a hundredfold
// (events of 300 bytes to 64 KiB) are not bounded by their number.
func newSizedLRU[K comparable, V any](max, maxSize int, size func(V) int) *lru[K, V] {
	c := newLRU[K, V](max)
	c.size, c.maxSize = size, maxSize
	return c
}

func (c *lru[K, V]) sizeOf(v V) int {
	if c.size == nil {
		return 0
	}
	return c.size(v)
}

func (c *lru[K, V]) get(k K) (V, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	v, ok := c.items[k]
	return v, ok
}

func (c *lru[K, V]) put(k K, v V) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.sizeOf(v)
	if old, ok := c.items[k]; ok {
		c.total += n - c.sizeOf(old)
		c.items[k] = v
		return
	}
	if len(c.items) >= c.max || (c.size != nil && c.total+n > c.maxSize) {
		c.evict(n)
	}
	c.items[k] = v
	c.total += n
	c.order = append(c.order, k)
}

// evict drops the oldest entries: a quarter of max, and more until a
// quarter of maxSize is free for a value of size n.
func (c *lru[K, V]) evict(n int) {
	drop := 0
	if len(c.items) >= c.max {
		drop = c.max / 4
	}
	i := 0
	for ; i < len(c.order) && (i < drop || (c.size != nil && c.total+n > c.maxSize-c.maxSize/4)); i++ {
		if v, ok := c.items[c.order[i]]; ok {
			c.total -= c.sizeOf(v)
			delete(c.items, c.order[i])
		}
	}
	c.order = append(c.order[:0], c.order[i:]...)
}

// forget drops k (its place in the eviction order stays: evicting it later
// finds nothing, or drops a newer value early, which is only a miss).
func (c *lru[K, V]) forget(k K) {
	c.mu.Lock()
	if v, ok := c.items[k]; ok {
		c.total -= c.sizeOf(v)
		delete(c.items, k)
	}
	c.mu.Unlock()
}

// canSee applies the history visibility rules to one event, using the state
// after the event.
func (v *viewer) canSee(ctx context.Context, e *storage.Event) (bool, error) {
	if v.all {
		return true, nil
	}
	if e.StateKey == nil && v.ignored[e.Sender] {
		return false, nil
	}
	f, err := v.facts(ctx, e.StateGroup)
	if err != nil {
		return false, err
	}
	switch {
	case f.visibility == "world_readable":
		return true, nil
	case f.visibility == "shared" && e.StreamPos < v.joinedUntil:
		// "shared": a user sees the events sent before any point at which
		// they were joined, including before they joined; one who left sees
		// those up to their leave.
		return true, nil
	case e.Type == "m.room.member" && e.StateKey != nil && *e.StateKey == string(v.user):
		// Everyone sees their own membership changes (their leave, their invite).
		return true, nil
	}
	// The rest depends on the viewer's membership at the event.
	if f, err = v.membershipAt(ctx, e.StateGroup, f); err != nil {
		return false, err
	}
	return f.membership == "join" || (f.visibility == "invited" && f.membership == "invite"), nil
}

// filter keeps the events the user may see.
func (v *viewer) filter(ctx context.Context, evs []*storage.Event) ([]*storage.Event, error) {
	out := evs[:0:0]
	for _, e := range evs {
		ok, err := v.canSee(ctx, e)
		if err != nil {
			return nil, err
		}
		if ok {
			out = append(out, e)
		}
	}
	return out, nil
}

// mayPeek reports whether the user may read the room's current state:
// members, or anyone in a world_readable room.
func (s *Reader) mayPeek(ctx context.Context, roomID id.RoomID) (bool, error) {
	eid, err := s.store.CurrentStateEvent(ctx, roomID, "m.room.history_visibility", "")
	if storageNotFound(err) {
		return false, nil
	} else if err != nil {
		return false, err
	}
	ev, err := s.store.GetEvent(ctx, eid)
	if err != nil {
		return false, err
	}
	return gjson.GetBytes(ev.JSON, "content.history_visibility").Str == "world_readable", nil
}

// stateGroupFor chooses which state a user may read: the current state if
// they are joined (or the room is world_readable), the state when they left
// if they were a member, else none (0).
func (s *Reader) stateGroupFor(ctx context.Context, roomID id.RoomID, user id.UserID) (int64, bool, error) {
	cur, memEvent, err := s.Membership(ctx, roomID, user)
	if err != nil {
		return 0, false, err
	}
	if cur == "join" {
		return 0, true, nil
	}
	if ok, err := s.mayPeek(ctx, roomID); err != nil || ok {
		return 0, ok, err
	}
	if forgotten, err := s.store.IsForgotten(ctx, user, roomID); err != nil || forgotten {
		return 0, false, err
	}
	if cur == "leave" || cur == "ban" {
		ev, err := s.store.GetEvent(ctx, memEvent)
		if err != nil {
			return 0, false, err
		}
		// A user who was only ever invited and rejected sees nothing.
		if ev.ReplacesState != "" {
			prev, err := s.store.GetEvent(ctx, ev.ReplacesState)
			if err == nil && prev.Membership == "join" {
				return ev.StateGroup, true, nil
			}
			if err != nil && !storageNotFound(err) {
				return 0, false, err
			}
		}
	}
	return 0, false, nil
}

// pick reads a room's events batch by batch — read gives the batch after a
// cursor, the position of the last event read — keeping those keep accepts
// (nil: all) and the viewer may see, until want are kept or a batch comes
// back shorter than size. It returns them and the last position read.
func (v *viewer) pick(ctx context.Context, cursor int64, size, want int, read func(cursor int64) ([]*storage.Event, error),
	keep func(*storage.Event) bool) ([]*storage.Event, int64, error) {
	var picked []*storage.Event
	for len(picked) < want {
		batch, err := read(cursor)
		if err != nil {
			return nil, 0, err
		}
		for _, e := range batch {
			cursor = e.StreamPos
			if keep != nil && !keep(e) {
				continue
			}
			ok, err := v.canSee(ctx, e)
			if err != nil {
				return nil, 0, err
			}
			if ok {
				if picked = append(picked, e); len(picked) == want {
					break
				}
			}
		}
		if len(batch) < size {
			break
		}
	}
	return picked, cursor, nil
}
