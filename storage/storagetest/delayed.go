package storagetest

import (
	"slices"
	"testing"

	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/storage"
)

// delayedTests are the cases of DelayedEvents and ThreadSubscriptions.
var delayedTests = []struct {
	name string
	fn   func(t *testing.T, s storage.Store)
}{
	{"Delayed/AddListRestartDelete", testDelayedEvents},
	{"Delayed/StateOverridden", testDelayedStateOverridden},
	{"ThreadSubscriptions", testThreadSubscriptions},
}

func delayed(delayID string, user id.UserID, sendTS int64) *storage.DelayedEvent {
	return &storage.DelayedEvent{DelayID: delayID, UserID: user, DeviceID: "DEV", RoomID: roomA, Type: "m.room.message",
		Content: []byte(`{"body":"later"}`), DelayMS: 1000, RunningSince: sendTS - 1000, SendTS: sendTS}
}

func delayIDs(evs []*storage.DelayedEvent) []string {
	out := make([]string, len(evs))
	for i, e := range evs {
		out[i] = e.DelayID
	}
	return out
}

func testDelayedEvents(t *testing.T, s storage.Store) {
	c := ctx(t)
	if _, ok, err := s.NextDelayedEventTS(c); err != nil || ok {
		t.Fatalf("next of none: %v %v", ok, err)
	}
	for _, e := range []*storage.DelayedEvent{delayed("b", alice, 5000), delayed("a", alice, 3000), delayed("c", carol, 4000)} {
		existing, err := s.AddDelayedEvent(c, e)
		must(t, err)
		if existing != nil {
			t.Fatalf("%s: existing %+v", e.DelayID, existing)
		}
	}
	// The same transaction from the same device answers the first.
	first := delayed("t1", alice, 9000)
	first.TxnKey = "send !a m.room.message txn"
	first.StateKey = strPtr("")
	_, err := s.AddDelayedEvent(c, first)
	must(t, err)
	again := delayed("t2", alice, 9000)
	again.TxnKey = first.TxnKey
	existing, err := s.AddDelayedEvent(c, again)
	must(t, err)
	if existing == nil || existing.DelayID != "t1" || existing.StateKey == nil || *existing.StateKey != "" ||
		string(existing.Content) != `{"body":"later"}` {
		t.Fatalf("repeated transaction: %+v", existing)
	}
	if _, err := s.GetDelayedEvent(c, "t2"); err == nil {
		t.Fatal("the repeated transaction was stored")
	}
	n, err := s.CountDelayedEvents(c, alice)
	must(t, err)
	if n != 3 {
		t.Fatalf("alice has %d delayed events, want 3", n)
	}
	page, err := s.ListDelayedEvents(c, alice, "", 2)
	must(t, err)
	if got := delayIDs(page); !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("first page %v", got)
	}
	page, err = s.ListDelayedEvents(c, alice, "b", 2)
	must(t, err)
	if got := delayIDs(page); !slices.Equal(got, []string{"t1"}) {
		t.Fatalf("second page %v", got)
	}
	if ts, ok, err := s.NextDelayedEventTS(c); err != nil || !ok || ts != 3000 {
		t.Fatalf("next %d %v %v", ts, ok, err)
	}
	due, err := s.DueDelayedEvents(c, 4500, 10)
	must(t, err)
	if got := delayIDs(due); !slices.Equal(got, []string{"a", "c"}) {
		t.Fatalf("due %v", got)
	}
	must(t, s.RestartDelayedEvent(c, "a", 10000))
	e, err := s.GetDelayedEvent(c, "a")
	must(t, err)
	if e.RunningSince != 10000 || e.SendTS != 11000 {
		t.Fatalf("restarted: %+v", e)
	}
	must(t, s.DeleteDelayedEvent(c, "c"))
	wantErr(t, s.DeleteDelayedEvent(c, "c"), storage.ErrNotFound, "deleting twice")
	wantErr(t, s.RestartDelayedEvent(c, "c", 1), storage.ErrNotFound, "restarting a deleted one")
	_, err = s.GetDelayedEvent(c, "c")
	wantErr(t, err, storage.ErrNotFound, "reading a deleted one")
	if ts, _, _ := s.NextDelayedEventTS(c); ts != 5000 {
		t.Fatalf("next after restart and delete: %d", ts)
	}
	rooms, err := s.DelayedStateRooms(c)
	must(t, err)
	if !slices.Equal(rooms, []id.RoomID{roomA}) {
		t.Fatalf("rooms with delayed state: %v", rooms)
	}
}

