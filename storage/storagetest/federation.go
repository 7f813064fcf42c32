package storagetest

import (
	"encoding/json"
	"testing"

	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/storage"
)

var federationTests = []struct {
	name string
	fn   func(t *testing.T, s storage.Store)
}{
	{"Federation/DestinationBackoff", testDestinationBackoff},
	{"Federation/ListDestinations", testListDestinations},
	{"Federation/QueueConsumersDepths", testQueueConsumersDepths},
	{"Federation/CatchUpQueue", testCatchUpQueue},
	{"Federation/ToDeviceForServer", testToDeviceForServer},
	{"Federation/DeviceListRows", testDeviceListRows},
	{"Queues/ReserveTxnIDs", testReserveTxnIDs},
}

// Reserved transaction IDs come from the counter OpenTxn draws from: no
// ID is handed out twice.
func testReserveTxnIDs(t *testing.T, s storage.Store) {
	c := ctx(t)
	first, err := s.ReserveTxnIDs(c, "federation", 100)
	must(t, err)
	txn, err := s.OpenTxn(c, storage.Consumer{Kind: "federation", ID: "a.example"}, 0, nil)
	must(t, err)
	eq(t, "OpenTxn after a block", txn.TxnID, first+100)
	next, err := s.ReserveTxnIDs(c, "federation", 10)
	must(t, err)
	eq(t, "the next block", next, first+101)
	other, err := s.ReserveTxnIDs(c, "appservice", 1)
	must(t, err)
	eq(t, "another kind counts alone", other, int64(1))
	// A transaction never opened is acknowledged like one that was.
	must(t, s.AckTxn(c, &storage.QueueTxn{Consumer: storage.Consumer{Kind: "federation", ID: "b.example"}, TxnID: next,
		Extra: []int64{1, 2}}))
	cur, err := s.QueueCursor(c, storage.Consumer{Kind: "federation", ID: "b.example"})
	must(t, err)
	eqList(t, "cursor", cur, []int64{1, 2})
}

// A failure starts the backoff (failure_ts kept from the first), a sent
// transaction ends it and keeps the latest acknowledged position; a reset
// ends it too, and names only known destinations.
func testDestinationBackoff(t *testing.T, s storage.Store) {
	c := ctx(t)
	_, err := s.GetDestination(c, "a.example")
	wantErr(t, err, storage.ErrNotFound, "unknown destination")
	wantErr(t, s.ResetDestination(c, "a.example"), storage.ErrNotFound, "reset of an unknown destination")

	must(t, s.DestinationFailed(c, "a.example", 1000, 2000))
	must(t, s.DestinationFailed(c, "a.example", 3000, 4000))
	d, err := s.GetDestination(c, "a.example")
	must(t, err)
	if *d != (storage.Destination{Destination: "a.example", RetryLastTS: 3000, RetryInterval: 4000, FailureTS: 1000}) {
		t.Fatalf("after two failures: %+v", d)
	}
	must(t, s.DestinationSent(c, "a.example", 42, 5000))
	must(t, s.DestinationSent(c, "a.example", 0, 6000)) // EDUs only: the position stays
	d, err = s.GetDestination(c, "a.example")
	must(t, err)
	if *d != (storage.Destination{Destination: "a.example", LastSuccessPos: 42, LastSuccessTS: 6000}) {
		t.Fatalf("after a success: %+v", d)
	}
	must(t, s.DestinationFailed(c, "a.example", 7000, 1000))
	must(t, s.ResetDestination(c, "a.example"))
	d, err = s.GetDestination(c, "a.example")
	must(t, err)
	if d.RetryLastTS != 0 || d.RetryInterval != 0 || d.FailureTS != 0 || d.LastSuccessPos != 42 {
		t.Fatalf("after a reset: %+v", d)
	}
}

