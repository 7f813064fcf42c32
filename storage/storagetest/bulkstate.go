package storagetest

import (
	"fmt"
	"slices"
	"testing"

	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/storage"
)

// testStateBulkWrites: the state of a big room is written in multi-row
// statements, several per table for one batch (thousands of snapshot entries
// and current state rows). It must read back exactly as one statement per
// row left it: every entry, removals in deltas kept, each current state key
// holding the last value the batch gave it with its event's membership, a
// key the batch removes gone.
func testStateBulkWrites(t *testing.T, s storage.Store) {
	const members = 5000
	c := ctx(t)
	g, err := s.ReserveStateGroupIDs(c, 2)
	must(t, err)
	snapGroup, deltaGroup := g, g+1
	user := func(i int) id.UserID { return id.UserID(fmt.Sprintf("@u%05d:example.org", i)) }
	member := "m.room.member"

	// The expected current state, the writes applied in order, and each
	// event's membership.
	type key struct {
		room          id.RoomID
		typ, stateKey string
	}
	current := map[key]id.EventID{}
	membership := map[id.EventID]string{}
	var writes []*storage.EventWrite
	add := func(e *storage.Event, cs ...storage.StateEntry) *storage.EventWrite {
		w := &storage.EventWrite{Event: e, CurrentState: cs}
		writes = append(writes, w)
		membership[e.EventID] = e.Membership
		for _, x := range cs {
			if x.EventID == "" {
				delete(current, key{e.RoomID, x.Type, x.StateKey})
				continue
			}
			current[key{e.RoomID, x.Type, x.StateKey}] = x.EventID
		}
		return w
	}
	self := func(e *storage.Event) storage.StateEntry {
		return storage.StateEntry{Type: e.Type, StateKey: *e.StateKey, EventID: e.EventID}
	}
	state := func(room id.RoomID) []storage.StateEntry {
		var out []storage.StateEntry
		for k, v := range current {
			if k.room == room {
				out = append(out, storage.StateEntry{Type: k.typ, StateKey: k.stateKey, EventID: v})
			}
		}
		return out
	}
	check := func(when string) {
		t.Helper()
		for _, room := range []id.RoomID{roomA, roomB} {
			cs, err := s.CurrentState(c, room)
			must(t, err)
			eqState(t, "current state of "+string(room)+" "+when, cs, state(room))
			var want []storage.CurrentMember
			for _, e := range sortedState(state(room)) {
				if e.Type == member {
					want = append(want, storage.CurrentMember{RoomID: room, UserID: id.UserID(e.StateKey), EventID: e.EventID,
						Membership: membership[e.EventID]})
				}
			}
			got, err := s.RoomMembers(c, room, nil)
			must(t, err)
			eqList(t, "members of "+string(room)+" "+when, got, want)
			got, err = s.RoomMembers(c, room, []string{"invite"})
			must(t, err)
			eqList(t, "invited members of "+string(room)+" "+when, got,
				slices.DeleteFunc(want, func(m storage.CurrentMember) bool { return m.Membership != "invite" }))
		}
	}

	// One batch: the room is created, 5,000 users join (every fifth is
	// invited, and the first few of those join later in the same batch: a
	// key set twice in a batch), another room shares state keys, and the
	// last event makes a snapshot of the whole state.
	create := stateEv(roomA, "$create", "m.room.create", "")
	add(create, self(create))
	for i := range members {
		e := memberEv(roomA, id.EventID(fmt.Sprintf("$m%d", i)), user(i), "join")
		if i%5 == 0 {
			e.Membership = "invite"
		}
		add(e, self(e))
	}
	for i := 0; i < 500; i += 5 {
		e := memberEv(roomA, id.EventID(fmt.Sprintf("$j%d", i)), user(i), "join")
		add(e, self(e))
	}
	otherCreate := stateEv(roomB, "$create-b", "m.room.create", "")
	add(otherCreate, self(otherCreate))
	otherInvite := memberEv(roomB, "$invite-b", user(1), "invite")
	add(otherInvite, self(otherInvite))
	topic := stateEv(roomA, "$topic", "m.room.topic", "")
	snapshot := &storage.StateGroup{GroupID: snapGroup, RoomID: roomA}
	add(topic, self(topic)).NewGroup = snapshot
	snapshot.Entries = state(roomA)
	for _, w := range writes {
		if w.Event.RoomID == roomA {
			w.Event.StateGroup = snapGroup
		}
	}
	must(t, s.PersistEvents(c, writes))

	got, err := s.GetStateGroup(c, snapGroup)
	must(t, err)
	eq(t, "entries of the snapshot", len(got.Entries), members+2)
	eqState(t, "snapshot", got.Entries, snapshot.Entries)
	at, err := s.StateAt(c, snapGroup)
	must(t, err)
	eqState(t, "state at the snapshot", at, snapshot.Entries)
	check("after the first batch")

	// A second batch: half of the users leave, one at a time; the last
	// event's delta records those leaves and removes other keys (EventID
	// ""), and it resets current state keys to earlier events, as state
	// resolution does (they take those events' memberships).
	writes = nil
	var delta []storage.StateEntry
	for i := 0; i < members; i += 2 {
		e := memberEv(roomA, id.EventID(fmt.Sprintf("$l%d", i)), user(i), "leave")
		e.StateGroup = deltaGroup
		delta = append(delta, add(e, self(e)).CurrentState...)
	}
	for i := 1; i < members; i += 6 {
		delta = append(delta, storage.StateEntry{Type: member, StateKey: string(user(i))})
	}
	delta = append(delta, storage.StateEntry{Type: "m.room.topic"})
	var reset []storage.StateEntry
	for i := 0; i < members; i += 10 {
		reset = append(reset, storage.StateEntry{Type: member, StateKey: string(user(i)), EventID: id.EventID(fmt.Sprintf("$m%d", i))})
	}
	power := stateEv(roomA, "$power", "m.room.power_levels", "")
	power.StateGroup = deltaGroup
	delta = append(delta, self(power))
	// The topic leaves the current state too (resolution left no
	// candidate for it: an entry without an event).
	add(power, append([]storage.StateEntry{self(power), {Type: "m.room.topic"}}, reset...)...).NewGroup = &storage.StateGroup{
		GroupID: deltaGroup, RoomID: roomA, PrevGroup: snapGroup, ChainLen: 1, Entries: delta}
	must(t, s.PersistEvents(c, writes))

	got, err = s.GetStateGroup(c, deltaGroup)
	must(t, err)
	eq(t, "PrevGroup of the delta", got.PrevGroup, snapGroup)
	eqState(t, "delta, removals included", got.Entries, delta)
	merged := map[[2]string]id.EventID{}
	for _, e := range slices.Concat(snapshot.Entries, delta) {
		merged[[2]string{e.Type, e.StateKey}] = e.EventID
	}
	var want []storage.StateEntry
	for k, v := range merged {
		if v != "" {
			want = append(want, storage.StateEntry{Type: k[0], StateKey: k[1], EventID: v})
		}
	}
	at, err = s.StateAt(c, deltaGroup)
	must(t, err)
	eqState(t, "state at the delta", at, want)
	check("after the second batch")
}