// testDelayedStateOverridden: state set by another sender after a delayed
// state event was scheduled cancels it; the owner's own state, state
// before it and other keys do not.
func testDelayedStateOverridden(t *testing.T, s storage.Store) {
	c := ctx(t)
	early := stateEv(roomA, "$early", "m.call.member", "k")
	early.Sender = carol
	persist(t, s, early)
	for _, e := range []*storage.DelayedEvent{delayed("mine", alice, 1), delayed("other", alice, 1), delayed("msg", alice, 1)} {
		if e.DelayID != "msg" {
			e.Type, e.StateKey = "m.call.member", strPtr("k")
		}
		if e.DelayID == "other" {
			e.StateKey = strPtr("other")
		}
		_, err := s.AddDelayedEvent(c, e)
		must(t, err)
	}
	own := stateEv(roomA, "$own", "m.call.member", "k") // alice's own
	persist(t, s, own)
	if n, err := s.CancelOverriddenDelayedState(c, roomA); err != nil || n != 0 {
		t.Fatalf("cancelled %d (%v) for the owner's own state", n, err)
	}
	rejected := stateEv(roomA, "$rejected", "m.call.member", "k")
	rejected.Sender, rejected.Rejected = carol, true
	persist(t, s, rejected)
	if n, err := s.CancelOverriddenDelayedState(c, roomA); err != nil || n != 0 {
		t.Fatalf("cancelled %d (%v) for a rejected event", n, err)
	}
	theirs := stateEv(roomA, "$theirs", "m.call.member", "k")
	theirs.Sender = carol
	persist(t, s, theirs)
	if n, err := s.CancelOverriddenDelayedState(c, roomA); err != nil || n != 1 {
		t.Fatalf("cancelled %d (%v), want 1", n, err)
	}
	_, err := s.GetDelayedEvent(c, "mine")
	wantErr(t, err, storage.ErrNotFound, "the overridden delayed event")
	for _, left := range []string{"other", "msg"} {
		_, err := s.GetDelayedEvent(c, left)
		must(t, err)
	}
}

func testThreadSubscriptions(t *testing.T, s storage.Store) {
	c := ctx(t)
	_, err := s.GetThreadSubscription(c, alice, roomA, "$root")
	wantErr(t, err, storage.ErrNotFound, "no subscription")
	must(t, s.PutThreadSubscription(c, &storage.ThreadSubscription{UserID: alice, RoomID: roomA, RootID: "$root",
		Subscribed: true, Automatic: true}))
	must(t, s.PutThreadSubscription(c, &storage.ThreadSubscription{UserID: carol, RoomID: roomA, RootID: "$root",
		Subscribed: true}))
	must(t, s.PutThreadSubscription(c, &storage.ThreadSubscription{UserID: alice, RoomID: roomA, RootID: "$other",
		Subscribed: true}))
	subs, err := s.ThreadSubscribers(c, roomA, "$root")
	must(t, err)
	if !slices.Equal(subs, []id.UserID{alice, carol}) {
		t.Fatalf("subscribers %v", subs)
	}
	must(t, s.PutThreadSubscription(c, &storage.ThreadSubscription{UserID: alice, RoomID: roomA, RootID: "$root",
		UnsubscribedAt: 42}))
	got, err := s.GetThreadSubscription(c, alice, roomA, "$root")
	must(t, err)
	if got.Subscribed || got.Automatic || got.UnsubscribedAt != 42 {
		t.Fatalf("after unsubscribing: %+v", got)
	}
	subs, err = s.ThreadSubscribers(c, roomA, "$root")
	must(t, err)
	if !slices.Equal(subs, []id.UserID{carol}) {
		t.Fatalf("subscribers after alice left: %v", subs)
	}
}
