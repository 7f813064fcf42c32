package rooms

import (
	"context"
	"sync"

	"github.com/tributary-hs/tributary/storage"
)

// groupStates caches the whole state of state groups, which never changes
// once written, for the state before each timeline of a first sync (every
// new device's first sync of a room reads the same few groups). It is
// bounded by the number of entries it holds, not of groups: a room of
// thousands of members has as many entries per group.
type groupStates struct {
	mu      sync.Mutex
	max     int
	entries int
	states  map[int64][]storage.StateEntry
	order   []int64 // oldest first
}

func newGroupStates(maxEntries int) *groupStates {
	return &groupStates{max: maxEntries, states: map[int64][]storage.StateEntry{}}
}

func (c *groupStates) get(group int64) ([]storage.StateEntry, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	st, ok := c.states[group]
	return st, ok
}

// put keeps a group's state unless it alone would take more than an
// eighth of the cache; the oldest groups go to make room.
func (c *groupStates) put(group int64, st []storage.StateEntry) {
	if len(st) > c.max/8 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.states[group]; ok {
		return
	}
	n := max(len(st), 1) // an empty state still takes a place
	drop := 0
	for c.entries+n > c.max && drop < len(c.order) {
		old := c.order[drop]
		c.entries -= max(len(c.states[old]), 1)
		delete(c.states, old)
		drop++
	}
	c.order = append(c.order[:0], c.order[drop:]...)
	c.states[group] = st
	c.order = append(c.order, group)
	c.entries += n
}

// statesAt is the store's StatesAt through the cache. Callers must not
// change the entries.
func (s *Reader) statesAt(ctx context.Context, groups []int64) (map[int64][]storage.StateEntry, error) {
	out := make(map[int64][]storage.StateEntry, len(groups))
	var missing []int64
	for _, g := range groups {
		if st, ok := s.groupStates.get(g); ok {
			out[g] = st
		} else {
			missing = append(missing, g)
		}
	}
	if len(missing) == 0 {
		return out, nil
	}
	got, err := s.store.StatesAt(ctx, missing)
	if err != nil {
		return nil, err
	}
	for _, g := range missing {
		out[g] = got[g]
		s.groupStates.put(g, got[g])
	}
	return out, nil
}
