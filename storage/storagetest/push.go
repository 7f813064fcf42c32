package storagetest

import (
	"fmt"
	"testing"

	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/storage"
)

// Unread counts: push actions after the user's receipts (unthreaded or of
// the thread) and after their own last event, grouped by thread.
func testUnreadCounts(t *testing.T, s storage.Store) {
	c := ctx(t)
	write := func(e *storage.Event, actions ...storage.PushAction) {
		t.Helper()
		must(t, s.PersistEvents(c, []*storage.EventWrite{{Event: e, PushActions: actions}}))
	}
	counts := func() map[string][2]int64 {
		t.Helper()
		got, err := s.UnreadCounts(c, roomA, carol)
		must(t, err)
		out := map[string][2]int64{}
		for _, u := range got {
			out[u.ThreadID] = [2]int64{u.Notifications, u.Highlights}
		}
		return out
	}
	write(ev(roomA, "$m1", "m.room.message"), storage.PushAction{UserID: carol, ThreadID: "main"})
	write(ev(roomA, "$m2", "m.room.message"), storage.PushAction{UserID: carol, ThreadID: "main", Highlight: true})
	write(relEv(roomA, "$t1", "m.room.message", "m.thread", "$m1"), storage.PushAction{UserID: carol, ThreadID: "$m1"})
	write(ev(roomB, "$other", "m.room.message"), storage.PushAction{UserID: carol, ThreadID: "main"})
	if got := counts(); got["main"] != [2]int64{2, 1} || got["$m1"] != [2]int64{1, 0} || len(got) != 2 {
		t.Fatalf("counts %v", got)
	}
	// The primitives: counts within a range, of every thread or one.
	m2 := getEvent(t, s, "$m2").StreamPos
	t1 := getEvent(t, s, "$t1").StreamPos
	part, err := s.PushActionCounts(c, roomA, carol, "", 0, m2)
	must(t, err)
	if len(part) != 1 || part[0] != (storage.UnreadCount{ThreadID: "main", Notifications: 2, Highlights: 1}) {
		t.Fatalf("counts up to $m2: %+v", part)
	}
	part, err = s.PushActionCounts(c, roomA, carol, "$m1", 0, t1)
	must(t, err)
	if len(part) != 1 || part[0] != (storage.UnreadCount{ThreadID: "$m1", Notifications: 1}) {
		t.Fatalf("counts of thread $m1: %+v", part)
	}
	part, err = s.PushActionCounts(c, roomA, carol, "", m2, t1-1)
	must(t, err)
	if len(part) != 0 {
		t.Fatalf("counts of an empty range: %+v", part)
	}
	// A threaded receipt reads only its thread.
	_, err = s.PutReceipt(c, &storage.Receipt{RoomID: roomA, UserID: carol, Type: "m.read", ThreadID: "$m1", EventID: "$t1", TS: 1})
	must(t, err)
	if got := counts(); got["main"] != [2]int64{2, 1} || len(got) != 1 {
		t.Fatalf("after a thread receipt: %v", got)
	}
	// An unthreaded receipt on $m1 leaves $m2 unread.
	_, err = s.PutReceipt(c, &storage.Receipt{RoomID: roomA, UserID: carol, Type: "m.read.private", EventID: "$m1", TS: 2})
	must(t, err)
	if got := counts(); got["main"] != [2]int64{1, 1} {
		t.Fatalf("after reading $m1: %v", got)
	}
	// The user's own later event reads everything before it.
	own := ev(roomA, "$own", "m.room.message")
	own.Sender = carol
	write(own)
	if got := counts(); len(got) != 0 {
		t.Fatalf("after carol spoke: %v", got)
	}
	read, ownPos, err := s.ReadPositions(c, roomA, carol)
	must(t, err)
	if ownPos != own.StreamPos || read[""] != getEvent(t, s, "$m1").StreamPos || read["$m1"] != t1 || len(read) != 2 {
		t.Fatalf("read positions %v, own %d", read, ownPos)
	}
	// The same for many rooms at once; a room without any is there, empty.
	many, err := s.ReadPositionsIn(c, []id.RoomID{roomA, roomB}, carol)
	must(t, err)
	if a := many[roomA]; a.Own != ownPos || len(a.Read) != 2 || a.Read[""] != read[""] || a.Read["$m1"] != t1 {
		t.Fatalf("read positions in roomA %+v", a)
	}
	if b, ok := many[roomB]; !ok || b.Own != 0 || len(b.Read) != 0 || len(many) != 2 {
		t.Fatalf("read positions in roomB %+v (%d rooms)", b, len(many))
	}
	// Counts for many rooms at once, each after its own position, as the
	// one-room counts; a room without notifications has no entry.
	for _, after := range []int64{0, m2, t1} {
		floors := map[id.RoomID]int64{roomA: after, roomB: 0, "!none:example.org": 0}
		in, err := s.PushActionCountsIn(c, carol, floors, t1+100)
		must(t, err)
		for room, from := range floors {
			one, err := s.PushActionCounts(c, room, carol, "", from, t1+100)
			must(t, err)
			if got, ok := in[room]; fmt.Sprint(got) != fmt.Sprint(one) || ok != (len(one) > 0) {
				t.Fatalf("counts in %s after %d: many %+v, one %+v", room, from, in[room], one)
			}
		}
		if len(in[roomA]) == 0 && after == 0 {
			t.Fatal("no counts in roomA")
		}
	}
}

