package sync

import (
	"context"
	"maps"
	"slices"
	gosync "sync"

	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/core/stream"
	"github.com/tributary-hs/tributary/storage"
)

// UnreadStore is what unread counts are read from.
type UnreadStore interface {
	ReadPositions(ctx context.Context, roomID id.RoomID, userID id.UserID) (map[string]int64, int64, error)
	ReadPositionsIn(ctx context.Context, rooms []id.RoomID, userID id.UserID) (map[id.RoomID]storage.ReadMarks, error)
	PushActionCountsIn(ctx context.Context, userID id.UserID, after map[id.RoomID]int64, upto int64) (map[id.RoomID][]storage.UnreadCount, error)
	PushActionCounts(ctx context.Context, roomID id.RoomID, userID id.UserID, thread string, after, upto int64) ([]storage.UnreadCount, error)
	PushActionsBetween(ctx context.Context, roomID id.RoomID, after, upto int64) ([]storage.PushDefault, []storage.PushException, error)
}

// maxUnreadEntries bounds the cache; past it, some entries are dropped.
const maxUnreadEntries = 200_000

// unreadCache keeps each user's counts per room with the position they
// were counted to, so that a sync woken by new messages counts only those
// (counting from the read marker each time costs O(unread) per sync).
//
// An entry holds while the user's read markers stay put: their receipts in
// the room and their own last event there. Whoever moves one calls forget
// (receipts through the notifier, events through Spoke) after committing;
// forget bumps the key's generation, and an answer computed while the
// generation moved is not kept, so a read that raced a change never sticks.
// In one process that is all it takes; several workers will need the
// notifier to carry the same to each other (the workers issue).
type unreadCache struct {
	store UnreadStore
	mu    gosync.Mutex
	m     map[unreadKey]*unreadEntry
	// drops counts evictions: an answer computed across one is not kept
	// (the evicted entries' generations are gone).
	drops uint64
	// rooms and loads: see roomPushes.
	rooms map[id.RoomID]*roomPushes
	loads stream.Shared[pushRange, *roomPushes]
}

type unreadEntry struct {
	// gen counts forgets of this key; forgotten means no counts are kept.
	gen       uint64
	forgotten bool
	// read and own are the read markers the counts were computed from.
	read map[string]int64
	own  int64
	// upto is the stream position counted to.
	upto   int64
	counts map[string]storage.UnreadCount
}

func newUnreadCache(store UnreadStore) *unreadCache {
	u := &unreadCache{store: store, m: map[unreadKey]*unreadEntry{}, rooms: map[id.RoomID]*roomPushes{}}
	u.loads.Max = 1024
	return u
}

// forget drops what is known of a user's counts in a room.
// unreadKey is a user in a room.
type unreadKey struct {
	user id.UserID
	room id.RoomID
}

func (u *unreadCache) forget(userID id.UserID, roomID id.RoomID) {
	key := unreadKey{userID, roomID}
	u.mu.Lock()
	defer u.mu.Unlock()
	e := u.m[key]
	if e == nil {
		u.makeRoom()
		u.m[key] = &unreadEntry{gen: 1, forgotten: true}
		return
	}
	e.gen++
	e.forgotten, e.read, e.counts = true, nil, nil
}

// makeRoom drops a random tenth of the entries when the cache is full
// (u.mu held). A dropped entry's generation is lost, which is safe: a
// computation that began before compares against a missing entry and is
// not kept (see store).
func (u *unreadCache) makeRoom() {
	if len(u.m) < maxUnreadEntries {
		return
	}
	u.drops++
	drop := maxUnreadEntries / 10
	for k := range u.m {
		if drop == 0 {
			break
		}
		delete(u.m, k)
		drop--
	}
}

// readAhead are a user's read markers in rooms, read for many rooms at
// once (prefetch), with the cache's generations from before the read.
type readAhead map[id.RoomID]readMarks

type readMarks struct {
	marks storage.ReadMarks
	// counts are the room's notifications after the unthreaded marker
	// up to the prefetch's upto (countAll's first read).
	counts     []storage.UnreadCount
	upto       int64
	present    bool
	gen, drops uint64
}

// prefetch reads in one go the read markers of those of rooms whose counts
// the cache does not hold up to upto (nil if there are none).
func (u *unreadCache) prefetch(ctx context.Context, rooms []id.RoomID, userID id.UserID, upto int64) (readAhead, error) {
	u.mu.Lock()
	out := readAhead{}
	var missing []id.RoomID
	for _, r := range rooms {
		e := u.m[unreadKey{userID, r}]
		if e != nil && !e.forgotten && e.upto <= upto {
			continue
		}
		m := readMarks{present: e != nil, drops: u.drops}
		if e != nil {
			m.gen = e.gen
		}
		out[r] = m
		missing = append(missing, r)
	}
	u.mu.Unlock()
	if len(missing) == 0 {
		return nil, nil
	}
	marks, err := u.store.ReadPositionsIn(ctx, missing, userID)
	if err != nil {
		return nil, err
	}
	floors := make(map[id.RoomID]int64, len(out))
	for r, m := range out {
		m.marks = marks[r]
		floors[r] = max(m.marks.Read[""], m.marks.Own)
	}
	counts, err := u.store.PushActionCountsIn(ctx, userID, floors, upto)
	if err != nil {
		return nil, err
	}
	for r, m := range out {
		m.marks, m.counts, m.upto = marks[r], counts[r], upto
		out[r] = m
	}
	return out, nil
}

