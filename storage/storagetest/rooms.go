package storagetest

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"

	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/storage"
)

// roomTests are the cases of Rooms, StateReader, RoomExtras and RelationReader.
var roomTests = []struct {
	name string
	fn   func(t *testing.T, s storage.Store)
}{
	{"Rooms/CreateGet", testRoomCreateGet},
	{"Rooms/Published", testRoomPublished},

	{"Events/RoundTrip", testEventRoundTrip},
	{"Events/StreamPositions", testEventStreamPositions},
	{"Events/CurrentStateAndMembers", testEventCurrentState},
	{"Events/Extremities", testEventExtremities},
	{"Events/Txn", testEventTxn},
	{"Events/Redactions", testEventRedactions},
	{"Events/FailedBatchRollsBack", testEventBatchRollback},
	{"Events/RoomEvents", testRoomEvents},
	{"Events/ByTimestamp", testEventByTimestamp},

	{"State/ReserveGroupIDs", testReserveStateGroupIDs},
	{"State/GroupsAndDeltaChain", testStateDeltaChain},
	{"State/BulkWrites", testStateBulkWrites},
	{"State/LongChains", testStateLongChains},

	{"Relations/Filter", testRelationsFilter},
	{"Relations/Paging", testRelationsPaging},
	{"Relations/ThreadRoots", testThreadRoots},
	{"Relations/AggregatesAndByPos", testRelationAggregates},

	{"Aliases", testAliases},
	{"RoomExtras/Forgotten", testForgotten},
	{"RoomExtras/ReportsAndConflictsInTx", testReports},

	{"Concurrency/PersistEvents", testConcurrentPersist},
	{"Push/UnreadCounts", testUnreadCounts},
	{"Push/Defaults", testPushDefaults},
}

const (
	roomA = "!a:example.org"
	roomB = "!b:example.org"
	carol = "@carol:example.org"
	// farPos is a stream position after every event (a "from the end" cursor).
	farPos = int64(1) << 62
)

// ---- helpers ----

func strPtr(s string) *string { return &s }

// ev makes a non-state event; its JSON names its ID so that mix-ups show.
func ev(room id.RoomID, eventID id.EventID, evType string) *storage.Event {
	return &storage.Event{EventID: eventID, RoomID: room, Type: evType, Sender: alice, OriginServerTS: 1000, Depth: 1,
		JSON: []byte(`{"event_id":"` + string(eventID) + `","type":"` + evType + `"}`)}
}

// stateEv makes a state event.
func stateEv(room id.RoomID, eventID id.EventID, evType, stateKey string) *storage.Event {
	e := ev(room, eventID, evType)
	e.StateKey = &stateKey
	return e
}

// memberEv makes an m.room.member event of user with the membership.
func memberEv(room id.RoomID, eventID id.EventID, user id.UserID, membership string) *storage.Event {
	e := stateEv(room, eventID, "m.room.member", string(user))
	e.Sender, e.Membership = user, membership
	return e
}

// relEv makes an event relating to parent.
func relEv(room id.RoomID, eventID id.EventID, evType, relType string, parent id.EventID) *storage.Event {
	e := ev(room, eventID, evType)
	e.RelType, e.RelatesTo = relType, parent
	return e
}

// bare wraps events in writes that persist nothing else.
func bare(evs ...*storage.Event) []*storage.EventWrite {
	out := make([]*storage.EventWrite, len(evs))
	for i, e := range evs {
		out[i] = &storage.EventWrite{Event: e}
	}
	return out
}

// persist writes the events as one batch of bare writes.
func persist(t *testing.T, s storage.Store, evs ...*storage.Event) {
	t.Helper()
	must(t, s.PersistEvents(ctx(t), bare(evs...)))
}

// eventString prints every field of an event, for whole-event comparisons.
func eventString(e *storage.Event) string {
	sk := "<nil>"
	if e.StateKey != nil {
		sk = fmt.Sprintf("%q", *e.StateKey)
	}
	return fmt.Sprintf("{pos=%d id=%s room=%s type=%s state_key=%s sender=%s ts=%d depth=%d json=%q group=%d"+
		" rejected=%v soft_failed=%v redacted_by=%q relates_to=%q rel_type=%q membership=%q replaces_state=%q}",
		e.StreamPos, e.EventID, e.RoomID, e.Type, sk, e.Sender, e.OriginServerTS, e.Depth, e.JSON, e.StateGroup,
		e.Rejected, e.SoftFailed, e.RedactedBy, e.RelatesTo, e.RelType, e.Membership, e.ReplacesState)
}

func getEvent(t *testing.T, s storage.Store, eventID id.EventID) *storage.Event {
	t.Helper()
	e, err := s.GetEvent(ctx(t), eventID)
	if err != nil {
		t.Fatalf("GetEvent(%s): %v", eventID, err)
	}
	return e
}

func ids(evs []*storage.Event) []id.EventID {
	out := make([]id.EventID, len(evs))
	for i, e := range evs {
		out[i] = e.EventID
	}
	return out
}

func eqList[T comparable](t *testing.T, what string, got, want []T) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Fatalf("%s = %v, want %v", what, got, want)
	}
}

// sortedState orders entries by (type, state_key): the backends return
// state in no particular order.
func sortedState(entries []storage.StateEntry) []storage.StateEntry {
	out := slices.Clone(entries)
	slices.SortFunc(out, func(a, b storage.StateEntry) int {
		return cmp.Or(cmp.Compare(a.Type, b.Type), cmp.Compare(a.StateKey, b.StateKey))
	})
	return out
}

func eqState(t *testing.T, what string, got, want []storage.StateEntry) {
	t.Helper()
	eqList(t, what, sortedState(got), sortedState(want))
}

// ---- rooms ----

func testRoomCreateGet(t *testing.T, s storage.Store) {
	c := ctx(t)
	want := storage.Room{RoomID: roomA, RoomVersion: "11", Creator: alice, CreatedAt: 1700000000123, Published: true}
	r := want
	must(t, s.CreateRoomRecord(c, &r))
	plain := storage.Room{RoomID: roomB, RoomVersion: "10", Creator: bob, CreatedAt: 5}
	p := plain
	must(t, s.CreateRoomRecord(c, &p))

	got, err := s.GetRoom(c, roomA)
	must(t, err)
	eq(t, "room", *got, want)
	got, err = s.GetRoom(c, roomB)
	must(t, err)
	eq(t, "room", *got, plain)

	err = s.CreateRoomRecord(c, &storage.Room{RoomID: roomA, RoomVersion: "1", Creator: bob, CreatedAt: 9})
	wantErr(t, err, storage.ErrConflict, "CreateRoomRecord of an existing room")
	got, err = s.GetRoom(c, roomA)
	must(t, err)
	eq(t, "room after the refused duplicate", *got, want)

	_, err = s.GetRoom(c, "!missing:example.org")
	wantErr(t, err, storage.ErrNotFound, "GetRoom of a missing room")
}

func testRoomPublished(t *testing.T, s storage.Store) {
	c := ctx(t)
	list, err := s.ListPublishedRooms(c)
	must(t, err)
	eq(t, "published rooms of an empty store", len(list), 0)
	for _, room := range []id.RoomID{"!c:example.org", roomA, roomB} {
		must(t, s.CreateRoomRecord(c, &storage.Room{RoomID: room, RoomVersion: "11", Creator: alice, CreatedAt: 1}))
	}
	must(t, s.CreateRoomRecord(c, &storage.Room{RoomID: "!d:example.org", RoomVersion: "11", Creator: alice, CreatedAt: 1, Published: true}))
	list, err = s.ListPublishedRooms(c)
	must(t, err)
	eqList(t, "published rooms", list, []id.RoomID{"!d:example.org"})

	must(t, s.SetRoomPublished(c, "!c:example.org", true))
	must(t, s.SetRoomPublished(c, roomA, true))
	must(t, s.SetRoomPublished(c, roomA, true)) // again: no change, no error
	list, err = s.ListPublishedRooms(c)
	must(t, err)
	eqList(t, "published rooms", list, []id.RoomID{roomA, "!c:example.org", "!d:example.org"})
	got, err := s.GetRoom(c, roomA)
	must(t, err)
	eq(t, "Published", got.Published, true)

	must(t, s.SetRoomPublished(c, "!c:example.org", false))
	must(t, s.SetRoomPublished(c, roomB, false)) // was not published
	list, err = s.ListPublishedRooms(c)
	must(t, err)
	eqList(t, "published rooms after unpublishing", list, []id.RoomID{roomA, "!d:example.org"})
	got, err = s.GetRoom(c, "!c:example.org")
	must(t, err)
	eq(t, "Published after unpublishing", got.Published, false)

	wantErr(t, s.SetRoomPublished(c, "!missing:example.org", true), storage.ErrNotFound, "SetRoomPublished of a missing room")
}

// ---- events ----

