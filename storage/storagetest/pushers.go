package storagetest

import (
	"encoding/json"
	"fmt"
	"slices"
	"testing"

	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/storage"
)

var pusherTests = []struct {
	name string
	fn   func(t *testing.T, s storage.Store)
}{
	{"Pushers/SetListDelete", testPusherSetListDelete},
	{"Pushers/OtherUsersSameKey", testPusherOtherUsers},
	{"Pushers/GoWithDevicesAndAccount", testPusherDeviceDeletion},
	{"Pushers/QueueWithEvents", testPushQueue},
	{"Pushers/Notifications", testNotifications},
}

func pusher(user id.UserID, device id.DeviceID, appID, pushKey string) *storage.Pusher {
	return &storage.Pusher{UserID: user, DeviceID: device, Kind: "http", AppID: appID, PushKey: pushKey,
		AppDisplayName: "App " + appID, DeviceDisplayName: "Phone", ProfileTag: "tag", Lang: "en",
		Data:      json.RawMessage(`{"url":"https://push.example.org/_matrix/push/v1/notify","format":"event_id_only"}`),
		PushKeyTS: 1000}
}

// pusherKeys lists "app/pushkey" of a user's pushers in order.
func pusherKeys(t *testing.T, s storage.Store, user id.UserID) []string {
	t.Helper()
	ps, err := s.ListPushers(ctx(t), user)
	must(t, err)
	out := []string{}
	for _, p := range ps {
		out = append(out, p.AppID+"/"+p.PushKey)
	}
	return out
}

func wantKeys(t *testing.T, s storage.Store, user id.UserID, want ...string) {
	t.Helper()
	if want == nil {
		want = []string{}
	}
	if got := pusherKeys(t, s, user); !slices.Equal(got, want) {
		t.Fatalf("pushers of %s: %v, want %v", user, got, want)
	}
}

func testPusherSetListDelete(t *testing.T, s storage.Store) {
	c := ctx(t)
	wantKeys(t, s, alice)
	p1 := pusher(alice, "D1", "org.app", "k1")
	must(t, s.SetPusher(c, p1, false))
	if p1.PusherID == 0 {
		t.Fatal("SetPusher did not fill in the pusher ID")
	}
	must(t, s.SetPusher(c, pusher(alice, "D1", "org.app", "k2"), false))
	must(t, s.SetPusher(c, pusher(alice, "D1", "org.other", "k1"), false))
	wantKeys(t, s, alice, "org.app/k1", "org.app/k2", "org.other/k1")

	// Setting the same (app ID, pushkey) again replaces it and keeps its ID.
	upd := pusher(alice, "D2", "org.app", "k1")
	upd.Lang, upd.Data, upd.PushKeyTS, upd.ProfileTag = "de", json.RawMessage(`{"url":"https://x/_matrix/push/v1/notify"}`), 2000, ""
	must(t, s.SetPusher(c, upd, false))
	eq(t, "pusher ID after an update", upd.PusherID, p1.PusherID)
	ps, err := s.ListPushers(c, alice)
	must(t, err)
	got := ps[0]
	if got.PusherID != p1.PusherID || got.DeviceID != "D2" || got.Lang != "de" || got.PushKeyTS != 2000 ||
		got.ProfileTag != "" || string(got.Data) != `{"url":"https://x/_matrix/push/v1/notify"}` ||
		got.AppDisplayName != "App org.app" || got.DeviceDisplayName != "Phone" || got.Kind != "http" || got.UserID != alice {
		t.Fatalf("updated pusher: %+v", got)
	}
	users, err := s.UsersWithPushers(c, "http")
	must(t, err)
	if !slices.Equal(users, []id.UserID{alice}) {
		t.Fatalf("UsersWithPushers: %v", users)
	}
	users, err = s.UsersWithPushers(c, "email")
	must(t, err)
	eq(t, "email pusher users", len(users), 0)

	must(t, s.DeletePusher(c, alice, "org.app", "k2"))
	must(t, s.DeletePusher(c, alice, "org.app", "missing")) // nothing to delete is no error
	must(t, s.DeletePusher(c, bob, "org.app", "k1"))        // another user's key is not theirs
	wantKeys(t, s, alice, "org.app/k1", "org.other/k1")
	must(t, s.DeletePusherByID(c, p1.PusherID))
	must(t, s.DeletePusherByID(c, p1.PusherID))
	wantKeys(t, s, alice, "org.other/k1")
}

// Without append, a pushkey set by one user is taken from the others.
func testPusherOtherUsers(t *testing.T, s storage.Store) {
	c := ctx(t)
	must(t, s.SetPusher(c, pusher(alice, "D1", "org.app", "shared"), false))
	must(t, s.SetPusher(c, pusher(bob, "D1", "org.app", "shared"), true))
	wantKeys(t, s, alice, "org.app/shared")
	wantKeys(t, s, bob, "org.app/shared")
	must(t, s.SetPusher(c, pusher(carol, "D1", "org.app", "shared"), false))
	wantKeys(t, s, alice)
	wantKeys(t, s, bob)
	wantKeys(t, s, carol, "org.app/shared")
	// Another app's pushkey of the same value is another pusher.
	must(t, s.SetPusher(c, pusher(alice, "D1", "org.else", "shared"), false))
	wantKeys(t, s, carol, "org.app/shared")
}