func testListDestinations(t *testing.T, s storage.Store) {
	c := ctx(t)
	for i, name := range []string{"b.example", "a.example", "c.other", "x_y.example"} {
		must(t, s.DestinationFailed(c, name, int64(100*(i+1)), int64(10*(4-i))))
	}
	must(t, s.DestinationSent(c, "c.other", 7, 1))
	names := func(ds []*storage.Destination) []string {
		var out []string
		for _, d := range ds {
			out = append(out, d.Destination)
		}
		return out
	}
	ds, total, err := s.ListDestinations(c, storage.DestinationQuery{Limit: 10})
	must(t, err)
	eq(t, "total", total, 4)
	eqList(t, "by name", names(ds), []string{"a.example", "b.example", "c.other", "x_y.example"})
	ds, total, err = s.ListDestinations(c, storage.DestinationQuery{OrderBy: storage.OrderRetryInterval, Limit: 2, From: 1})
	must(t, err)
	eq(t, "total of a page", total, 4)
	// Intervals: b 40, a 30, c 0 (sent), x_y 10.
	eqList(t, "by retry_interval, second page", names(ds), []string{"x_y.example", "a.example"})
	ds, _, err = s.ListDestinations(c, storage.DestinationQuery{OrderBy: storage.OrderFailureTS, Backwards: true, Limit: 10})
	must(t, err)
	eqList(t, "by failure_ts backwards", names(ds), []string{"x_y.example", "a.example", "b.example", "c.other"})
	ds, total, err = s.ListDestinations(c, storage.DestinationQuery{Search: "EXAMPLE", Limit: 10})
	must(t, err)
	eq(t, "total matching", total, 3)
	eqList(t, "search", names(ds), []string{"a.example", "b.example", "x_y.example"})
	// LIKE's wildcards in the search are plain characters.
	ds, _, err = s.ListDestinations(c, storage.DestinationQuery{Search: "_", Limit: 10})
	must(t, err)
	eqList(t, "search for _", names(ds), []string{"x_y.example"})
	ds, _, err = s.ListDestinations(c, storage.DestinationQuery{Search: "%", Limit: 10})
	must(t, err)
	eq(t, "search for %", len(ds), 0)
}

func testQueueConsumersDepths(t *testing.T, s storage.Store) {
	c := ctx(t)
	a := storage.Consumer{Kind: "federation", ID: "a.example"}
	b := storage.Consumer{Kind: "federation", ID: "b.example"}
	other := storage.Consumer{Kind: "appservice", ID: "as"}
	must(t, s.PersistEvents(c, []*storage.EventWrite{
		{Event: ev(roomA, "$q1", "m.room.message"), Queued: []storage.Consumer{a, b, other}},
		{Event: ev(roomA, "$q2", "m.room.message"), Queued: []storage.Consumer{a}},
	}))
	got, err := s.QueueConsumers(c, "federation")
	must(t, err)
	eqList(t, "consumers", got, []string{"a.example", "b.example"})
	depths, total, err := s.QueueDepths(c, "federation", 1)
	must(t, err)
	eq(t, "total", total, int64(3))
	if len(depths) != 1 || depths["a.example"] != 2 {
		t.Fatalf("largest queue: %v", depths)
	}
	// A transaction in flight keeps its consumer listed once its events
	// are all in it.
	txn, err := s.OpenTxn(c, b, 1<<40, nil)
	must(t, err)
	must(t, s.AckTxn(c, txn))
	_, err = s.OpenTxn(c, b, 0, []int64{1})
	must(t, err)
	got, err = s.QueueConsumers(c, "federation")
	must(t, err)
	eqList(t, "consumers with one in flight", got, []string{"a.example", "b.example"})
	must(t, s.SetQueueCursor(c, storage.Consumer{Kind: "federation", ID: "c.example"}, []int64{1}))
	got, err = s.QueueConsumers(c, "federation")
	must(t, err)
	eqList(t, "consumers with a cursor", got, []string{"a.example", "b.example", "c.example"})
}