func testEventRoundTrip(t *testing.T, s storage.Store) {
	c := ctx(t)
	// JSON as it came over the wire: odd spacing, key order, escapes and
	// non-ASCII must survive byte for byte.
	create := &storage.Event{EventID: "$create", RoomID: roomA, Type: "m.room.create", StateKey: strPtr(""),
		Sender: alice, OriginServerTS: 1700000000001, Depth: 1, StateGroup: 7,
		JSON: []byte("{\"type\":\"m.room.create\",  \"state_key\":\"\",\n\t\"content\":{\"z\":1,\"a\":\"\\u00e9\\n\\\"é🙂\"}, \"b\" : 1e3}")}
	msg := &storage.Event{EventID: "$msg", RoomID: roomA, Type: "m.room.message", StateKey: nil,
		Sender: bob, OriginServerTS: 1700000000002, Depth: 2, StateGroup: 7, SoftFailed: true,
		RelatesTo: "$create", RelType: "m.thread", JSON: []byte(`{"type":"m.room.message","content":{"body":"hi"}}`)}
	member := &storage.Event{EventID: "$member", RoomID: roomA, Type: "m.room.member", StateKey: strPtr(bob),
		Sender: bob, OriginServerTS: 1700000000003, Depth: 3, StateGroup: 8, Rejected: true,
		Membership: "join", ReplacesState: "$invite", JSON: []byte(`{"type":"m.room.member","content":{"membership":"join"}}`)}
	other := stateEv(roomB, "$other", "m.room.topic", "")
	persist(t, s, create, msg, member, other)

	for _, want := range []*storage.Event{create, msg, member, other} {
		eq(t, "event "+string(want.EventID), eventString(getEvent(t, s, want.EventID)), eventString(want))
	}
	got := getEvent(t, s, "$create")
	if got.StateKey == nil {
		t.Fatal("state_key \"\" read back as nil")
	}
	if got := getEvent(t, s, "$msg"); got.StateKey != nil {
		t.Fatalf("state_key nil read back as %q", *got.StateKey)
	}

	evs, err := s.GetEvents(c, []id.EventID{"$member", "$missing", "$create", "$other"})
	must(t, err)
	slices.SortFunc(evs, func(a, b *storage.Event) int { return cmp.Compare(a.EventID, b.EventID) })
	eqList(t, "GetEvents (missing IDs skipped)", ids(evs), []id.EventID{"$create", "$member", "$other"})
	for _, e := range evs {
		want := map[id.EventID]*storage.Event{"$create": create, "$member": member, "$other": other}[e.EventID]
		eq(t, "GetEvents event "+string(e.EventID), eventString(e), eventString(want))
	}
	evs, err = s.GetEvents(c, nil)
	must(t, err)
	eq(t, "GetEvents of no IDs", len(evs), 0)
	evs, err = s.GetEvents(c, []id.EventID{"$missing"})
	must(t, err)
	eq(t, "GetEvents of a missing ID", len(evs), 0)

	_, err = s.GetEvent(c, "$missing")
	wantErr(t, err, storage.ErrNotFound, "GetEvent of a missing event")
}

func testEventStreamPositions(t *testing.T, s storage.Store) {
	c := ctx(t)
	base, err := s.MaxStreamPos(c)
	must(t, err)
	eq(t, "MaxStreamPos of an empty store", base, 0)

	must(t, s.PersistEvents(c, nil))
	batch1 := []*storage.Event{ev(roomA, "$a1", "m.room.message"), ev(roomA, "$a2", "m.room.message"), ev(roomB, "$b1", "m.room.message")}
	persist(t, s, batch1...)
	for i, e := range batch1 {
		eq(t, "StreamPos of "+string(e.EventID), e.StreamPos, base+1+int64(i))
		eq(t, "stored StreamPos of "+string(e.EventID), getEvent(t, s, e.EventID).StreamPos, e.StreamPos)
	}
	pos, err := s.MaxStreamPos(c)
	must(t, err)
	eq(t, "MaxStreamPos after a batch", pos, base+3)

	batch2 := []*storage.Event{ev(roomB, "$b2", "m.room.message"), ev(roomA, "$a3", "m.room.message")}
	persist(t, s, batch2...)
	eq(t, "first position of the next batch", batch2[0].StreamPos, base+4)
	eq(t, "second position of the next batch", batch2[1].StreamPos, base+5)
	single := ev(roomA, "$a4", "m.room.message")
	persist(t, s, single)
	eq(t, "position of a one-event batch", single.StreamPos, base+6)

	must(t, s.PersistEvents(c, []*storage.EventWrite{}))
	pos, err = s.MaxStreamPos(c)
	must(t, err)
	eq(t, "MaxStreamPos after empty batches", pos, base+6)

	// A caller's stale StreamPos is overwritten, not kept.
	stale := ev(roomA, "$a5", "m.room.message")
	stale.StreamPos = 3
	persist(t, s, stale)
	eq(t, "position of an event with a preset StreamPos", stale.StreamPos, base+7)
}

func testEventCurrentState(t *testing.T, s storage.Store) {
	c := ctx(t)
	first, err := s.ReserveStateGroupIDs(c, 10)
	must(t, err)

	create := stateEv(roomA, "$create", "m.room.create", "")
	aliceJoin := memberEv(roomA, "$alice-join", alice, "join")
	bobInvite := memberEv(roomA, "$bob-invite", bob, "invite")
	carolJoin := memberEv(roomA, "$carol-join", carol, "join")
	aliceInviteB := memberEv(roomB, "$alice-invite-b", alice, "invite")
	snapshot := []storage.StateEntry{
		{Type: "m.room.create", StateKey: "", EventID: "$create"},
		{Type: "m.room.member", StateKey: alice, EventID: "$alice-join"},
		{Type: "m.room.member", StateKey: bob, EventID: "$bob-invite"},
		{Type: "m.room.member", StateKey: carol, EventID: "$carol-join"},
	}
	// One write sets several keys at once, another one its own.
	for _, e := range []*storage.Event{create, aliceJoin, bobInvite, carolJoin} {
		e.StateGroup = first
	}
	must(t, s.PersistEvents(c, []*storage.EventWrite{
		{Event: create, CurrentState: snapshot[:1]},
		{Event: aliceJoin, CurrentState: snapshot[1:2]},
		{Event: bobInvite},
		{Event: carolJoin, CurrentState: snapshot[2:], NewGroup: &storage.StateGroup{GroupID: first, RoomID: roomA, Entries: snapshot}},
		{Event: aliceInviteB, CurrentState: []storage.StateEntry{{Type: "m.room.member", StateKey: alice, EventID: "$alice-invite-b"}}},
	}))

	g, err := s.GetStateGroup(c, first)
	must(t, err)
	eq(t, "RoomID of the new group", g.RoomID, roomA)
	eqState(t, "entries of the new group", g.Entries, snapshot)
	eq(t, "StateGroup of an event", getEvent(t, s, "$carol-join").StateGroup, first)

	cs, err := s.CurrentState(c, roomA)
	must(t, err)
	eqState(t, "current state", cs, snapshot)
	cs, err = s.CurrentState(c, "!missing:example.org")
	must(t, err)
	eq(t, "current state of an unknown room", len(cs), 0)
	eventID, err := s.CurrentStateEvent(c, roomA, "m.room.member", bob)
	must(t, err)
	eq(t, "current member event of bob", eventID, "$bob-invite")
	_, err = s.CurrentStateEvent(c, roomA, "m.room.topic", "")
	wantErr(t, err, storage.ErrNotFound, "CurrentStateEvent of an unset key")
	_, err = s.CurrentStateEvent(c, roomB, "m.room.member", bob)
	wantErr(t, err, storage.ErrNotFound, "CurrentStateEvent of a key set in another room only")

	members := func(room id.RoomID, memberships ...string) []storage.CurrentMember {
		t.Helper()
		m, err := s.RoomMembers(c, room, memberships)
		must(t, err)
		return m
	}
	rooms := func(user id.UserID, memberships ...string) []storage.CurrentMember {
		t.Helper()
		m, err := s.RoomsOfUser(c, user, memberships)
		must(t, err)
		return m
	}
	eqList(t, "all members", members(roomA), []storage.CurrentMember{
		{RoomID: roomA, UserID: alice, EventID: "$alice-join", Membership: "join"},
		{RoomID: roomA, UserID: bob, EventID: "$bob-invite", Membership: "invite"},
		{RoomID: roomA, UserID: carol, EventID: "$carol-join", Membership: "join"},
	})
	eqList(t, "joined members", members(roomA, "join"), []storage.CurrentMember{
		{RoomID: roomA, UserID: alice, EventID: "$alice-join", Membership: "join"},
		{RoomID: roomA, UserID: carol, EventID: "$carol-join", Membership: "join"},
	})
	eqList(t, "invited or left members", members(roomA, "invite", "leave"), []storage.CurrentMember{
		{RoomID: roomA, UserID: bob, EventID: "$bob-invite", Membership: "invite"},
	})
	eq(t, "banned members", len(members(roomA, "ban")), 0)
	eqList(t, "rooms alice joined", rooms(alice, "join"), []storage.CurrentMember{
		{RoomID: roomA, UserID: alice, EventID: "$alice-join", Membership: "join"},
	})
	eqList(t, "rooms of alice, joined or invited", rooms(alice, "join", "invite"), []storage.CurrentMember{
		{RoomID: roomA, UserID: alice, EventID: "$alice-join", Membership: "join"},
		{RoomID: roomB, UserID: alice, EventID: "$alice-invite-b", Membership: "invite"},
	})
	eq(t, "rooms of alice, any membership", len(rooms(alice)), 2)
	eq(t, "rooms of an unknown user", len(rooms("@nobody:example.org", "join")), 0)

	// Upserts: bob joins, carol leaves, a topic arrives; its Membership
	// field (nonsense on a non-member event) must not make it a member.
	bobJoin := memberEv(roomA, "$bob-join", bob, "join")
	bobJoin.ReplacesState = "$bob-invite"
	carolLeave := memberEv(roomA, "$carol-leave", carol, "leave")
	topic := stateEv(roomA, "$topic", "m.room.topic", "")
	must(t, s.PersistEvents(c, []*storage.EventWrite{
		{Event: bobJoin, CurrentState: []storage.StateEntry{{Type: "m.room.member", StateKey: bob, EventID: "$bob-join"}}},
		{Event: carolLeave, CurrentState: []storage.StateEntry{{Type: "m.room.member", StateKey: carol, EventID: "$carol-leave"}}},
		{Event: topic, CurrentState: []storage.StateEntry{{Type: "m.room.topic", StateKey: "", EventID: "$topic"}}},
	}))
	eqList(t, "joined members after the upserts", members(roomA, "join"), []storage.CurrentMember{
		{RoomID: roomA, UserID: alice, EventID: "$alice-join", Membership: "join"},
		{RoomID: roomA, UserID: bob, EventID: "$bob-join", Membership: "join"},
	})
	eqList(t, "left members", members(roomA, "leave"), []storage.CurrentMember{
		{RoomID: roomA, UserID: carol, EventID: "$carol-leave", Membership: "leave"},
	})
	eq(t, "invited members after the join", len(members(roomA, "invite")), 0)
	eq(t, "members after the upserts", len(members(roomA)), 3)
	cs, err = s.CurrentState(c, roomA)
	must(t, err)
	eqState(t, "current state after the upserts", cs, []storage.StateEntry{
		{Type: "m.room.create", StateKey: "", EventID: "$create"},
		{Type: "m.room.member", StateKey: alice, EventID: "$alice-join"},
		{Type: "m.room.member", StateKey: bob, EventID: "$bob-join"},
		{Type: "m.room.member", StateKey: carol, EventID: "$carol-leave"},
		{Type: "m.room.topic", StateKey: "", EventID: "$topic"},
	})
	cs, err = s.CurrentState(c, roomB)
	must(t, err)
	eqState(t, "current state of the other room", cs, []storage.StateEntry{
		{Type: "m.room.member", StateKey: alice, EventID: "$alice-invite-b"},
	})

	// A write may set keys to events other than itself (state resolution
	// resetting the state): a member key then takes that event's membership.
	reset := stateEv(roomA, "$power", "m.room.power_levels", "")
	must(t, s.PersistEvents(c, []*storage.EventWrite{{Event: reset, CurrentState: []storage.StateEntry{
		{Type: "m.room.power_levels", StateKey: "", EventID: "$power"},
		{Type: "m.room.member", StateKey: carol, EventID: "$carol-join"},
		{Type: "m.room.member", StateKey: bob, EventID: "$bob-invite"},
	}}}))
	eqList(t, "members after a state reset", members(roomA), []storage.CurrentMember{
		{RoomID: roomA, UserID: alice, EventID: "$alice-join", Membership: "join"},
		{RoomID: roomA, UserID: bob, EventID: "$bob-invite", Membership: "invite"},
		{RoomID: roomA, UserID: carol, EventID: "$carol-join", Membership: "join"},
	})
	eqList(t, "rooms carol joined after a state reset", rooms(carol, "join"), []storage.CurrentMember{
		{RoomID: roomA, UserID: carol, EventID: "$carol-join", Membership: "join"},
	})
}

