package rooms

import (
	"testing"

	"github.com/tributary-hs/tributary/storage"
)

// The group state cache holds at most its number of entries: the oldest
// groups go first, and a group too big for it is not kept at all.
func TestGroupStatesBound(t *testing.T) {
	c := newGroupStates(80)
	state := func(n int) []storage.StateEntry { return make([]storage.StateEntry, n) }
	for g := range int64(10) {
		c.put(g, state(10))
	}
	if c.entries > 80 {
		t.Fatalf("%d entries, max 80", c.entries)
	}
	for g := range int64(10) {
		if _, ok := c.get(g); ok != (g >= 2) {
			t.Errorf("group %d cached: %v", g, ok)
		}
	}
	c.put(100, state(11)) // more than an eighth
	if _, ok := c.get(100); ok {
		t.Error("a group of 11 entries was kept in a cache of 80")
	}
	c.put(101, nil) // an empty state is kept, and counts
	if st, ok := c.get(101); !ok || len(st) != 0 {
		t.Errorf("empty group: %v %v", st, ok)
	}
	if _, ok := c.get(2); ok || c.entries != 71 || len(c.order) != len(c.states) {
		t.Errorf("after an empty group: %d entries, order %v", c.entries, c.order)
	}
}