// counts returns a user's unread counts in a room up to upto: the threads
// with notifications, in thread order. ahead may hold the user's read
// markers in the room, read beforehand.
func (u *unreadCache) counts(ctx context.Context, roomID id.RoomID, userID id.UserID, upto int64, ahead readAhead) ([]storage.UnreadCount, error) {
	key := unreadKey{userID, roomID}
	u.mu.Lock()
	var gen uint64
	var known *unreadEntry
	if e := u.m[key]; e != nil {
		gen = e.gen
		if !e.forgotten && e.upto <= upto {
			known = &unreadEntry{read: e.read, own: e.own, upto: e.upto, counts: maps.Clone(e.counts)}
		}
	}
	present, drops := u.m[key] != nil, u.drops
	u.mu.Unlock()
	pre, prefetched := ahead[roomID]
	if prefetched && known == nil {
		// Markers read before now: whatever forgot them since shows in
		// the generations of then.
		present, gen, drops = pre.present, pre.gen, pre.drops
	}

	var read map[string]int64
	var own int64
	var counts map[string]storage.UnreadCount
	if known != nil {
		// The read markers have not moved since: only the notifications
		// after what was counted are new.
		read, own, counts = known.read, known.own, known.counts
		if known.upto < upto {
			more, err := u.newNotifications(ctx, roomID, userID, known.upto, upto)
			if err != nil {
				return nil, err
			}
			for _, c := range more {
				old := counts[c.ThreadID]
				counts[c.ThreadID] = storage.UnreadCount{ThreadID: c.ThreadID,
					Notifications: old.Notifications + c.Notifications, Highlights: old.Highlights + c.Highlights}
			}
		}
	} else {
		var err error
		var first []storage.UnreadCount
		if prefetched {
			read, own = pre.marks.Read, pre.marks.Own
			if pre.upto == upto {
				first = pre.counts
				if first == nil {
					first = []storage.UnreadCount{}
				}
			}
		} else if read, own, err = u.store.ReadPositions(ctx, roomID, userID); err != nil {
			return nil, err
		}
		if counts, err = u.countAll(ctx, roomID, userID, read, own, upto, first); err != nil {
			return nil, err
		}
	}
	// Counts are kept only when every read marker is at or before upto:
	// then notifications after upto all count, and the next sync can add
	// them without looking at the markers again.
	if readTo(read, own) <= upto {
		u.store1(key, present, gen, drops, &unreadEntry{read: read, own: own, upto: upto, counts: counts})
	}
	out := make([]storage.UnreadCount, 0, len(counts))
	for _, t := range slices.Sorted(maps.Keys(counts)) {
		if counts[t].Notifications > 0 {
			out = append(out, counts[t])
		}
	}
	return out, nil
}

// store1 keeps an answer computed since generation gen of the key (present:
// whether the key had an entry then; drops: the evictions then), unless the
// key was forgotten or entries dropped meanwhile, or a newer answer is
// already there.
func (u *unreadCache) store1(key unreadKey, present bool, gen, drops uint64, e *unreadEntry) {
	u.mu.Lock()
	defer u.mu.Unlock()
	cur := u.m[key]
	switch {
	case drops != u.drops:
		return
	case present && (cur == nil || cur.gen != gen):
		return // forgotten or dropped meanwhile
	case !present && cur != nil:
		return // forgotten meanwhile (or another answer got there first)
	case cur != nil && !cur.forgotten && cur.upto > e.upto:
		return
	}
	if cur == nil {
		u.makeRoom()
	}
	e.gen = gen
	e.counts = maps.Clone(e.counts)
	u.m[key] = e
}

// countAll counts from the read markers: after the unthreaded receipt (or
// the user's own last event, whichever is later), and for threads with a
// receipt of their own further on, after that.
// all, when not nil, is the first count (every thread after the floor),
// read beforehand.
func (u *unreadCache) countAll(ctx context.Context, roomID id.RoomID, userID id.UserID, read map[string]int64, own, upto int64, all []storage.UnreadCount) (map[string]storage.UnreadCount, error) {
	floor := max(read[""], own)
	if all == nil {
		var err error
		if all, err = u.store.PushActionCounts(ctx, roomID, userID, "", floor, upto); err != nil {
			return nil, err
		}
	}
	counts := make(map[string]storage.UnreadCount, len(all))
	for _, c := range all {
		if pos, ok := read[c.ThreadID]; ok && pos > floor {
			thread, err := u.store.PushActionCounts(ctx, roomID, userID, c.ThreadID, pos, upto)
			if err != nil {
				return nil, err
			}
			c = storage.UnreadCount{ThreadID: c.ThreadID}
			if len(thread) > 0 {
				c = thread[0]
			}
		}
		counts[c.ThreadID] = c
	}
	return counts, nil
}