func testEventExtremities(t *testing.T, s storage.Store) {
	c := ctx(t)
	extremities := func(room id.RoomID) []id.EventID {
		t.Helper()
		x, err := s.GetForwardExtremities(c, room)
		must(t, err)
		return x
	}
	eq(t, "extremities of an unknown room", len(extremities(roomA)), 0)

	must(t, s.PersistEvents(c, []*storage.EventWrite{
		{Event: ev(roomA, "$a1", "m.room.message"), Extremities: []id.EventID{"$a1"}},
		{Event: ev(roomB, "$b1", "m.room.message"), Extremities: []id.EventID{"$b1"}},
	}))
	eqList(t, "extremities", extremities(roomA), []id.EventID{"$a1"})
	eqList(t, "extremities of the other room", extremities(roomB), []id.EventID{"$b1"})

	// nil keeps them.
	persist(t, s, ev(roomA, "$a2", "m.room.message"))
	eqList(t, "extremities after a write without any", extremities(roomA), []id.EventID{"$a1"})

	// Each non-nil list replaces the previous; the last in the batch wins.
	must(t, s.PersistEvents(c, []*storage.EventWrite{
		{Event: ev(roomA, "$a3", "m.room.message"), Extremities: []id.EventID{"$a3"}},
		{Event: ev(roomA, "$a4", "m.room.message"), Extremities: []id.EventID{"$a4", "$a2", "$x"}},
		{Event: ev(roomA, "$a5", "m.room.message")},
	}))
	eqList(t, "extremities after a batch", extremities(roomA), []id.EventID{"$a2", "$a4", "$x"})
	eqList(t, "extremities of the other room (untouched)", extremities(roomB), []id.EventID{"$b1"})

	// An empty, non-nil list clears them.
	must(t, s.PersistEvents(c, []*storage.EventWrite{{Event: ev(roomA, "$a6", "m.room.message"), Extremities: []id.EventID{}}}))
	eq(t, "extremities after an empty list", len(extremities(roomA)), 0)
	eqList(t, "extremities of the other room (untouched)", extremities(roomB), []id.EventID{"$b1"})
}

func testEventTxn(t *testing.T, s storage.Store) {
	c := ctx(t)
	const sendA, sendB = "send !a:x m.room.message", "send !b:x m.room.message"
	must(t, s.PersistEvents(c, []*storage.EventWrite{
		{Event: ev(roomA, "$e1", "m.room.message"), Txn: &storage.EventTxn{UserID: alice, DeviceID: "DEV", Endpoint: sendA,
			TxnID: "t1", EventID: "$e1"}},
		{Event: ev(roomA, "$e2", "m.room.message")},
		{Event: ev(roomA, "$e3", "m.room.message"), Txn: &storage.EventTxn{UserID: alice, DeviceID: "DEV2", Endpoint: sendA,
			TxnID: "t1", EventID: "$e3"}},
		// The same ID on another endpoint is another transaction.
		{Event: ev(roomA, "$e4", "m.room.message"), Txn: &storage.EventTxn{UserID: alice, DeviceID: "DEV", Endpoint: sendB,
			TxnID: "t1", EventID: "$e4"}},
	}))
	for _, tc := range []struct {
		user     id.UserID
		device   id.DeviceID
		endpoint string
		txn      string
		want     id.EventID
	}{
		{alice, "DEV", sendA, "t1", "$e1"},
		{alice, "DEV2", sendA, "t1", "$e3"},
		{alice, "DEV", sendB, "t1", "$e4"},
	} {
		got, err := s.GetEventTxn(c, tc.user, tc.device, tc.endpoint, tc.txn)
		must(t, err)
		eq(t, "event of txn "+string(tc.device)+"/"+tc.endpoint+"/"+tc.txn, got, tc.want)
	}
	for _, tc := range []struct {
		user     id.UserID
		device   id.DeviceID
		endpoint string
		txn      string
	}{
		{alice, "DEV", sendA, "t2"}, {alice, "OTHER", sendA, "t1"}, {bob, "DEV", sendA, "t1"},
		{alice, "DEV", "redact !a:x $e2", "t1"},
	} {
		_, err := s.GetEventTxn(c, tc.user, tc.device, tc.endpoint, tc.txn)
		wantErr(t, err, storage.ErrNotFound, fmt.Sprintf("GetEventTxn(%s, %s, %s, %s)", tc.user, tc.device, tc.endpoint, tc.txn))
	}
	var positions []int64
	for _, e := range []id.EventID{"$e1", "$e2", "$e3", "$e4"} {
		positions = append(positions, getEvent(t, s, e).StreamPos)
	}
	ids, err := s.TxnIDsOf(c, alice, "DEV", positions)
	must(t, err)
	eq(t, "TxnIDsOf alice's DEV", fmt.Sprint(ids), fmt.Sprint(map[id.EventID]string{"$e1": "t1", "$e4": "t1"}))
	txns, err := s.TxnsOf(c, append(positions, 1<<40))
	must(t, err)
	eq(t, "TxnsOf", fmt.Sprint(txns), fmt.Sprint(map[id.EventID]storage.EventTxn{
		"$e1": {UserID: alice, DeviceID: "DEV", TxnID: "t1", EventID: "$e1"},
		"$e3": {UserID: alice, DeviceID: "DEV2", TxnID: "t1", EventID: "$e3"},
		"$e4": {UserID: alice, DeviceID: "DEV", TxnID: "t1", EventID: "$e4"}}))

	// A transaction that has an event fails the batch repeating it, and
	// nothing of the batch is stored: a send is made once.
	err = s.PersistEvents(c, []*storage.EventWrite{
		{Event: ev(roomA, "$e5", "m.room.message")},
		{Event: ev(roomA, "$e6", "m.room.message"), Txn: &storage.EventTxn{UserID: alice, DeviceID: "DEV", Endpoint: sendA,
			TxnID: "t1", EventID: "$e6"}},
	})
	wantErr(t, err, storage.ErrTxnTaken, "PersistEvents repeating a transaction")
	for _, eventID := range []id.EventID{"$e5", "$e6"} {
		_, err := s.GetEvent(c, eventID)
		wantErr(t, err, storage.ErrNotFound, "GetEvent("+string(eventID)+") of the refused batch")
	}
	got, err := s.GetEventTxn(c, alice, "DEV", sendA, "t1")
	must(t, err)
	eq(t, "event of txn DEV/t1 after the refused repeat", got, "$e1")
}