// Logging a device out takes the pushers it set; deactivation takes all.
func testPusherDeviceDeletion(t *testing.T, s storage.Store) {
	c := ctx(t)
	newAccount(s, t, alice)
	for _, d := range []string{"D1", "D2", "D3"} {
		withTokens(t, s, alice, d)
		must(t, s.SetPusher(c, pusher(alice, id.DeviceID(d), "org.app", "k"+d), false))
	}
	must(t, s.SetPusher(c, pusher(alice, "", "org.app", "k-appservice"), false))
	withTokens(t, s, bob, "D1")
	must(t, s.SetPusher(c, pusher(bob, "D1", "org.app", "kbob"), false))

	must(t, s.DeleteDevices(c, alice, []id.DeviceID{"D1"}))
	wantKeys(t, s, alice, "org.app/kD2", "org.app/kD3", "org.app/k-appservice")
	must(t, s.DeleteAllDevices(c, alice, "D3"))
	wantKeys(t, s, alice, "org.app/kD3", "org.app/k-appservice")
	wantKeys(t, s, bob, "org.app/kbob")
	must(t, s.DeactivateAccount(c, alice))
	wantKeys(t, s, alice)
	wantKeys(t, s, bob, "org.app/kbob")
}

func testPushQueue(t *testing.T, s storage.Store) {
	c := ctx(t)
	pa1, pa2, pb := pusher(alice, "D1", "org.app", "a1"), pusher(alice, "D2", "org.app", "a2"), pusher(bob, "D1", "org.app", "b")
	for _, p := range []*storage.Pusher{pa1, pa2, pb} {
		must(t, s.SetPusher(c, p, true))
	}
	email := pusher(bob, "D1", "m.email", "bob@example.org")
	email.Kind = "email"
	must(t, s.SetPusher(c, email, true))
	none, ok, err := s.NextPushAttempt(c)
	must(t, err)
	if ok {
		t.Fatalf("empty queue has a next attempt at %d", none)
	}
	e1, e2 := ev(roomA, "$p1", "m.room.message"), ev(roomA, "$p2", "m.room.message")
	must(t, s.PersistEvents(c, []*storage.EventWrite{
		{Event: e1, PushQueue: []storage.PushQueued{
			{UserID: alice, Tweaks: json.RawMessage(`{"sound":"default"}`), QueuedAt: 5},
			{UserID: bob, Tweaks: json.RawMessage(`{}`), QueuedAt: 5},
			{UserID: carol, Tweaks: json.RawMessage(`{}`), QueuedAt: 5}, // no pushers: nothing queued
		}},
		{Event: e2, PushQueue: []storage.PushQueued{{UserID: alice, Tweaks: json.RawMessage(`{"highlight":true}`), QueuedAt: 6}}},
	}))
	type row struct {
		pusher int64
		pos    int64
		tweaks string
	}
	due := func(now int64) []row {
		t.Helper()
		ds, err := s.DuePushDeliveries(c, now, 100)
		must(t, err)
		out := []row{}
		for _, d := range ds {
			if d.Pusher.Kind != "http" || d.Pusher.UserID == "" || len(d.Pusher.Data) == 0 {
				t.Fatalf("delivery without its pusher: %+v", d)
			}
			out = append(out, row{d.Pusher.PusherID, d.StreamPos, string(d.Tweaks)})
		}
		return out
	}
	want := []row{{pa1.PusherID, e1.StreamPos, `{"sound":"default"}`}, {pa2.PusherID, e1.StreamPos, `{"sound":"default"}`},
		{pb.PusherID, e1.StreamPos, `{}`}, {pa1.PusherID, e2.StreamPos, `{"highlight":true}`},
		{pa2.PusherID, e2.StreamPos, `{"highlight":true}`}}
	if got := due(0); !slices.Equal(got, want) {
		t.Fatalf("due deliveries:\n got %v\nwant %v", got, want)
	}
	ds, err := s.DuePushDeliveries(c, 0, 2)
	must(t, err)
	eq(t, "deliveries under a limit", len(ds), 2)

	// A failure holds back every delivery of that pusher.
	must(t, s.RetryPushDelivery(c, pa1.PusherID, e1.StreamPos, 1000))
	if got := due(999); !slices.Equal(got, []row{want[1], want[2], want[4]}) {
		t.Fatalf("due while pa1 waits: %v", got)
	}
	next, ok, err := s.NextPushAttempt(c)
	must(t, err)
	if !ok || next != 0 {
		t.Fatalf("next attempt %d %v, want 0 (others are due)", next, ok)
	}
	ds, err = s.DuePushDeliveries(c, 1000, 100)
	must(t, err)
	for _, d := range ds {
		want := int64(0)
		if d.Pusher.PusherID == pa1.PusherID && d.StreamPos == e1.StreamPos {
			want = 1
		}
		eq(t, fmt.Sprintf("attempts of %d/%d", d.Pusher.PusherID, d.StreamPos), d.Attempts, want)
	}
	for _, r := range []row{want[1], want[2], want[4]} {
		must(t, s.AckPushDelivery(c, r.pusher, r.pos))
	}
	next, ok, err = s.NextPushAttempt(c)
	must(t, err)
	if !ok || next != 1000 {
		t.Fatalf("next attempt %d %v, want 1000", next, ok)
	}
	eq(t, "due before the retry", len(due(999)), 0)
	eq(t, "due at the retry", len(due(1000)), 2)
	// Deleting the pusher empties its queue.
	must(t, s.DeletePusher(c, alice, "org.app", "a1"))
	eq(t, "due after the pusher went", len(due(1<<40)), 0)
	_, ok, err = s.NextPushAttempt(c)
	must(t, err)
	eq(t, "queue empty", ok, false)
}

