package sync

import (
	"context"
	"maps"
	"slices"
	gosync "sync"

	"github.com/tributary-hs/tributary/storage"
)

// UnreadStore is what unread counts are read from.
type UnreadStore interface {
	ReadPositions(ctx context.Context, roomID, userID string) (map[string]int64, int64, error)
	PushActionCounts(ctx context.Context, roomID, userID, thread string, after, upto int64) ([]storage.UnreadCount, error)
}

// maxUnreadEntries bounds the cache; past it, some entries are dropped.
const maxUnreadEntries = 200_000

// unreadCache keeps each user's counts per room with the position they
// were counted to, so that a sync woken by new messages counts only those
// (counting from the read marker each time costs O(unread) per sync). An
// entry holds as long as what the user has read is unchanged.
type unreadCache struct {
	store UnreadStore
	mu    gosync.Mutex
	m     map[[2]string]*unreadEntry
}

type unreadEntry struct {
	// read and own are the inputs the counts were computed from.
	read map[string]int64
	own  int64
	// upto is the stream position counted to.
	upto   int64
	counts map[string]storage.UnreadCount
}

func newUnreadCache(store UnreadStore) *unreadCache {
	return &unreadCache{store: store, m: map[[2]string]*unreadEntry{}}
}

// counts returns a user's unread counts in a room up to upto: the threads
// with notifications, in thread order.
func (u *unreadCache) counts(ctx context.Context, roomID, userID string, upto int64) ([]storage.UnreadCount, error) {
	read, own, err := u.store.ReadPositions(ctx, roomID, userID)
	if err != nil {
		return nil, err
	}
	key := [2]string{userID, roomID}
	u.mu.Lock()
	e := u.m[key]
	u.mu.Unlock()
	var counts map[string]storage.UnreadCount
	if e != nil && e.own == own && maps.Equal(e.read, read) && e.upto <= upto && readTo(read, own) <= e.upto {
		// Same read markers, all at or before what was counted: only the
		// new notifications count on top.
		counts = maps.Clone(e.counts)
		if e.upto < upto {
			more, err := u.store.PushActionCounts(ctx, roomID, userID, "", e.upto, upto)
			if err != nil {
				return nil, err
			}
			for _, c := range more {
				old := counts[c.ThreadID]
				counts[c.ThreadID] = storage.UnreadCount{ThreadID: c.ThreadID,
					Notifications: old.Notifications + c.Notifications, Highlights: old.Highlights + c.Highlights}
			}
		}
	} else if counts, err = u.countAll(ctx, roomID, userID, read, own, upto); err != nil {
		return nil, err
	}
	u.mu.Lock()
	if len(u.m) >= maxUnreadEntries {
		drop := maxUnreadEntries / 10
		for k := range u.m { // map order is random: a random tenth goes
			if drop == 0 {
				break
			}
			delete(u.m, k)
			drop--
		}
	}
	if cur := u.m[key]; cur == nil || cur.upto <= upto {
		u.m[key] = &unreadEntry{read: read, own: own, upto: upto, counts: counts}
	}
	u.mu.Unlock()
	out := make([]storage.UnreadCount, 0, len(counts))
	for _, t := range slices.Sorted(maps.Keys(counts)) {
		if counts[t].Notifications > 0 {
			out = append(out, counts[t])
		}
	}
	return out, nil
}

// countAll counts from the read markers: after the unthreaded receipt (or
// the user's own last event, whichever is later), and for threads with a
// receipt of their own further on, after that.
func (u *unreadCache) countAll(ctx context.Context, roomID, userID string, read map[string]int64, own, upto int64) (map[string]storage.UnreadCount, error) {
	floor := max(read[""], own)
	all, err := u.store.PushActionCounts(ctx, roomID, userID, "", floor, upto)
	if err != nil {
		return nil, err
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