func testEventRedactions(t *testing.T, s storage.Store) {
	c := ctx(t)
	persist(t, s, ev(roomA, "$m1", "m.room.message"), ev(roomA, "$m2", "m.room.message"))
	redactedBy := func(eventID id.EventID) id.EventID {
		t.Helper()
		return getEvent(t, s, eventID).RedactedBy
	}
	eq(t, "RedactedBy of a new event", redactedBy("$m1"), "")

	// A redaction of an earlier event, and one of an event in its own batch.
	must(t, s.PersistEvents(c, []*storage.EventWrite{
		{Event: ev(roomA, "$r1", "m.room.redaction"), Redacts: "$m1"},
		{Event: ev(roomA, "$m3", "m.room.message")},
		{Event: ev(roomA, "$r3", "m.room.redaction"), Redacts: "$m3"},
		// Its target is not here (yet): nothing to mark, no error.
		{Event: ev(roomA, "$r-missing", "m.room.redaction"), Redacts: "$not-yet"},
	}))
	eq(t, "RedactedBy of $m1", redactedBy("$m1"), "$r1")
	eq(t, "RedactedBy of $m3 (same batch)", redactedBy("$m3"), "$r3")
	eq(t, "RedactedBy of $m2 (not redacted)", redactedBy("$m2"), "")
	eq(t, "RedactedBy of the redaction", redactedBy("$r1"), "")

	// Only the first redaction counts, through PersistEvents or SetRedactedBy.
	must(t, s.PersistEvents(c, []*storage.EventWrite{{Event: ev(roomA, "$r1b", "m.room.redaction"), Redacts: "$m1"}}))
	eq(t, "RedactedBy of $m1 after a second redaction", redactedBy("$m1"), "$r1")
	must(t, s.SetRedactedBy(c, "$m1", "$r1c"))
	eq(t, "RedactedBy of $m1 after SetRedactedBy", redactedBy("$m1"), "$r1")

	must(t, s.SetRedactedBy(c, "$m2", "$r2"))
	eq(t, "RedactedBy of $m2", redactedBy("$m2"), "$r2")
	must(t, s.SetRedactedBy(c, "$m2", "$r2b"))
	eq(t, "RedactedBy of $m2 after a second SetRedactedBy", redactedBy("$m2"), "$r2")
	must(t, s.SetRedactedBy(c, "$missing", "$r"))
}

func testEventBatchRollback(t *testing.T, s storage.Store) {
	c := ctx(t)
	gid, err := s.ReserveStateGroupIDs(c, 4)
	must(t, err)
	e1 := stateEv(roomA, "$e1", "m.room.create", "")
	must(t, s.PersistEvents(c, []*storage.EventWrite{{Event: e1, Extremities: []id.EventID{"$e1"},
		CurrentState: []storage.StateEntry{{Type: "m.room.create", EventID: "$e1"}}}}))
	base, err := s.MaxStreamPos(c)
	must(t, err)

	check := func(what string) {
		t.Helper()
		pos, err := s.MaxStreamPos(c)
		must(t, err)
		eq(t, what+": MaxStreamPos", pos, base)
		for _, eventID := range []id.EventID{"$n1", "$n2", "$n3"} {
			_, err := s.GetEvent(c, eventID)
			wantErr(t, err, storage.ErrNotFound, what+": GetEvent("+string(eventID)+")")
		}
		evs, err := s.GetEventsByPos(c, []int64{base + 1, base + 2, base + 3})
		must(t, err)
		eq(t, what+": events after the last committed position", len(evs), 0)
		evs, err = s.RoomEvents(c, roomA, 0, 0, false, 10)
		must(t, err)
		eqList(t, what+": room events", ids(evs), []id.EventID{"$e1"})
		for _, g := range []int64{gid + 1, gid + 2} {
			_, err = s.GetStateGroup(c, g)
			wantErr(t, err, storage.ErrNotFound, fmt.Sprintf("%s: state group %d of a failed batch", what, g))
		}
		x, err := s.GetForwardExtremities(c, roomA)
		must(t, err)
		eqList(t, what+": extremities", x, []id.EventID{"$e1"})
		cs, err := s.CurrentState(c, roomA)
		must(t, err)
		eqState(t, what+": current state", cs, []storage.StateEntry{{Type: "m.room.create", EventID: "$e1"}})
		_, err = s.GetEventTxn(c, alice, "DEV", "send !a:x m.room.topic", "t1")
		wantErr(t, err, storage.ErrNotFound, what+": txn of the failed batch")
		eq(t, what+": RedactedBy of the target of a failed redaction", getEvent(t, s, "$e1").RedactedBy, "")
	}

	// The last write repeats an event ID already stored.
	n1 := stateEv(roomA, "$n1", "m.room.topic", "")
	n2 := ev(roomA, "$n2", "m.room.redaction")
	dup := ev(roomA, "$e1", "m.room.message")
	err = s.PersistEvents(c, []*storage.EventWrite{
		{Event: n1, NewGroup: &storage.StateGroup{GroupID: gid + 1, RoomID: roomA, PrevGroup: gid, ChainLen: 1,
			Entries: []storage.StateEntry{{Type: "m.room.topic", EventID: "$n1"}}},
			CurrentState: []storage.StateEntry{{Type: "m.room.topic", EventID: "$n1"}}, Extremities: []id.EventID{"$n1"},
			Txn: &storage.EventTxn{UserID: alice, DeviceID: "DEV", Endpoint: "send !a:x m.room.topic", TxnID: "t1", EventID: "$n1"}},
		{Event: n2, Redacts: "$e1", Extremities: []id.EventID{"$n2"}},
		{Event: dup},
	})
	wantErr(t, err, storage.ErrConflict, "PersistEvents of an existing event ID")
	check("after a batch repeating a stored event")
	for _, e := range []*storage.Event{n1, n2, dup} {
		eq(t, "StreamPos of "+string(e.EventID)+" of the failed batch", e.StreamPos, 0)
	}

	// The batch repeats an event ID of its own.
	err = s.PersistEvents(c, []*storage.EventWrite{
		{Event: ev(roomA, "$n3", "m.room.message"), Extremities: []id.EventID{"$n3"}},
		{Event: ev(roomA, "$n3", "m.room.message")},
	})
	wantErr(t, err, storage.ErrConflict, "PersistEvents of a batch repeating an event ID")
	check("after a batch repeating its own event")

	// A state group ID taken already fails the batch too.
	err = s.PersistEvents(c, []*storage.EventWrite{
		{Event: ev(roomA, "$n1", "m.room.message"), NewGroup: &storage.StateGroup{GroupID: gid + 2, RoomID: roomA}},
		{Event: ev(roomA, "$n2", "m.room.message"), NewGroup: &storage.StateGroup{GroupID: gid + 2, RoomID: roomA}},
	})
	wantErr(t, err, storage.ErrConflict, "PersistEvents of a batch repeating a state group ID")
	check("after a batch repeating a state group")

	// The next batch continues right after the last committed one.
	next := []*storage.Event{ev(roomA, "$n1", "m.room.message"), ev(roomA, "$n2", "m.room.message")}
	persist(t, s, next...)
	eq(t, "position after the failed batches", next[0].StreamPos, base+1)
	eq(t, "position after the failed batches", next[1].StreamPos, base+2)
}

func testRoomEvents(t *testing.T, s storage.Store) {
	c := ctx(t)
	// m0..m9 in roomA, interleaved with roomB events; m3 rejected, m6 soft failed.
	var ms []*storage.Event
	for i := range 10 {
		e := ev(roomA, id.EventID(fmt.Sprintf("$m%d", i)), "m.room.message")
		e.Rejected, e.SoftFailed = i == 3, i == 6
		ms = append(ms, e)
	}
	persist(t, s, ms[0], ev(roomB, "$b0", "m.room.message"), ms[1], ms[2])
	persist(t, s, ms[3], ms[4], ev(roomB, "$b1", "m.room.message"), ms[5], ms[6])
	persist(t, s, ms[7])
	persist(t, s, ms[8], ms[9], ev(roomB, "$b2", "m.room.message"))
	p := func(i int) int64 { return ms[i].StreamPos }

	for _, tc := range []struct {
		what      string
		from, to  int64
		backwards bool
		limit     int
		want      []id.EventID
	}{
		{"forwards from the start", 0, 0, false, 100, []id.EventID{"$m0", "$m1", "$m2", "$m4", "$m5", "$m7", "$m8", "$m9"}},
		{"backwards from the end", farPos, 0, true, 100, []id.EventID{"$m9", "$m8", "$m7", "$m5", "$m4", "$m2", "$m1", "$m0"}},
		{"backwards from the end, limited", farPos, 0, true, 3, []id.EventID{"$m9", "$m8", "$m7"}},
		{"forwards from the start, limited", 0, 0, false, 2, []id.EventID{"$m0", "$m1"}},
		{"backwards from an event (exclusive)", p(7), 0, true, 100, []id.EventID{"$m5", "$m4", "$m2", "$m1", "$m0"}},
		{"forwards from an event (exclusive)", p(2), 0, false, 2, []id.EventID{"$m4", "$m5"}},
		{"forwards to a bound (exclusive)", p(1), p(5), false, 100, []id.EventID{"$m2", "$m4"}},
		{"backwards to a bound (exclusive)", p(8), p(4), true, 100, []id.EventID{"$m7", "$m5"}},
		{"backwards to a bound, limited", p(9), p(0), true, 2, []id.EventID{"$m8", "$m7"}},
		{"forwards past the end", p(9), 0, false, 100, nil},
		{"backwards before the start", p(0), 0, true, 100, nil},
		{"between adjacent positions", p(4), p(5), false, 100, nil},
	} {
		evs, err := s.RoomEvents(c, roomA, tc.from, tc.to, tc.backwards, tc.limit)
		must(t, err)
		if tc.want == nil {
			tc.want = []id.EventID{}
		}
		eqList(t, "RoomEvents "+tc.what, ids(evs), tc.want)
	}
	evs, err := s.RoomEvents(c, roomB, 0, 0, false, 100)
	must(t, err)
	eqList(t, "RoomEvents of the other room", ids(evs), []id.EventID{"$b0", "$b1", "$b2"})
	eq(t, "full event from RoomEvents", eventString(evs[1]), eventString(getEvent(t, s, "$b1")))
	evs, err = s.RoomEvents(c, "!missing:example.org", farPos, 0, true, 100)
	must(t, err)
	eq(t, "RoomEvents of an unknown room", len(evs), 0)
}