// Notifications: the defaults of joined rooms after the join, of others'
// events, unless the user has a row of their own, and their own rows that
// notify.
func testNotifications(t *testing.T, s storage.Store) {
	c := ctx(t)
	join := func(room id.RoomID, eventID id.EventID, user id.UserID, membership string) {
		t.Helper()
		e := memberEv(room, eventID, user, membership)
		must(t, s.PersistEvents(c, []*storage.EventWrite{{Event: e,
			CurrentState: []storage.StateEntry{{Type: "m.room.member", StateKey: string(user), EventID: eventID}}}}))
	}
	write := func(e *storage.Event, def *storage.PushAction, actions ...storage.PushAction) int64 {
		t.Helper()
		must(t, s.PersistEvents(c, []*storage.EventWrite{{Event: e, PushDefault: def, PushActions: actions}}))
		return e.StreamPos
	}
	main := &storage.PushAction{ThreadID: "main"}
	const roomC = "!c:example.org"
	write(ev(roomA, "$before", "m.room.message"), main) // before carol joined
	join(roomA, "$carol-join-a", carol, "join")
	join(roomB, "$carol-join-b", carol, "join")
	d1 := write(ev(roomA, "$n1", "m.room.message"), main)
	write(ev(roomA, "$silent", "m.room.message"), main, storage.PushAction{UserID: carol, ThreadID: "main", Silent: true})
	// Her own event's default is not hers, without a row to say so.
	mine := ev(roomA, "$mine", "m.room.message")
	mine.Sender = carol
	write(mine, main)
	h := write(ev(roomB, "$hl", "m.room.message"), main, storage.PushAction{UserID: carol, ThreadID: "main", Highlight: true})
	own := write(ev(roomB, "$own", "m.room.message"), nil, storage.PushAction{UserID: carol, ThreadID: "main"})
	th := write(relEv(roomA, "$t", "m.room.message", "m.thread", "$n1"), &storage.PushAction{ThreadID: "$n1"})
	write(ev(roomA, "$nobody", "m.room.message"), nil, storage.PushAction{UserID: bob, ThreadID: "main"})
	// A room carol left keeps her own rows but not the defaults.
	join(roomC, "$carol-join-c", carol, "join")
	write(ev(roomC, "$c-default", "m.room.message"), main)
	leftOwn := write(ev(roomC, "$c-own", "m.room.message"), nil, storage.PushAction{UserID: carol, ThreadID: "main", Highlight: true})
	join(roomC, "$carol-leave-c", carol, "leave")

	list := func(before int64, limit int, onlyHighlight bool) []storage.Notification {
		t.Helper()
		ns, err := s.Notifications(c, carol, before, limit, onlyHighlight)
		must(t, err)
		return ns
	}
	want := []storage.Notification{
		{RoomID: roomC, StreamPos: leftOwn, ThreadID: "main", Highlight: true},
		{RoomID: roomA, StreamPos: th, ThreadID: "$n1"},
		{RoomID: roomB, StreamPos: own, ThreadID: "main"},
		{RoomID: roomB, StreamPos: h, ThreadID: "main", Highlight: true},
		{RoomID: roomA, StreamPos: d1, ThreadID: "main"},
	}
	if got := list(farPos, 100, false); !slices.Equal(got, want) {
		t.Fatalf("notifications:\n got %+v\nwant %+v", got, want)
	}
	// Paging: newest first, from a position down.
	if got := list(farPos, 2, false); !slices.Equal(got, want[:2]) {
		t.Fatalf("first page: %+v", got)
	}
	if got := list(want[1].StreamPos, 2, false); !slices.Equal(got, want[2:4]) {
		t.Fatalf("second page: %+v", got)
	}
	if got := list(want[3].StreamPos, 2, false); !slices.Equal(got, want[4:]) {
		t.Fatalf("last page: %+v", got)
	}
	if got := list(farPos, 100, true); !slices.Equal(got, []storage.Notification{want[0], want[3]}) {
		t.Fatalf("highlights: %+v", got)
	}
	ns, err := s.Notifications(c, bob, farPos, 10, false)
	must(t, err)
	if len(ns) != 1 || ns[0].RoomID != roomA {
		t.Fatalf("bob (not joined, one row of his own): %+v", ns)
	}
}