// readTo is the furthest position any read marker reaches.
func readTo(read map[string]int64, own int64) int64 {
	out := own
	for _, p := range read {
		out = max(out, p)
	}
	return out
}

// One message wakes the sync of every member of its room, each of which
// counts the notifications after what it counted before: the same few
// events for everyone. roomPushes keeps, per room, what the room's events
// in a settled stretch of positions (lo, hi] say about notifications (their
// defaults and the members' exceptions), read once for all of them and
// extended as the room moves on. Settled positions never change (they were
// committed in position order, and push rows are written once), so nothing
// needs forgetting; a stretch that grows too long starts afresh.
type roomPushes struct {
	lo, hi     int64
	defaults   []storage.PushDefault   // by position
	exceptions []storage.PushException // by position
}

type pushRange struct {
	room      id.RoomID
	after, to int64
}

const (
	// maxPushRows bounds what a room keeps; maxPushRooms the rooms kept.
	maxPushRows  = 2048
	maxPushRooms = 4096
)

// newNotifications counts a user's notifications in a room at positions in
// (after, upto] (settled), per thread.
func (u *unreadCache) newNotifications(ctx context.Context, roomID id.RoomID, userID id.UserID, after, upto int64) ([]storage.UnreadCount, error) {
	rp, err := u.roomPushes(ctx, roomID, after, upto)
	if err != nil || rp == nil {
		if err == nil {
			return u.store.PushActionCounts(ctx, roomID, userID, "", after, upto)
		}
		return nil, err
	}
	by := map[string]storage.UnreadCount{}
	add := func(thread string, highlight bool) {
		c := by[thread]
		c.ThreadID = thread
		c.Notifications++
		if highlight {
			c.Highlights++
		}
		by[thread] = c
	}
	user := userID
	mine := map[int64]bool{} // positions of the user's exceptions
	for _, x := range rp.exceptions {
		if x.UserID == user && x.StreamPos > after && x.StreamPos <= upto {
			mine[x.StreamPos] = true
			if x.Notify {
				add(x.ThreadID, x.Highlight)
			}
		}
	}
	for _, d := range rp.defaults {
		if d.StreamPos > after && d.StreamPos <= upto && !mine[d.StreamPos] && d.Sender != user {
			add(d.ThreadID, d.Highlight)
		}
	}
	out := make([]storage.UnreadCount, 0, len(by))
	for _, t := range slices.Sorted(maps.Keys(by)) {
		out = append(out, by[t])
	}
	return out, nil
}

// roomPushes returns the room's push data covering (after, upto], reading
// only what is not kept yet; nil when the stretch is too long to keep.
func (u *unreadCache) roomPushes(ctx context.Context, roomID id.RoomID, after, upto int64) (*roomPushes, error) {
	u.mu.Lock()
	rp := u.rooms[roomID]
	u.mu.Unlock()
	if rp != nil && rp.lo <= after && upto <= rp.hi {
		return rp, nil
	}
	from := after
	if rp != nil && rp.lo <= after && after <= rp.hi {
		from = rp.hi // only the part after what is kept
	} else {
		rp = nil
	}
	more, err := u.loads.Get(ctx, pushRange{roomID, from, upto}, func(ctx context.Context) (*roomPushes, error) {
		d, x, err := u.store.PushActionsBetween(ctx, roomID, from, upto)
		if err != nil {
			return nil, err
		}
		return &roomPushes{lo: from, hi: upto, defaults: d, exceptions: x}, nil
	})
	if err != nil {
		return nil, err
	}
	next := more
	if rp != nil {
		// Extend what was kept (copies: others read the old one).
		next = &roomPushes{lo: rp.lo, hi: upto, defaults: slices.Concat(rp.defaults, more.defaults),
			exceptions: slices.Concat(rp.exceptions, more.exceptions)}
	}
	if len(next.defaults)+len(next.exceptions) > maxPushRows {
		if len(more.defaults)+len(more.exceptions) > maxPushRows {
			return nil, nil // too much at once: count this user's alone
		}
		next = more
	}
	u.mu.Lock()
	if cur := u.rooms[roomID]; cur == nil || cur.hi < next.hi {
		if cur == nil && len(u.rooms) >= maxPushRooms {
			clear(u.rooms)
		}
		u.rooms[roomID] = next
	}
	u.mu.Unlock()
	return next, nil
}