// testStateLongChains: state at every group of delta chains of every length
// up to 70 (core/rooms makes a snapshot every 64 state events; state from
// federation may chain further), whose deltas set, reset and remove keys,
// read whole and key by key, as the merge of the chain computed here.
func testStateLongChains(t *testing.T, s storage.Store) {
	c := ctx(t)
	const steps = 70
	g, err := s.ReserveStateGroupIDs(c, steps+1)
	must(t, err)
	key := func(i int) storage.StateEntry {
		return storage.StateEntry{Type: "m.room.member", StateKey: fmt.Sprintf("@k%d:example.org", i%7)}
	}
	snapshot := &storage.StateGroup{GroupID: g, RoomID: roomA}
	for i := range 7 {
		e := key(i)
		e.EventID = id.EventID(fmt.Sprintf("$snap%d", i))
		snapshot.Entries = append(snapshot.Entries, e)
	}
	snapshot.Entries = append(snapshot.Entries, storage.StateEntry{Type: "m.room.create", EventID: "$create"})
	groups := []*storage.StateGroup{snapshot}
	for i := 1; i <= steps; i++ {
		e := key(i)
		switch {
		case i%5 == 0: // removed (and set again by a later step)
		case i%11 == 0: // back to the snapshot's event
			e.EventID = id.EventID(fmt.Sprintf("$snap%d", i%7))
		default:
			e.EventID = id.EventID(fmt.Sprintf("$step%d", i))
		}
		groups = append(groups, &storage.StateGroup{GroupID: g + int64(i), RoomID: roomA, PrevGroup: g + int64(i) - 1,
			ChainLen: int64(i), Entries: []storage.StateEntry{e}})
	}
	var writes []*storage.EventWrite
	for i, grp := range groups {
		e := stateEv(roomA, id.EventID(fmt.Sprintf("$group%d", i)), "m.room.topic", fmt.Sprint(i))
		e.StateGroup = grp.GroupID
		writes = append(writes, &storage.EventWrite{Event: e, NewGroup: grp})
	}
	must(t, s.PersistEvents(c, writes))

	merged := map[[2]string]id.EventID{}
	for i, grp := range groups {
		for _, e := range grp.Entries {
			merged[[2]string{e.Type, e.StateKey}] = e.EventID
		}
		var want []storage.StateEntry
		for k, v := range merged {
			if v != "" {
				want = append(want, storage.StateEntry{Type: k[0], StateKey: k[1], EventID: v})
			}
		}
		got, err := s.StateAt(c, grp.GroupID)
		must(t, err)
		eqState(t, fmt.Sprintf("StateAt(group %d of the chain)", i), got, want)
		for k := range 8 {
			e := key(k)
			if k == 7 {
				e = storage.StateEntry{Type: "m.room.create"}
			}
			got, err := s.StateEntryAt(c, grp.GroupID, e.Type, e.StateKey)
			must(t, err)
			eq(t, fmt.Sprintf("StateEntryAt(group %d of the chain, %s)", i, e.StateKey), got, merged[[2]string{e.Type, e.StateKey}])
		}
	}
}
