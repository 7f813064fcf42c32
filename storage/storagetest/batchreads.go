package storagetest

import (
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
