package sync

import (
	"testing"
	"time"

	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/core/rooms"
	"github.com/tributary-hs/tributary/core/stream"
	"github.com/tributary-hs/tributary/core/types"
)

func TestRequiredStateMatch(t *testing.T) {
	me := id.UserID("@me:x")
	k := func(typ, key string) rooms.StateKey { return rooms.StateKey{Type: typ, StateKey: key} }
	cases := []struct {
		pairs [][]string
		yes   []rooms.StateKey
		no    []rooms.StateKey
		lazy  bool
	}{
		{pairs: [][]string{{"m.room.name", ""}, {"m.room.member", "$ME"}},
			yes: []rooms.StateKey{k("m.room.name", ""), k("m.room.member", "@me:x")},
			no:  []rooms.StateKey{k("m.room.member", "@you:x"), k("m.room.topic", ""), k("m.room.name", "x")}},
		{pairs: [][]string{{"m.space.child", "*"}},
			yes: []rooms.StateKey{k("m.space.child", "!a:x"), k("m.space.child", "")},
			no:  []rooms.StateKey{k("m.space.parent", "!a:x")}},
		{pairs: [][]string{{"*", ""}},
			yes: []rooms.StateKey{k("m.room.name", ""), k("org.custom", "")},
			no:  []rooms.StateKey{k("m.room.member", "@me:x")}},
		{pairs: [][]string{{"*", "*"}}, yes: []rooms.StateKey{k("a", "b"), k("m.room.member", "@you:x")}},
		{pairs: [][]string{{"m.room.member", "$LAZY"}}, lazy: true, no: []rooms.StateKey{k("m.room.member", "@me:x")}},
	}
	for _, c := range cases {
		r := newRequiredState(c.pairs, me)
		for _, key := range c.yes {
			if !r.match(key) {
				t.Errorf("%v does not match %v", c.pairs, key)
			}
		}
		for _, key := range c.no {
			if r.match(key) {
				t.Errorf("%v matches %v", c.pairs, key)
			}
		}
		if r.lazy != c.lazy {
			t.Errorf("%v: lazy %v", c.pairs, r.lazy)
		}
	}
	a := newRequiredState([][]string{{"m.room.name", ""}, {"m.room.member", "$ME"}}, me)
	b := newRequiredState([][]string{{"m.room.member", "@me:x"}, {"m.room.name", ""}}, me)
	if a.key() != b.key() {
		t.Errorf("$ME and the user's ID differ: %q %q", a.key(), b.key())
	}
	m := a.merge(newRequiredState([][]string{{"m.room.member", "$LAZY"}, {"m.room.topic", ""}}, me))
	if !m.lazy || !m.match(k("m.room.topic", "")) || !m.match(k("m.room.name", "")) || m.key() == a.key() {
		t.Errorf("merge: %+v", m)
	}
}

func TestPos(t *testing.T) {
	var p stream.Positions
	p[stream.Events], p[stream.ToDevice] = 42, 7
	pos := formatPos(3, p)
	conn, got, err := parsePos(pos)
	if err != nil || conn != 3 || got != p {
		t.Fatalf("round trip of %q: %d %v %v", pos, conn, got, err)
	}
	for _, bad := range []string{"", "s1_2", "ss", "ssx_s1", "ss-1_s1", "ss1", "ss1_", "ss1_sx", "ss1_s1_2_3_4_5_6_7_8_9"} {
		_, _, err := parsePos(bad)
		if me, ok := types.AsError(err); !ok || me.Code != CodeUnknownPos || me.Status != 400 {
			t.Errorf("parsePos(%q) = %v", bad, err)
		}
	}
}

func TestConnStore(t *testing.T) {
	cs := &connStore{conns: map[connKey]*slidingConn{}}
	now := time.Now()
	key := connKey{user: "@a:x", device: "D", conn: "c"}
	if _, ok := cs.load(key, 1, now); ok {
		t.Fatal("unknown position loaded")
	}
	if st, ok := cs.load(key, 0, now); !ok || len(st.rooms) != 0 {
		t.Fatal("position 0 is an empty state")
	}
	s1 := newConnState()
	s1.rooms["!r:x"] = haveSent{}
	p1 := cs.save(key, s1, now)
	p2 := cs.save(key, newConnState(), now)
	if p1 == p2 {
		t.Fatal("same position twice")
	}
	// Using p1 drops p2 (the client never received it).
	if st, ok := cs.load(key, p1, now); !ok || len(st.rooms) != 1 {
		t.Fatal("p1 lost")
	}
	if _, ok := cs.load(key, p2, now); ok {
		t.Fatal("p2 kept after p1 was used")
	}
	// A new connection with the same key forgets the old one.
	cs.start(key)
	if _, ok := cs.load(key, p1, now); ok {
		t.Fatal("restarted connection kept its state")
	}
	// Per-user bound: the least recently used connection goes.
	for i := range slidingMaxConnsPerUser + 1 {
		cs.save(connKey{user: "@b:x", conn: string(rune('a' + i))}, newConnState(), now.Add(time.Duration(i)*time.Second))
	}
	n := 0
	for k := range cs.conns {
		if k.user == "@b:x" {
			n++
		}
	}
	if n != slidingMaxConnsPerUser {
		t.Fatalf("%d connections of one user kept", n)
	}
	if _, ok := cs.conns[connKey{user: "@b:x", conn: "a"}]; ok {
		t.Fatal("the oldest connection was kept")
	}
	// Idle connections expire.
	cs.save(connKey{user: "@c:x"}, newConnState(), now.Add(slidingConnIdle+time.Hour))
	if _, ok := cs.conns[key]; ok {
		t.Fatal("idle connection kept")
	}
}

func TestValidate(t *testing.T) {
	yes := true
	for _, b := range []SlidingBody{
		{Lists: map[string]*SlidingList{"l": {Ranges: [][]int64{{2, 1}}}}},
		{Lists: map[string]*SlidingList{"l": {Ranges: [][]int64{{-1, 1}}}}},
		{Lists: map[string]*SlidingList{"l": {Ranges: [][]int64{{1}}}}},
		{Lists: map[string]*SlidingList{"l": nil}},
		{Lists: map[string]*SlidingList{"l": {SlidingRoomConfig: SlidingRoomConfig{TimelineLimit: -1}}}},
		{RoomSubscriptions: map[id.RoomID]*SlidingRoomConfig{"!r:x": {RequiredState: [][]string{{"a"}}}}},
		{Extensions: SlidingExtensions{ToDevice: &SlidingToDeviceExt{Enabled: &yes, Since: "x"}}},
	} {
		if me, ok := types.AsError(b.Validate()); !ok || me.Code != types.CodeInvalidParam {
			t.Errorf("%+v: %v", b, b.Validate())
		}
	}
	ok := SlidingBody{Lists: map[string]*SlidingList{"l": {Ranges: [][]int64{{0, 0}, {3, 9}}}}}
	if err := ok.Validate(); err != nil {
		t.Error(err)
	}
}