func testEventByTimestamp(t *testing.T, s storage.Store) {
	c := ctx(t)
	at := func(room id.RoomID, eventID id.EventID, ts int64) *storage.Event {
		e := ev(room, eventID, "m.room.message")
		e.OriginServerTS = ts
		return e
	}
	// Two events share ts 200; "$tie-z" comes first in the stream, so that
	// the tie is not broken by event ID.
	e100 := at(roomA, "$e100", 100)
	tieZ, tieA := at(roomA, "$tie-z", 200), at(roomA, "$tie-a", 200)
	rej := at(roomA, "$rejected", 300)
	rej.Rejected = true
	soft := at(roomA, "$soft-failed", 400)
	soft.SoftFailed = true
	e500 := at(roomA, "$e500", 500)
	// Stream order differs from timestamp order.
	persist(t, s, e500, at(roomB, "$b250", 250))
	persist(t, s, tieZ, e100, rej)
	persist(t, s, soft, tieA)

	for _, tc := range []struct {
		ts       int64
		forwards bool
		want     id.EventID
	}{
		{50, true, "$e100"},
		{100, true, "$e100"}, // at counts
		{101, true, "$tie-z"},
		{200, true, "$tie-z"},
		{201, true, "$e500"}, // over the rejected and soft failed events and the other room's
		{500, true, "$e500"},
		{100, false, "$e100"},
		{199, false, "$e100"},
		{200, false, "$tie-a"},
		{499, false, "$tie-a"},
		{500, false, "$e500"},
		{1 << 40, false, "$e500"},
	} {
		e, err := s.EventByTimestamp(c, roomA, tc.ts, tc.forwards)
		must(t, err)
		eq(t, fmt.Sprintf("EventByTimestamp(%d, forwards=%v)", tc.ts, tc.forwards), e.EventID, tc.want)
	}
	e, err := s.EventByTimestamp(c, roomA, 200, true)
	must(t, err)
	eq(t, "full event from EventByTimestamp", eventString(e), eventString(tieZ))

	_, err = s.EventByTimestamp(c, roomA, 501, true)
	wantErr(t, err, storage.ErrNotFound, "EventByTimestamp forwards after the last event")
	_, err = s.EventByTimestamp(c, roomA, 99, false)
	wantErr(t, err, storage.ErrNotFound, "EventByTimestamp backwards before the first event")
	_, err = s.EventByTimestamp(c, "!missing:example.org", 100, true)
	wantErr(t, err, storage.ErrNotFound, "EventByTimestamp in an unknown room")
}

// ---- state ----

func testReserveStateGroupIDs(t *testing.T, s storage.Store) {
	c := ctx(t)
	type span struct{ first, n int64 }
	var spans []span
	for _, n := range []int64{10, 1, 256, 3} {
		first, err := s.ReserveStateGroupIDs(c, n)
		must(t, err)
		if first <= 0 {
			t.Fatalf("ReserveStateGroupIDs(%d) = %d: 0 means no group, IDs must be positive", n, first)
		}
		for _, sp := range spans {
			if first < sp.first+sp.n && sp.first < first+n {
				t.Fatalf("ReserveStateGroupIDs(%d) = %d overlaps [%d, %d)", n, first, sp.first, sp.first+sp.n)
			}
		}
		spans = append(spans, span{first, n})
	}
	// Inside a transaction that rolls back, and concurrently.
	_ = s.WithTx(c, func(c context.Context) error {
		_, err := s.ReserveStateGroupIDs(c, 5)
		must(t, err)
		return errBoom
	})
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			first, err := s.ReserveStateGroupIDs(c, 7)
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			spans = append(spans, span{first, 7})
			mu.Unlock()
		})
	}
	wg.Wait()
	for i, a := range spans {
		for _, b := range spans[i+1:] {
			if a.first < b.first+b.n && b.first < a.first+a.n {
				t.Fatalf("reserved ranges [%d, %d) and [%d, %d) overlap", a.first, a.first+a.n, b.first, b.first+b.n)
			}
		}
	}
}

func testStateDeltaChain(t *testing.T, s storage.Store) {
	c := ctx(t)
	g, err := s.ReserveStateGroupIDs(c, 5)
	must(t, err)
	g1, g2, g3, g4, gB := g, g+1, g+2, g+3, g+4
	member := "m.room.member"
	snapshot := &storage.StateGroup{GroupID: g1, RoomID: roomA, Entries: []storage.StateEntry{
		{Type: "m.room.create", EventID: "$create"},
		{Type: "m.room.join_rules", EventID: "$jr"},
		{Type: member, StateKey: alice, EventID: "$alice"},
		{Type: "m.room.topic", EventID: "$topic1"},
		{Type: "m.room.name", EventID: "$name1"},
	}}
	delta2 := &storage.StateGroup{GroupID: g2, RoomID: roomA, PrevGroup: g1, ChainLen: 1, Entries: []storage.StateEntry{
		{Type: "m.room.topic", EventID: "$topic2"},
		{Type: member, StateKey: bob, EventID: "$bob1"},
	}}
	delta3 := &storage.StateGroup{GroupID: g3, RoomID: roomA, PrevGroup: g2, ChainLen: 2, Entries: []storage.StateEntry{
		{Type: "m.room.topic", EventID: "$topic3"},
		{Type: "m.room.name", EventID: ""}, // removed
	}}
	delta4 := &storage.StateGroup{GroupID: g4, RoomID: roomA, PrevGroup: g3, ChainLen: 3, Entries: []storage.StateEntry{
		{Type: member, StateKey: bob, EventID: "$bob2"},
		{Type: "m.room.name", EventID: "$name4"}, // back again
	}}
	other := &storage.StateGroup{GroupID: gB, RoomID: roomB, Entries: []storage.StateEntry{
		{Type: "m.room.create", EventID: "$create-b"},
		{Type: "m.room.topic", EventID: "$topic-b"},
	}}
	// Groups are written with the events that make them; two in one batch.
	must(t, s.PersistEvents(c, []*storage.EventWrite{
		{Event: stateEv(roomA, "$name1", "m.room.name", ""), NewGroup: snapshot},
		{Event: stateEv(roomB, "$topic-b", "m.room.topic", ""), NewGroup: other},
	}))
	must(t, s.PersistEvents(c, []*storage.EventWrite{{Event: memberEv(roomA, "$bob1", bob, "join"), NewGroup: delta2}}))
	must(t, s.PersistEvents(c, []*storage.EventWrite{
		{Event: stateEv(roomA, "$topic3", "m.room.topic", ""), NewGroup: delta3},
		{Event: memberEv(roomA, "$bob2", bob, "leave"), NewGroup: delta4},
	}))

	// GetStateGroup returns a group as written: its own entries only.
	for _, want := range []*storage.StateGroup{snapshot, delta2, delta3, delta4, other} {
		got, err := s.GetStateGroup(c, want.GroupID)
		must(t, err)
		what := fmt.Sprintf("group %d", want.GroupID)
		eq(t, what+" GroupID", got.GroupID, want.GroupID)
		eq(t, what+" RoomID", got.RoomID, want.RoomID)
		eq(t, what+" PrevGroup", got.PrevGroup, want.PrevGroup)
		eq(t, what+" ChainLen", got.ChainLen, want.ChainLen)
		eqState(t, what+" entries", got.Entries, want.Entries)
	}
	_, err = s.GetStateGroup(c, gB+1000)
	wantErr(t, err, storage.ErrNotFound, "GetStateGroup of a missing group")
	_, err = s.GetStateGroup(c, 0)
	wantErr(t, err, storage.ErrNotFound, "GetStateGroup(0)")

	full := map[int64][]storage.StateEntry{
		g1: snapshot.Entries,
		g2: {
			{Type: "m.room.create", EventID: "$create"},
			{Type: "m.room.join_rules", EventID: "$jr"},
			{Type: member, StateKey: alice, EventID: "$alice"},
			{Type: member, StateKey: bob, EventID: "$bob1"},
			{Type: "m.room.topic", EventID: "$topic2"},
			{Type: "m.room.name", EventID: "$name1"},
		},
		g3: {
			{Type: "m.room.create", EventID: "$create"},
			{Type: "m.room.join_rules", EventID: "$jr"},
			{Type: member, StateKey: alice, EventID: "$alice"},
			{Type: member, StateKey: bob, EventID: "$bob1"},
			{Type: "m.room.topic", EventID: "$topic3"},
		},
		g4: {
			{Type: "m.room.create", EventID: "$create"},
			{Type: "m.room.join_rules", EventID: "$jr"},
			{Type: member, StateKey: alice, EventID: "$alice"},
			{Type: member, StateKey: bob, EventID: "$bob2"},
			{Type: "m.room.topic", EventID: "$topic3"},
			{Type: "m.room.name", EventID: "$name4"},
		},
		gB: other.Entries,
	}
	checked := 0
	for gid, want := range full {
		got, err := s.StateAt(c, gid)
		must(t, err)
		eqState(t, fmt.Sprintf("StateAt(%d)", gid), got, want)
		// StateEntryAt agrees with StateAt on every key that exists anywhere.
		for _, k := range []storage.StateEntry{
			{Type: "m.room.create"}, {Type: "m.room.join_rules"}, {Type: "m.room.topic"}, {Type: "m.room.name"},
			{Type: member, StateKey: alice}, {Type: member, StateKey: bob}, {Type: member, StateKey: carol},
		} {
			var wantID id.EventID
			for _, e := range want {
				if e.Type == k.Type && e.StateKey == k.StateKey {
					wantID = e.EventID
				}
			}
			got, err := s.StateEntryAt(c, gid, k.Type, k.StateKey)
			must(t, err)
			eq(t, fmt.Sprintf("StateEntryAt(%d, %s, %q)", gid, k.Type, k.StateKey), got, wantID)
			// StateEventAt: that key's event, if it is stored.
			ev, err := s.StateEventAt(c, gid, k.Type, k.StateKey)
			_, stored := s.GetEvent(c, wantID)
			if wantID == "" || stored != nil {
				eq(t, fmt.Sprintf("StateEventAt(%d, %s, %q) of an unset key or missing event", gid, k.Type, k.StateKey),
					errors.Is(err, storage.ErrNotFound), true)
			} else {
				must(t, err)
				eq(t, fmt.Sprintf("StateEventAt(%d, %s, %q)", gid, k.Type, k.StateKey), ev.EventID, wantID)
				checked++
			}
		}
	}

	if checked == 0 {
		t.Fatal("no StateEventAt of a stored event was checked")
	}
	for _, gid := range []int64{0, gB + 1000} {
		st, err := s.StateAt(c, gid)
		must(t, err)
		eq(t, fmt.Sprintf("StateAt(%d) of an unknown group", gid), len(st), 0)
		got, err := s.StateEntryAt(c, gid, "m.room.create", "")
		must(t, err)
		eq(t, fmt.Sprintf("StateEntryAt(%d) of an unknown group", gid), got, "")
	}
}

