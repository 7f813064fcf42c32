package storagetest

import (
	"testing"

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
	// A threaded receipt reads only its thread.
	_, err := s.PutReceipt(c, &storage.Receipt{RoomID: roomA, UserID: carol, Type: "m.read", ThreadID: "$m1", EventID: "$t1", TS: 1})
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
}
