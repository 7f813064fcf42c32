package storagetest

import (
	"testing"

	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/storage"
)

// outlierTests: events stored outside the timeline.
var outlierTests = []struct {
	name string
	fn   func(t *testing.T, s storage.Store)
}{
	{"Events/Outliers", testOutliers},
	{"Events/OutlierReplaced", testOutlierReplaced},
}

// testOutlierReplaced: a write replacing an outlier gives its row a new
// position, state group and flags (here: into the timeline's history);
// replacing an event that is no outlier fails the batch.
func testOutlierReplaced(t *testing.T, s storage.Store) {
	c := ctx(t)
	persist(t, s, ev(roomA, "$live", "m.room.message"))
	o := ev(roomA, "$o", "m.room.message")
	o.Outlier = true
	persist(t, s, o)
	in := ev(roomA, "$o", "m.room.message")
	in.StateGroup = 7
	must(t, s.PersistEvents(c, []*storage.EventWrite{{Event: in, Replace: true, History: true}}))
	got := getEvent(t, s, "$o")
	if got.Outlier || got.StateGroup != 7 || got.StreamPos >= 0 {
		t.Fatalf("replaced outlier: %s (outlier %v)", eventString(got), got.Outlier)
	}
	evs, err := s.RoomEvents(c, roomA, farPos, 0, true, 100)
	must(t, err)
	eqList(t, "timeline", ids(evs), []id.EventID{"$live", "$o"})
	again := ev(roomA, "$live", "m.room.message")
	if err := s.PersistEvents(c, []*storage.EventWrite{{Event: again, Replace: true}}); err == nil {
		t.Fatal("an event that is no outlier was replaced")
	}
}

// testOutliers: an outlier is stored and read back by ID as one, but no
// timeline, state-change, membership, relation or search read sees it,
// nor the room's last event before a position.
func testOutliers(t *testing.T, s storage.Store) {
	c := ctx(t)
	persist(t, s, ev(roomA, "$first", "m.room.message"))
	name := contentEv(roomA, "$name", "m.room.name", alice, strPtr(""), map[string]any{"name": "almond"})
	member := memberEv(roomA, "$bob", bob, "join")
	message := msg(roomA, "$msg", alice, "almond")
	rel := relEv(roomA, "$rel", "m.room.message", "m.thread", "$first")
	for _, e := range []*storage.Event{name, member, message, rel} {
		e.Outlier = true
	}
	persist(t, s, name, member, message, rel)
	last := ev(roomA, "$last", "m.room.message")
	persist(t, s, last)

	if got := getEvent(t, s, "$name"); !got.Outlier || got.StreamPos <= 0 {
		t.Fatalf("outlier read back: %s (outlier %v)", eventString(got), got.Outlier)
	}
	if getEvent(t, s, "$last").Outlier {
		t.Fatal("a timeline event reads back as an outlier")
	}
	evs, err := s.GetEvents(c, []id.EventID{"$bob", "$msg"})
	must(t, err)
	if len(evs) != 2 || !evs[0].Outlier || !evs[1].Outlier {
		t.Fatalf("GetEvents of outliers: %v", ids(evs))
	}
	evs, err = s.RoomEvents(c, roomA, farPos, 0, true, 100)
	must(t, err)
	eqList(t, "timeline", ids(evs), []id.EventID{"$last", "$first"})
	prev, err := s.LastEventBefore(c, roomA, last.StreamPos)
	must(t, err)
	eq(t, "last event before $last", prev.EventID, id.EventID("$first"))
	states, err := s.StateEventsBetween(c, roomA, 0, farPos)
	must(t, err)
	eq(t, "state events between", len(states), 0)
	members, err := s.MemberEventsBetween(c, 0, farPos)
	must(t, err)
	eq(t, "member events between", len(members), 0)
	n, err := s.CountRoomEvents(c, roomA, 0, farPos)
	must(t, err)
	eq(t, "events counted", n, int64(2))
	rels, err := s.Relations(c, "$first", "", "", 0, false, 100)
	must(t, err)
	eq(t, "relations", len(rels), 0)
	eqList(t, "search", found(t, s, query([]string{"almond"}, roomA)), []id.EventID{})
}