// ---- relations ----

// relationsFixture persists a parent with children of several kinds and
// returns the children by ID.
func relationsFixture(t *testing.T, s storage.Store) map[id.EventID]*storage.Event {
	children := []*storage.Event{
		relEv(roomA, "$c1", "m.room.message", "m.thread", "$root"),
		relEv(roomA, "$c2", "m.reaction", "m.annotation", "$root"),
		relEv(roomA, "$c3", "m.room.message", "m.thread", "$root"),
		relEv(roomA, "$c4", "m.room.encrypted", "m.thread", "$root"),
		relEv(roomA, "$c5-rejected", "m.room.message", "m.thread", "$root"),
		relEv(roomA, "$c6-soft-failed", "m.reaction", "m.annotation", "$root"),
		relEv(roomA, "$c7", "m.room.message", "m.replace", "$root"),
		relEv(roomA, "$o1", "m.room.message", "m.thread", "$other"),
		// An event of another room naming the parent is not its relation.
		relEv(roomB, "$elsewhere", "m.room.message", "m.thread", "$root"),
	}
	children[4].Rejected = true
	children[5].SoftFailed = true
	persist(t, s, ev(roomA, "$root", "m.room.message"), ev(roomA, "$other", "m.room.message"), children[0], children[1])
	persist(t, s, children[2:5]...)
	persist(t, s, children[5:]...)
	out := map[id.EventID]*storage.Event{}
	for _, e := range children {
		out[e.EventID] = e
	}
	return out
}

func testRelationsFilter(t *testing.T, s storage.Store) {
	c := ctx(t)
	relationsFixture(t, s)
	for _, tc := range []struct {
		relType, evType string
		want            []id.EventID
	}{
		{"", "", []id.EventID{"$c1", "$c2", "$c3", "$c4", "$c7"}},
		{"m.thread", "", []id.EventID{"$c1", "$c3", "$c4"}},
		{"m.thread", "m.room.message", []id.EventID{"$c1", "$c3"}},
		{"", "m.reaction", []id.EventID{"$c2"}},
		{"", "m.room.message", []id.EventID{"$c1", "$c3", "$c7"}},
		{"m.annotation", "m.room.message", []id.EventID{}},
		{"m.reference", "", []id.EventID{}},
	} {
		what := fmt.Sprintf("Relations(relType %q, eventType %q)", tc.relType, tc.evType)
		evs, err := s.Relations(c, "$root", tc.relType, tc.evType, 0, false, 100)
		must(t, err)
		eqList(t, what+" forwards", ids(evs), tc.want)
		evs, err = s.Relations(c, "$root", tc.relType, tc.evType, farPos, true, 100)
		must(t, err)
		back := slices.Clone(tc.want)
		slices.Reverse(back)
		eqList(t, what+" backwards", ids(evs), back)
	}
	evs, err := s.Relations(c, "$other", "", "", 0, false, 100)
	must(t, err)
	eqList(t, "relations of the other parent", ids(evs), []id.EventID{"$o1"})
	eq(t, "full event from Relations", eventString(evs[0]), eventString(getEvent(t, s, "$o1")))
	evs, err = s.Relations(c, "$c1", "", "", 0, false, 100)
	must(t, err)
	eq(t, "relations of an event without children", len(evs), 0)
}

func testRelationsPaging(t *testing.T, s storage.Store) {
	c := ctx(t)
	children := relationsFixture(t, s)
	pos := func(eventID id.EventID) int64 { return children[eventID].StreamPos }
	page := func(from int64, backwards bool) []id.EventID {
		t.Helper()
		evs, err := s.Relations(c, "$root", "", "", from, backwards, 2)
		must(t, err)
		return ids(evs)
	}
	eqList(t, "forwards page 1", page(0, false), []id.EventID{"$c1", "$c2"})
	eqList(t, "forwards page 2", page(pos("$c2"), false), []id.EventID{"$c3", "$c4"})
	eqList(t, "forwards page 3", page(pos("$c4"), false), []id.EventID{"$c7"})
	eqList(t, "forwards page 4", page(pos("$c7"), false), []id.EventID{})
	eqList(t, "backwards page 1", page(farPos, true), []id.EventID{"$c7", "$c4"})
	eqList(t, "backwards page 2", page(pos("$c4"), true), []id.EventID{"$c3", "$c2"})
	eqList(t, "backwards page 3", page(pos("$c2"), true), []id.EventID{"$c1"})
	eqList(t, "backwards page 4", page(pos("$c1"), true), []id.EventID{})

	evs, err := s.Relations(c, "$root", "m.thread", "", pos("$c1"), false, 1)
	must(t, err)
	eqList(t, "filtered page", ids(evs), []id.EventID{"$c3"})
	evs, err = s.Relations(c, "$root", "m.thread", "", pos("$c7"), true, 2)
	must(t, err)
	eqList(t, "filtered page backwards", ids(evs), []id.EventID{"$c4", "$c3"})
}

func testThreadRoots(t *testing.T, s storage.Store) {
	c := ctx(t)
	msg := func(eventID id.EventID) *storage.Event { return ev(roomA, eventID, "m.room.message") }
	reply := func(eventID, root id.EventID) *storage.Event {
		return relEv(roomA, eventID, "m.room.message", "m.thread", root)
	}
	rejected := reply("$t4-rejected", "$r4")
	rejected.Rejected = true
	softFailed := reply("$t3-soft-failed", "$r3")
	softFailed.SoftFailed = true
	// Roots that clients never see do not head threads, whatever replies they get.
	rejectedRoot, softFailedRoot := msg("$r6-rejected"), msg("$r7-soft-failed")
	rejectedRoot.Rejected, softFailedRoot.SoftFailed = true, true
	persist(t, s, msg("$r1"), msg("$r2"), msg("$r3"), msg("$r4"), msg("$r5"), rejectedRoot, softFailedRoot)
	persist(t, s, reply("$t6", "$r6-rejected"), reply("$t7", "$r7-soft-failed"))
	t3a := reply("$t3a", "$r3")
	persist(t, s, t3a, reply("$t1a", "$r1"), reply("$t2a", "$r2"))
	persist(t, s, rejected, relEv(roomA, "$ann", "m.reaction", "m.annotation", "$r5"))
	t1b, t2b := reply("$t1b", "$r1"), reply("$t2b", "$r2")
	persist(t, s, t1b, t2b, softFailed)
	// Another room's thread, active last, and a reply there naming a root of roomA.
	persist(t, s, ev(roomB, "$rb", "m.room.message"), relEv(roomB, "$tb", "m.room.message", "m.thread", "$rb"),
		relEv(roomB, "$tb-r3", "m.room.message", "m.thread", "$r3"))

	roots := func(room id.RoomID, from int64, limit int) []id.EventID {
		t.Helper()
		evs, err := s.ThreadRoots(c, room, from, limit)
		must(t, err)
		return ids(evs)
	}
	// Latest activity: $r2 ($t2b), $r1 ($t1b), $r3 ($t3a; its later reply soft failed).
	eqList(t, "thread roots", roots(roomA, farPos, 10), []id.EventID{"$r2", "$r1", "$r3"})
	eqList(t, "thread roots, limited", roots(roomA, farPos, 2), []id.EventID{"$r2", "$r1"})
	// from: roots whose latest activity is before it (the next page after a root).
	eqList(t, "thread roots before the latest reply of $r2", roots(roomA, t2b.StreamPos, 10), []id.EventID{"$r1", "$r3"})
	eqList(t, "thread roots before the latest reply of $r1", roots(roomA, t1b.StreamPos, 10), []id.EventID{"$r3"})
	eqList(t, "thread roots before any reply", roots(roomA, t3a.StreamPos, 10), []id.EventID{})
	eqList(t, "thread roots of the other room", roots(roomB, farPos, 10), []id.EventID{"$rb"})
	eqList(t, "thread roots of an unknown room", roots("!missing:example.org", farPos, 10), []id.EventID{})

	evs, err := s.ThreadRoots(c, roomA, farPos, 1)
	must(t, err)
	eq(t, "full event from ThreadRoots", eventString(evs[0]), eventString(getEvent(t, s, "$r2")))
}

