package storagetest

import (
	"fmt"
	"slices"
	"testing"

	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/storage"
)

// testRoomsManyAtOnce: the reads /sync makes for all of an account's rooms
// in one statement answer as their one-room forms do.
func testRoomsManyAtOnce(t *testing.T, s storage.Store) {
	c := ctx(t)
	const local, remote id.RoomID = "!local:example.org", "!mixed:example.org"
	const empty id.RoomID = "!empty:example.org"
	for _, r := range []id.RoomID{local, remote, empty} {
		must(t, s.CreateRoomRecord(c, &storage.Room{RoomID: r, RoomVersion: "11", Creator: alice, CreatedAt: 1}))
	}
	join := func(room id.RoomID, user id.UserID, membership string) {
		t.Helper()
		e := memberEv(room, id.EventID("$"+string(room)+string(user)+membership), user, membership)
		must(t, s.PersistEvents(c, []*storage.EventWrite{{Event: e,
			CurrentState: []storage.StateEntry{{Type: "m.room.member", StateKey: string(user), EventID: e.EventID}}}}))
	}
	join(local, alice, "join")
	join(remote, alice, "join")
	join(remote, "@rob:remote.example", "join")
	// A server name that only ends like ours is another server.
	join(local, "@eve:badexample.org", "leave")
	join(empty, "@rita:remote.example", "leave")

	rooms, err := s.GetRooms(c, []id.RoomID{local, remote, "!nowhere:example.org"})
	must(t, err)
	var got []id.RoomID
	for _, r := range rooms {
		got = append(got, r.RoomID)
		eq(t, "version", r.RoomVersion, "11")
	}
	slices.Sort(got)
	eq(t, "rooms", slices.Equal(got, []id.RoomID{local, remote}), true)

	withRemote, err := s.RemoteJoinedRooms(c, []id.RoomID{local, remote, empty}, "example.org")
	must(t, err)
	eq(t, "rooms with remote members", slices.Equal(withRemote, []id.RoomID{remote}), true)
	join(local, "@eve:badexample.org", "join")
	withRemote, err = s.RemoteJoinedRooms(c, []id.RoomID{local}, "example.org")
	must(t, err)
	eq(t, "a server ending like ours", slices.Equal(withRemote, []id.RoomID{local}), true)

	persist(t, s, relEv(remote, "$thread1", "m.room.message", "m.thread", "$root"),
		ev(remote, "$plain", "m.room.message"), relEv(remote, "$edit", "m.room.message", "m.replace", "$thread1"))
	spans, err := s.RelationSpans(c, []id.RoomID{local, remote})
	must(t, err)
	low, high, ok, err := s.RelationSpan(c, remote)
	must(t, err)
	eq(t, "one-room span", ok, true)
	eq(t, "spans", len(spans), 1)
	eq(t, "span", spans[remote], [2]int64{low, high})
	eq(t, "span ends", low < high, true)

	// Summaries: joined and invited members counted, the first five
	// others by user ID as heroes; no member, no heroes.
	for _, u := range []id.UserID{"@h1:example.org", "@h2:example.org", "@h3:example.org", "@h4:example.org"} {
		join(remote, u, "join")
	}
	join(remote, "@h0:example.org", "invite")
	join(remote, "@h9:example.org", "leave")
	sums, err := s.RoomSummaries(c, []id.RoomID{remote, empty}, "@h2:example.org")
	must(t, err)
	r := sums[remote]
	eq(t, "joined", r.Joined, 6)
	eq(t, "invited", r.Invited, 1)
	eq(t, "heroes", slices.Equal(r.Heroes, []id.UserID{alice, "@h0:example.org", "@h1:example.org", "@h3:example.org", "@h4:example.org"}), true)
	e := sums[empty]
	eq(t, "empty room", e != nil && e.Joined == 0 && e.Invited == 0 && len(e.Heroes) == 0, true)
}

