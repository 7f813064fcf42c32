package rooms

import (
	"testing"

	"maunium.net/go/mautrix/id"

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

// A room's generation moves with each commit to it and no other's; a room
// forgotten and asked for again does not come back at a generation it had
// before a commit.
func TestRoomGens(t *testing.T) {
	g := newRoomGens(4)
	a := g.of("!a")
	if g.of("!a") != a {
		t.Fatal("a generation moved by itself")
	}
	b := g.of("!b")
	g.moved("!a")
	if g.of("!a") == a || g.of("!b") != b {
		t.Fatalf("after a commit to !a: %d %d (were %d %d)", g.of("!a"), g.of("!b"), a, b)
	}
	a = g.of("!a")
	for _, r := range []string{"!c", "!d", "!e", "!f"} { // !a and !b are forgotten
		g.of(id.RoomID(r))
	}
	if len(g.gens) > 4 {
		t.Fatalf("%d rooms, max 4", len(g.gens))
	}
	if _, kept := g.gens["!a"]; kept {
		t.Fatal("!a was not forgotten")
	}
	if g.of("!a") != a {
		t.Error("a forgotten room with no commit since came back at another generation")
	}
	g.moved("!c")
	g.moved("")
	if g.of("!d") == b || len(g.gens) != 1 {
		t.Errorf("after a commit to every room: %v", g.gens)
	}
}