func testRelationAggregates(t *testing.T, s storage.Store) {
	c := ctx(t)
	by := func(e *storage.Event, sender id.UserID) *storage.Event { e.Sender = sender; return e }
	thread := func(eventID, parent id.EventID, sender id.UserID) *storage.Event {
		return by(relEv(roomA, eventID, "m.room.message", "m.thread", parent), sender)
	}
	replace := func(eventID, parent id.EventID, sender id.UserID) *storage.Event {
		return by(relEv(roomA, eventID, "m.room.message", "m.replace", parent), sender)
	}
	a1, b1, e1, a2 := thread("$a1", "$p1", alice), thread("$b1", "$p1", bob), replace("$e1", "$p1", alice), thread("$a2", "$p1", alice)
	b2 := thread("$b2", "$p1", bob) // redacted below
	carolRejected := thread("$c1", "$p1", carol)
	carolRejected.Rejected = true
	carolSoft := replace("$c2", "$p1", carol)
	carolSoft.SoftFailed = true
	r1, r2 := replace("$r1", "$p2", bob), replace("$r2", "$p2", bob)
	persist(t, s, ev(roomA, "$p1", "m.room.message"), ev(roomA, "$p2", "m.room.message"), ev(roomA, "$p3", "m.room.message"))
	persist(t, s, a1, b1, r1, e1)
	persist(t, s, by(relEv(roomA, "$ann", "m.reaction", "m.annotation", "$p1"), alice), a2, b2, carolRejected, carolSoft)
	must(t, s.PersistEvents(c, []*storage.EventWrite{
		{Event: r2},
		{Event: thread("$p3-child", "$p3", alice)},
		{Event: by(relEv(roomB, "$elsewhere", "m.room.message", "m.thread", "$p1"), alice)}, // another room: not counted
		{Event: ev(roomA, "$redaction", "m.room.redaction"), Redacts: "$b2"},
	}))

	aggs, err := s.RelationAggregates(c, []id.EventID{"$p1", "$p2", "$no-children"})
	must(t, err)
	slices.SortFunc(aggs, func(a, b storage.RelationAggregate) int {
		return cmp.Or(cmp.Compare(a.Parent, b.Parent), cmp.Compare(a.RelType, b.RelType), cmp.Compare(a.Sender, b.Sender))
	})
	eqList(t, "RelationAggregates", aggs, []storage.RelationAggregate{
		{Parent: "$p1", RelType: "m.replace", Sender: alice, Count: 1, LatestPos: e1.StreamPos},
		{Parent: "$p1", RelType: "m.thread", Sender: alice, Count: 2, LatestPos: a2.StreamPos},
		{Parent: "$p1", RelType: "m.thread", Sender: bob, Count: 1, LatestPos: b1.StreamPos}, // $b2 is redacted
		{Parent: "$p2", RelType: "m.replace", Sender: bob, Count: 2, LatestPos: r2.StreamPos},
	})
	aggs, err = s.RelationAggregates(c, nil)
	must(t, err)
	eq(t, "RelationAggregates of no parents", len(aggs), 0)
	aggs, err = s.RelationAggregates(c, []id.EventID{"$a1"})
	must(t, err)
	eq(t, "RelationAggregates of a childless event", len(aggs), 0)

	// GetEventsByPos resolves LatestPos to events.
	evs, err := s.GetEventsByPos(c, []int64{r2.StreamPos, a2.StreamPos, b2.StreamPos, farPos, 0})
	must(t, err)
	slices.SortFunc(evs, func(a, b *storage.Event) int { return cmp.Compare(a.StreamPos, b.StreamPos) })
	eqList(t, "GetEventsByPos (unknown positions skipped)", ids(evs), []id.EventID{"$a2", "$b2", "$r2"})
	for _, e := range evs {
		eq(t, "event from GetEventsByPos", eventString(e), eventString(getEvent(t, s, e.EventID)))
	}
	eq(t, "RedactedBy of an event from GetEventsByPos", evs[1].RedactedBy, "$redaction")
	evs, err = s.GetEventsByPos(c, nil)
	must(t, err)
	eq(t, "GetEventsByPos of no positions", len(evs), 0)

	// RelationSpan: the first and last thread reply or edit of a room,
	// whatever became of them (reactions do not count).
	child := getEvent(t, s, "$p3-child")
	lo, hi, ok, err := s.RelationSpan(c, roomA)
	must(t, err)
	eq(t, "RelationSpan of roomA", fmt.Sprint(lo, hi, ok), fmt.Sprint(a1.StreamPos, child.StreamPos, true))
	persist(t, s, by(relEv("!reactions-only:example.org", "$only-ann", "m.reaction", "m.annotation", "$p1"), alice))
	_, _, ok, err = s.RelationSpan(c, "!reactions-only:example.org")
	must(t, err)
	eq(t, "RelationSpan of a room with reactions only", ok, false)
}

// ---- aliases ----

func testAliases(t *testing.T, s storage.Store) {
	c := ctx(t)
	list, err := s.AliasesOfRoom(c, roomA)
	must(t, err)
	eq(t, "aliases of a room without any", len(list), 0)
	want := storage.RoomAlias{Alias: "#main:example.org", RoomID: roomA, Creator: alice}
	for _, a := range []storage.RoomAlias{
		{Alias: "#zeta:example.org", RoomID: roomA, Creator: bob},
		want,
		{Alias: "#beta:example.org", RoomID: roomA, Creator: alice},
		{Alias: "#other:example.org", RoomID: roomB, Creator: bob},
	} {
		must(t, s.CreateAlias(c, &a))
	}
	got, err := s.GetAlias(c, want.Alias)
	must(t, err)
	eq(t, "alias", *got, want)

	err = s.CreateAlias(c, &storage.RoomAlias{Alias: want.Alias, RoomID: roomB, Creator: bob})
	wantErr(t, err, storage.ErrConflict, "CreateAlias of a taken alias")
	got, err = s.GetAlias(c, want.Alias)
	must(t, err)
	eq(t, "alias after the refused duplicate", *got, want)

	list, err = s.AliasesOfRoom(c, roomA)
	must(t, err)
	eqList(t, "aliases of the room", list, []id.RoomAlias{"#beta:example.org", "#main:example.org", "#zeta:example.org"})
	list, err = s.AliasesOfRoom(c, roomB)
	must(t, err)
	eqList(t, "aliases of the other room", list, []id.RoomAlias{"#other:example.org"})

	must(t, s.DeleteAlias(c, want.Alias))
	_, err = s.GetAlias(c, want.Alias)
	wantErr(t, err, storage.ErrNotFound, "GetAlias of a deleted alias")
	wantErr(t, s.DeleteAlias(c, want.Alias), storage.ErrNotFound, "DeleteAlias of a deleted alias")
	wantErr(t, s.DeleteAlias(c, "#never:example.org"), storage.ErrNotFound, "DeleteAlias of a missing alias")
	list, err = s.AliasesOfRoom(c, roomA)
	must(t, err)
	eqList(t, "aliases of the room after a delete", list, []id.RoomAlias{"#beta:example.org", "#zeta:example.org"})

	// A deleted alias can be created again, for another room.
	must(t, s.CreateAlias(c, &storage.RoomAlias{Alias: want.Alias, RoomID: roomB, Creator: bob}))
	got, err = s.GetAlias(c, want.Alias)
	must(t, err)
	eq(t, "recreated alias", *got, storage.RoomAlias{Alias: want.Alias, RoomID: roomB, Creator: bob})
}

// ---- room extras ----