// testTimelinesManyAtOnce: LatestRoomEvents answers, room by room, as
// RoomEvents backwards does: accepted events only (not rejected,
// soft-failed or outliers), history batches (below 0) included, the
// bounds exclusive, newest first, limit a room.
func testTimelinesManyAtOnce(t *testing.T, s storage.Store) {
	c := ctx(t)
	const busy, quiet, none id.RoomID = "!busy:example.org", "!quiet:example.org", "!none:example.org"
	for i := range 12 {
		persist(t, s, ev(busy, id.EventID(fmt.Sprintf("$b%d", i)), "m.room.message"))
		if i%4 == 0 {
			persist(t, s, ev(quiet, id.EventID(fmt.Sprintf("$q%d", i)), "m.room.message"))
		}
	}
	bad := []*storage.Event{ev(busy, "$rejected", "m.room.message"), ev(busy, "$soft", "m.room.message"), ev(busy, "$outlier", "m.room.message")}
	bad[0].Rejected, bad[1].SoftFailed, bad[2].Outlier = true, true, true
	persist(t, s, bad...)
	must(t, s.PersistEvents(c, []*storage.EventWrite{{Event: ev(quiet, "$history", "m.room.message"), History: true}}))
	persist(t, s, ev(busy, "$last", "m.room.message"))
	max, err := s.MaxStreamPos(c)
	must(t, err)
	mid, err := s.GetEvent(c, "$b6")
	must(t, err)
	ids := func(evs []*storage.Event) []id.EventID {
		var out []id.EventID
		for _, e := range evs {
			out = append(out, e.EventID)
		}
		return out
	}
	for _, limit := range []int{1, 4, 11, 50} {
		spans := []storage.RoomSpan{{RoomID: busy, Before: max + 1}, {RoomID: quiet, Before: max + 1},
			{RoomID: none, Before: max + 1}}
		if limit == 4 { // bounded both ways
			spans[0] = storage.RoomSpan{RoomID: busy, After: mid.StreamPos - 3, Before: mid.StreamPos}
		}
		got, err := s.LatestRoomEvents(c, spans, limit)
		must(t, err)
		for _, sp := range spans {
			want, err := s.RoomEvents(c, sp.RoomID, sp.Before, sp.After, true, limit)
			must(t, err)
			eqList(t, fmt.Sprintf("%s, limit %d", sp.RoomID, limit), ids(got[sp.RoomID]), ids(want))
			for i, e := range got[sp.RoomID] {
				eq(t, "event", eventString(e), eventString(want[i]))
			}
		}
		eq(t, "rooms with events", len(got), 2)
	}
	all, err := s.LatestRoomEvents(c, []storage.RoomSpan{{RoomID: quiet, Before: max + 1}}, 50)
	must(t, err)
	eqList(t, "history included", ids(all[quiet]), []id.EventID{"$q8", "$q4", "$q0", "$history"})
}