// testPushDefaults: an event's default notification counts for every user
// but its sender without a row of their own; a silent row takes it away, a
// highlight row replaces it.
func testPushDefaults(t *testing.T, s storage.Store) {
	c := ctx(t)
	const dave = "@dave:example.org"
	counts := func(user id.UserID) map[string][2]int64 {
		t.Helper()
		got, err := s.UnreadCounts(c, roomA, user)
		must(t, err)
		out := map[string][2]int64{}
		for _, u := range got {
			out[u.ThreadID] = [2]int64{u.Notifications, u.Highlights}
		}
		return out
	}
	write := func(e *storage.Event, def *storage.PushAction, actions ...storage.PushAction) {
		t.Helper()
		must(t, s.PersistEvents(c, []*storage.EventWrite{{Event: e, PushDefault: def, PushActions: actions}}))
	}
	// alice sends; the defaults are not hers, with no row of hers to say so.
	write(ev(roomA, "$d1", "m.room.message"), &storage.PushAction{ThreadID: "main"},
		storage.PushAction{UserID: dave, ThreadID: "main", Highlight: true})
	write(relEv(roomA, "$d2", "m.room.message", "m.thread", "$d1"), &storage.PushAction{ThreadID: "$d1"},
		storage.PushAction{UserID: carol, ThreadID: "$d1", Silent: true})
	write(ev(roomA, "$plain", "m.room.message"), nil) // notifies nobody
	if got := counts(carol); got["main"] != [2]int64{1, 0} || len(got) != 1 {
		t.Fatalf("carol (a default, a silent row): %v", got)
	}
	// Counted from the start, past the read marker of her own last event.
	last := getEvent(t, s, "$plain").StreamPos
	for _, user := range []id.UserID{alice, carol} {
		got, err := s.PushActionCounts(c, roomA, user, "", 0, last)
		must(t, err)
		many, err := s.PushActionCountsIn(c, user, map[id.RoomID]int64{roomA: 0}, last)
		must(t, err)
		if want := map[id.UserID]int{alice: 0, carol: 1}[user]; len(got) != want || len(many[roomA]) != want {
			t.Fatalf("%s's counts from the start: %+v, %+v", user, got, many)
		}
	}
	if got := counts(dave); got["main"] != [2]int64{1, 1} || got["$d1"] != [2]int64{1, 0} {
		t.Fatalf("dave (highlighted): %v", got)
	}
	// The thread alone.
	d2 := getEvent(t, s, "$d2").StreamPos
	part, err := s.PushActionCounts(c, roomA, dave, "$d1", 0, d2)
	must(t, err)
	if len(part) != 1 || part[0] != (storage.UnreadCount{ThreadID: "$d1", Notifications: 1}) {
		t.Fatalf("dave's thread: %+v", part)
	}
	// Everyone's at once: the same defaults and exceptions, by position.
	d1 := getEvent(t, s, "$d1").StreamPos
	defaults, exceptions, err := s.PushActionsBetween(c, roomA, 0, getEvent(t, s, "$plain").StreamPos)
	must(t, err)
	if len(defaults) != 2 || defaults[0] != (storage.PushDefault{StreamPos: d1, ThreadID: "main", Sender: alice}) ||
		defaults[1] != (storage.PushDefault{StreamPos: d2, ThreadID: "$d1", Sender: alice}) {
		t.Fatalf("defaults: %+v", defaults)
	}
	want := []storage.PushException{{UserID: dave, StreamPos: d1, ThreadID: "main", Highlight: true, Notify: true},
		{UserID: carol, StreamPos: d2, ThreadID: "$d1"}}
	eqList(t, "exceptions", exceptions, want)
	defaults, exceptions, err = s.PushActionsBetween(c, roomA, d1, d2)
	must(t, err)
	if len(defaults) != 1 || len(exceptions) != 1 || exceptions[0].StreamPos != d2 {
		t.Fatalf("after d1: %+v %+v", defaults, exceptions)
	}
}