// testCatchUpQueue: an unreachable destination's queue keeps the latest
// event of each room and the membership events of its users; other
// destinations' and other kinds' queues are left alone.
func testCatchUpQueue(t *testing.T, s storage.Store) {
	c := ctx(t)
	dest := storage.Consumer{Kind: "federation", ID: "b.example:8448"}
	other := storage.Consumer{Kind: "federation", ID: "c.example"}
	as := storage.Consumer{Kind: "appservice", ID: "b.example:8448"}
	all := []storage.Consumer{dest, other, as}
	writes := []*storage.EventWrite{
		{Event: ev(roomA, "$a1", "m.room.message"), Queued: all},
		{Event: memberEv(roomA, "$a2", "@bob:b.example:8448", "invite"), Queued: all},
		{Event: memberEv(roomA, "$a3", "@carol:c.example", "join"), Queued: all},
		{Event: ev(roomB, "$b1", "m.room.message"), Queued: all},
		{Event: ev(roomA, "$a4", "m.room.message"), Queued: all},
		{Event: memberEv(roomA, "$a5", "@notbob:xb.example:8448", "ban"), Queued: all},
		{Event: ev(roomB, "$b2", "m.room.message"), Queued: all},
		{Event: ev(roomA, "$a6", "m.room.message"), Queued: all},
	}
	must(t, s.PersistEvents(c, writes))
	pos := map[id.EventID]int64{}
	for _, w := range writes {
		pos[w.Event.EventID] = w.Event.StreamPos
	}
	n, err := s.CatchUpQueue(c, dest)
	must(t, err)
	eq(t, "events removed", n, int64(5))
	got, err := s.PendingFor(c, dest, 100)
	must(t, err)
	eqList(t, "queue kept", got, []int64{pos["$a2"], pos["$b2"], pos["$a6"]})
	for _, untouched := range []storage.Consumer{other, as} {
		got, err := s.PendingFor(c, untouched, 100)
		must(t, err)
		eq(t, "queue of "+untouched.Kind+" "+untouched.ID, len(got), len(writes))
	}
	n, err = s.CatchUpQueue(c, dest)
	must(t, err)
	eq(t, "events removed the second time", n, int64(0))
}

func testToDeviceForServer(t *testing.T, s storage.Store) {
	c := ctx(t)
	content := json.RawMessage(`{"k":1}`)
	last, err := s.QueueToDevice(c, "@s:x", "SD", "m.test", "t1", []*storage.ToDeviceMessage{
		{UserID: "@a:x", DeviceID: "A", Sender: "@s:x", Type: "m.test", Content: content},
		{UserID: "@b:remote.example", DeviceID: "*", Sender: "@s:x", Type: "m.test", Content: content},
		{UserID: "@c:other.remote.example", DeviceID: "C", Sender: "@s:x", Type: "m.test", Content: content},
		{UserID: "@d:remote.example", DeviceID: "D", Sender: "@s:x", Type: "m.test", Content: content},
	})
	must(t, err)
	msgs, err := s.ToDeviceForServer(c, "remote.example", 0, last, 10)
	must(t, err)
	if len(msgs) != 2 || msgs[0].UserID != "@b:remote.example" || msgs[0].DeviceID != "*" || msgs[1].UserID != "@d:remote.example" {
		t.Fatalf("messages for remote.example: %+v", msgs)
	}
	msgs, err = s.ToDeviceForServer(c, "remote.example", msgs[0].StreamPos, last, 10)
	must(t, err)
	eq(t, "after the first", len(msgs), 1)
}

func testDeviceListRows(t *testing.T, s storage.Store) {
	c := ctx(t)
	start, err := s.MaxDeviceListPos(c)
	must(t, err)
	p1, err := s.AddDeviceListChange(c, kAlice, "D1", "D2")
	must(t, err)
	p2, err := s.AddDeviceListChange(c, kAlice) // cross-signing keys
	must(t, err)
	p3, err := s.AddDeviceListChange(c, kBob, "B1")
	must(t, err)
	rows, err := s.DeviceListChangesRange(c, start, p3, 10)
	must(t, err)
	row := func(pos int64, u id.UserID, d id.DeviceID) storage.DeviceListChange {
		return storage.DeviceListChange{StreamPos: pos, UserID: u, DeviceID: d}
	}
	want := []storage.DeviceListChange{row(p1-1, kAlice, "D1"), row(p1, kAlice, "D2"), row(p2, kAlice, ""), row(p3, kBob, "B1")}
	if len(rows) != len(want) {
		t.Fatalf("rows: %+v", rows)
	}
	for i, r := range rows {
		if *r != want[i] {
			t.Fatalf("row %d: %+v, want %+v", i, r, want[i])
		}
	}
	rows, err = s.DeviceListChangesRange(c, start, p3, 1)
	must(t, err)
	eq(t, "limited", len(rows), 1)
	users, err := s.DeviceListChanges(c, start, p3)
	must(t, err)
	eqList(t, "users", users, []id.UserID{kAlice, kBob})
	prev, err := s.PrevDeviceChange(c, kAlice, p3)
	must(t, err)
	eq(t, "alice's last device row (not the cross-signing one)", prev, p1)
	prev, err = s.PrevDeviceChange(c, kBob, p3)
	must(t, err)
	eq(t, "bob's first", prev, int64(0))
}