// testStateEventsManyAtOnce: StateEventsIn answers, room by room, as
// StateEventsBetween does: accepted state events only (not messages,
// rejected, soft-failed or outliers), the bounds exclusive, oldest first.
func testStateEventsManyAtOnce(t *testing.T, s storage.Store) {
	c := ctx(t)
	const busy, quiet, none id.RoomID = "!sbusy:example.org", "!squiet:example.org", "!snone:example.org"
	for i := range 12 {
		persist(t, s, stateEv(busy, id.EventID(fmt.Sprintf("$sb%d", i)), "m.room.topic", ""),
			ev(busy, id.EventID(fmt.Sprintf("$mb%d", i)), "m.room.message"))
		if i%4 == 0 {
			persist(t, s, stateEv(quiet, id.EventID(fmt.Sprintf("$sq%d", i)), "m.room.member", fmt.Sprintf("@u%d:x", i)))
		}
	}
	bad := []*storage.Event{stateEv(busy, "$srejected", "m.room.name", ""), stateEv(busy, "$ssoft", "m.room.name", ""),
		stateEv(busy, "$soutlier", "m.room.name", "")}
	bad[0].Rejected, bad[1].SoftFailed, bad[2].Outlier = true, true, true
	persist(t, s, bad...)
	persist(t, s, stateEv(busy, "$slast", "m.room.name", ""))
	max, err := s.MaxStreamPos(c)
	must(t, err)
	mid, err := s.GetEvent(c, "$sb6")
	must(t, err)
	first, err := s.GetEvent(c, "$sb0")
	must(t, err)
	ids := func(evs []*storage.Event) []id.EventID {
		var out []id.EventID
		for _, e := range evs {
			out = append(out, e.EventID)
		}
		return out
	}
	for _, spans := range [][]storage.RoomSpan{
		{{RoomID: busy, After: first.StreamPos - 1, Before: max + 1}, {RoomID: quiet, After: first.StreamPos - 1, Before: max + 1},
			{RoomID: none, After: 1, Before: max + 1}},
		{{RoomID: busy, After: mid.StreamPos - 3, Before: mid.StreamPos}, {RoomID: quiet, After: mid.StreamPos, Before: max + 1}},
	} {
		got, err := s.StateEventsIn(c, spans)
		must(t, err)
		for _, sp := range spans {
			want, err := s.StateEventsBetween(c, sp.RoomID, sp.After, sp.Before)
			must(t, err)
			eqList(t, fmt.Sprintf("%s in (%d, %d)", sp.RoomID, sp.After, sp.Before), ids(got[sp.RoomID]), ids(want))
			for i, e := range got[sp.RoomID] {
				eq(t, "event", eventString(e), eventString(want[i]))
			}
		}
		if _, ok := got[none]; ok {
			t.Errorf("a room without events is in the answer")
		}
	}
}

// testStatesManyAtOnce: StatesAt and StateEntriesAt answer, group by
// group, as StateAt and StateEntryAt do: along delta chains that cross a
// snapshot, with a delta that unsets a key, for a group that does not
// exist.
func testStatesManyAtOnce(t *testing.T, s storage.Store) {
	c := ctx(t)
	lasts, err := FillRooms(c, s, "example.org", "st", 3, 70)
	must(t, err)
	// A delta on the last group of room 0 that unsets u5's membership.
	unset, err := s.ReserveStateGroupIDs(c, 1)
	must(t, err)
	e := ev("!st0:example.org", "$unset", "m.room.message")
	e.StateGroup = unset
	must(t, s.PersistEvents(c, []*storage.EventWrite{{Event: e, NewGroup: &storage.StateGroup{GroupID: unset,
		RoomID: "!st0:example.org", PrevGroup: lasts[0], ChainLen: 7,
		Entries: []storage.StateEntry{{Type: "m.room.member", StateKey: string(fillUser(5, "example.org"))}}}}}))
	groups := []int64{lasts[0], lasts[1], lasts[2], lasts[1] - 3, lasts[2] - 20, lasts[2] - 69, unset, 999_999_999}
	states, err := s.StatesAt(c, groups)
	must(t, err)
	for _, g := range groups {
		want, err := s.StateAt(c, g)
		must(t, err)
		eqState(t, fmt.Sprintf("state of %d", g), states[g], want)
	}
	eq(t, "members of the last group", len(states[lasts[1]]), 71)
	eq(t, "the unset key", len(states[unset]), 70)
	for _, key := range [][2]string{{"m.room.create", ""}, {"m.room.member", string(fillUser(5, "example.org"))},
		{"m.room.member", string(fillUser(68, "example.org"))}, {"m.room.topic", ""}} {
		got, err := s.StateEntriesAt(c, groups, key[0], key[1])
		must(t, err)
		for _, g := range groups {
			want, err := s.StateEntryAt(c, g, key[0], key[1])
			must(t, err)
			have, ok := got[g]
			eq(t, fmt.Sprintf("%v in %d", key, g), have, want)
			eq(t, fmt.Sprintf("%v in %d listed", key, g), ok, want != "")
		}
	}
}