func testForgotten(t *testing.T, s storage.Store) {
	c := ctx(t)
	forgotten := func(user id.UserID, room id.RoomID) bool {
		t.Helper()
		f, err := s.IsForgotten(c, user, room)
		must(t, err)
		return f
	}
	eq(t, "IsForgotten before any SetForgotten", forgotten(alice, roomA), false)
	must(t, s.SetForgotten(c, alice, roomA, true))
	must(t, s.SetForgotten(c, alice, roomA, true)) // idempotent
	eq(t, "IsForgotten after SetForgotten(true)", forgotten(alice, roomA), true)
	eq(t, "IsForgotten of another room", forgotten(alice, roomB), false)
	eq(t, "IsForgotten of another user", forgotten(bob, roomA), false)

	must(t, s.SetForgotten(c, bob, roomA, true))
	must(t, s.SetForgotten(c, alice, roomA, false))
	must(t, s.SetForgotten(c, alice, roomA, false)) // idempotent
	eq(t, "IsForgotten after SetForgotten(false)", forgotten(alice, roomA), false)
	eq(t, "IsForgotten of the other user (untouched)", forgotten(bob, roomA), true)
	must(t, s.SetForgotten(c, carol, roomB, false)) // never forgotten
	eq(t, "IsForgotten after only SetForgotten(false)", forgotten(carol, roomB), false)
	must(t, s.SetForgotten(c, alice, roomA, true))
	eq(t, "IsForgotten after forgetting again", forgotten(alice, roomA), true)
}

func testReports(t *testing.T, s storage.Store) {
	c := ctx(t)
	must(t, s.CreateReport(c, &storage.Report{ReportID: "r1", RoomID: roomA, EventID: "$e", Reporter: alice,
		Reason: "spam", Score: ptr(-100), CreatedAt: 10}))
	must(t, s.CreateReport(c, &storage.Report{ReportID: "r2", RoomID: roomA, Reporter: alice, CreatedAt: 11}))
	must(t, s.CreateReport(c, &storage.Report{ReportID: "r3", RoomID: roomB, ReportedUser: bob, Reporter: carol,
		Reason: "abuse", Score: ptr(0), CreatedAt: 12}))
	wantErr(t, s.CreateReport(c, &storage.Report{ReportID: "r1", RoomID: roomB, Reporter: bob, CreatedAt: 13}),
		storage.ErrConflict, "CreateReport of a taken report ID")

	// Conflicts of the room stores inside a transaction leave it usable
	// (PostgreSQL aborts a transaction on any error).
	must(t, s.CreateRoomRecord(c, &storage.Room{RoomID: roomA, RoomVersion: "11", Creator: alice, CreatedAt: 1}))
	must(t, s.CreateAlias(c, &storage.RoomAlias{Alias: "#a:example.org", RoomID: roomA, Creator: alice}))
	must(t, s.WithTx(c, func(c context.Context) error {
		wantErr(t, s.CreateReport(c, &storage.Report{ReportID: "r2", RoomID: roomA, Reporter: bob, CreatedAt: 14}),
			storage.ErrConflict, "CreateReport of a taken report ID inside a transaction")
		wantErr(t, s.CreateRoomRecord(c, &storage.Room{RoomID: roomA, RoomVersion: "11", Creator: bob, CreatedAt: 2}),
			storage.ErrConflict, "CreateRoomRecord of an existing room inside a transaction")
		wantErr(t, s.CreateAlias(c, &storage.RoomAlias{Alias: "#a:example.org", RoomID: roomB, Creator: bob}),
			storage.ErrConflict, "CreateAlias of a taken alias inside a transaction")
		if err := s.CreateReport(c, &storage.Report{ReportID: "r4", RoomID: roomA, Reporter: bob, Score: ptr(-50), CreatedAt: 15}); err != nil {
			return err
		}
		return s.SetForgotten(c, bob, roomA, true)
	}))
	wantErr(t, s.CreateReport(c, &storage.Report{ReportID: "r4", RoomID: roomA, Reporter: bob, CreatedAt: 16}),
		storage.ErrConflict, "CreateReport of the report committed in the transaction")
	f, err := s.IsForgotten(c, bob, roomA)
	must(t, err)
	eq(t, "IsForgotten set after the conflicts in the transaction", f, true)
	a, err := s.GetAlias(c, "#a:example.org")
	must(t, err)
	eq(t, "alias after the refused duplicate in a transaction", a.RoomID, roomA)

	// The admin's view: event reports only, newest first, filtered, paged.
	must(t, s.CreateReport(c, &storage.Report{ReportID: "r5", RoomID: roomB, EventID: "$f", Reporter: bob, CreatedAt: 17}))
	must(t, s.CreateReport(c, &storage.Report{ReportID: "r6", RoomID: roomA, EventID: "$g", Reporter: bob, CreatedAt: 18}))
	reportIDs := func(rs []*storage.Report) []string {
		var out []string
		for _, r := range rs {
			out = append(out, r.ReportID)
		}
		return out
	}
	rs, total, err := s.EventReports(c, "", "", false, 0, 10)
	must(t, err)
	eq(t, "event reports, total", total, 3)
	eqList(t, "event reports, newest first", reportIDs(rs), []string{"r6", "r5", "r1"})
	rs, total, err = s.EventReports(c, roomA, "", true, 0, 1)
	must(t, err)
	eq(t, "event reports of roomA, total", total, 2)
	eqList(t, "event reports of roomA, oldest first, one", reportIDs(rs), []string{"r1"})
	rs, _, err = s.EventReports(c, "", bob, false, 1, 10)
	must(t, err)
	eqList(t, "bob's event reports from the second", reportIDs(rs), []string{"r5"})
	r, err := s.GetReport(c, "r1")
	must(t, err)
	eq(t, "report r1", fmt.Sprint(r.RoomID, r.EventID, r.Reporter, r.Reason, *r.Score, r.CreatedAt),
		fmt.Sprint(roomA, "$e", alice, "spam", -100, 10))
	must(t, s.DeleteReport(c, "r1"))
	_, err = s.GetReport(c, "r1")
	wantErr(t, err, storage.ErrNotFound, "GetReport of a deleted report")
	wantErr(t, s.DeleteReport(c, "r1"), storage.ErrNotFound, "DeleteReport of a deleted report")

	// Blocked rooms, known or not.
	blockedBy := func(r id.RoomID) id.UserID {
		t.Helper()
		by, err := s.RoomBlockedBy(c, r)
		must(t, err)
		return by
	}
	eq(t, "a room never blocked", blockedBy(roomA), id.UserID(""))
	must(t, s.SetRoomBlocked(c, roomA, true, alice, 20))
	must(t, s.SetRoomBlocked(c, roomA, true, bob, 21)) // blocked already: alice did
	must(t, s.SetRoomBlocked(c, "!unknown:example.org", true, bob, 22))
	eq(t, "roomA blocked", blockedBy(roomA), alice)
	eq(t, "an unknown room blocked", blockedBy("!unknown:example.org"), bob)
	must(t, s.SetRoomBlocked(c, roomA, false, "", 0))
	must(t, s.SetRoomBlocked(c, roomA, false, "", 0))
	eq(t, "roomA unblocked", blockedBy(roomA), id.UserID(""))
}

// ---- concurrency ----

func testConcurrentPersist(t *testing.T, s storage.Store) {
	c := ctx(t)
	const writers, batches, perBatch = 8, 10, 5
	base, err := s.MaxStreamPos(c)
	must(t, err)
	positions := make([][]int64, writers)
	errs := make(chan error, writers)
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			room := id.RoomID(fmt.Sprintf("!room%d:example.org", w))
			for b := range batches {
				writes := make([]*storage.EventWrite, perBatch)
				for i := range writes {
					eventID := id.EventID(fmt.Sprintf("$w%d-b%d-e%d", w, b, i))
					e := memberEv(room, eventID, id.UserID(fmt.Sprintf("@u%d:example.org", i)), "join")
					writes[i] = &storage.EventWrite{Event: e, Extremities: []id.EventID{eventID},
						CurrentState: []storage.StateEntry{{Type: "m.room.member", StateKey: *e.StateKey, EventID: eventID}}}
				}
				if err := s.PersistEvents(c, writes); err != nil {
					errs <- fmt.Errorf("writer %d batch %d: %w", w, b, err)
					return
				}
				for i, wr := range writes {
					if i > 0 && wr.Event.StreamPos != writes[i-1].Event.StreamPos+1 {
						errs <- fmt.Errorf("writer %d batch %d: positions %d then %d within a batch",
							w, b, writes[i-1].Event.StreamPos, wr.Event.StreamPos)
						return
					}
					positions[w] = append(positions[w], wr.Event.StreamPos)
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	var all []int64
	for w, ps := range positions {
		for i := 1; i < len(ps); i++ {
			if ps[i] <= ps[i-1] {
				t.Fatalf("writer %d: position %d after %d", w, ps[i], ps[i-1])
			}
		}
		all = append(all, ps...)
	}
	slices.Sort(all)
	eq(t, "positions", len(all), writers*batches*perBatch)
	for i, p := range all {
		if p != base+1+int64(i) {
			t.Fatalf("positions are not distinct and gap-free from %d: %d at index %d", base+1, p, i)
		}
	}
	pos, err := s.MaxStreamPos(c)
	must(t, err)
	eq(t, "MaxStreamPos", pos, base+writers*batches*perBatch)
	for w := range writers {
		room := id.RoomID(fmt.Sprintf("!room%d:example.org", w))
		evs, err := s.RoomEvents(c, room, 0, 0, false, 1000)
		must(t, err)
		got := make([]int64, len(evs))
		for i, e := range evs {
			got[i] = e.StreamPos
		}
		eqList(t, "positions of the events of "+string(room), got, positions[w])
		x, err := s.GetForwardExtremities(c, room)
		must(t, err)
		eqList(t, "extremities of "+string(room), x, []id.EventID{evs[len(evs)-1].EventID})
		members, err := s.RoomMembers(c, room, []string{"join"})
		must(t, err)
		eq(t, "members of "+string(room), len(members), perBatch)
	}
}
