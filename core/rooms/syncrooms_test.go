package rooms

import (
	"context"
	"encoding/json/v2"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/storage"
)

// SyncRooms reads many rooms together and answers for each as a sync of
// that room alone does: initial and incremental, with history a member may
// not see (more pages read), state changes inside the timeline, lazy-loaded
// members, and rooms with nothing new.
func TestSyncRoomsAnswerAsOneByOne(t *testing.T) {
	ctx := context.Background()
	// A stopped clock: unsigned.age is the same however long apart the
	// two reads are.
	now := time.UnixMilli(1_800_000_000_000)
	s, store := newTestRoomsWith(t, Options{Now: func() time.Time { return now }})
	alice, bob := id.UserID("@alice:example.org"), id.UserID("@bob:example.org")
	send := func(room id.RoomID, sender id.UserID, evType string, stateKey *string, content string) {
		t.Helper()
		if _, err := s.Send(ctx, &SendRequest{RoomID: room, Sender: sender, DeviceID: "DEV", Type: evType, StateKey: stateKey,
			Content: []byte(content), TxnID: fmt.Sprint(evType, content)}); err != nil {
			t.Fatal(err)
		}
	}
	join := func(room id.RoomID) {
		t.Helper()
		if _, err := s.ChangeMembership(ctx, &MembershipRequest{RoomID: room, Sender: alice, Target: bob, Membership: "invite"}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.ChangeMembership(ctx, &MembershipRequest{RoomID: room, Sender: bob, Target: bob, Membership: "join"}); err != nil {
			t.Fatal(err)
		}
	}
	empty := ""
	var rooms []id.RoomID
	for i := range 4 {
		room, err := s.CreateRoom(ctx, &CreateRequest{Creator: alice, Preset: "private_chat"})
		if err != nil {
			t.Fatal(err)
		}
		rooms = append(rooms, room)
		if i == 1 { // bob sees nothing from before he joined
			send(room, alice, "m.room.history_visibility", &empty, `{"history_visibility":"joined"}`)
		}
		for m := range 14 {
			send(room, alice, "m.room.message", nil, fmt.Sprintf(`{"msgtype":"m.text","body":"before %d"}`, m))
		}
		join(room)
		send(room, alice, "m.room.topic", &empty, `{"topic":"after bob"}`)
		send(room, bob, "m.room.message", nil, `{"msgtype":"m.text","body":"bob's"}`)
	}
	since, err := store.MaxStreamPos(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, room := range rooms[:2] { // rooms 2 and 3 have nothing new after since
		send(room, alice, "m.room.name", &empty, `{"name":"later"}`)
		for m := range 12 {
			send(room, bob, "m.room.message", nil, fmt.Sprintf(`{"msgtype":"m.text","body":"after %d"}`, m))
		}
	}
	upto, err := store.MaxStreamPos(ctx)
	if err != nil {
		t.Fatal(err)
	}
	memberships, err := s.UserMemberships(ctx, bob)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name  string
		since int64
		lazy  bool
		after bool
		limit int
	}{{"initial", 0, false, false, 10}, {"initial, long", 0, false, false, 40}, {"initial, lazy members", 0, true, false, 5}, {"initial, state after", 0, false, true, 10},
		{"incremental", since, false, false, 10}, {"incremental, state after", since, false, true, 30}} {
		t.Run(c.name, func(t *testing.T) {
			var reqs []*SyncRoomRequest
			for _, m := range memberships {
				reqs = append(reqs, &SyncRoomRequest{User: bob, Device: "DEV", RoomID: m.RoomID, Since: c.since, Upto: upto,
					MembershipPos: m.Pos, Membership: m.Membership, MembershipEvent: m.EventID, TimelineLimit: c.limit,
					LazyMembers: c.lazy, StateAfter: c.after})
			}
			if len(reqs) != 4 {
				t.Fatalf("bob is in %d rooms", len(reqs))
			}
			together, err := s.SyncRooms(ctx, reqs)
			if err != nil {
				t.Fatal(err)
			}
			for i, req := range reqs {
				alone, err := s.SyncRoom(ctx, req)
				if err != nil {
					t.Fatal(err)
				}
				a, _ := json.Marshal(alone, json.Deterministic(true))
				b, _ := json.Marshal(together[i], json.Deterministic(true))
				if string(a) != string(b) {
					t.Errorf("room %d read together:\n%s\nalone:\n%s", i, b, a)
				}
				// The state changes of rooms read together are those
				// StateEventsBetween gives for the room alone.
				if got := together[i]; c.since > 0 && !got.Empty && (got.Limited || c.after) {
					end := upto + 1
					if !c.after && len(got.Timeline) > 0 {
						end = got.Timeline[0].pos
					}
					evs, err := store.StateEventsBetween(ctx, req.RoomID, c.since, end)
					if err != nil {
						t.Fatal(err)
					}
					var want, have []id.EventID
					for _, e := range latestOfEachKey(evs) {
						want = append(want, e.EventID)
					}
					for _, e := range got.State {
						have = append(have, e.EventID)
					}
					if !slices.Equal(have, want) || len(want) == 0 {
						t.Errorf("room %d: state changes %v, want %v", i, have, want)
					}
				}
				n := slices.Index(rooms, req.RoomID)
				if c.since > 0 && n >= 2 != together[i].Empty {
					t.Errorf("room %d: empty %v", n, together[i].Empty)
				}
				// The messages from before bob joined a room of "joined"
				// history are hidden: read (a page and more) and left out;
				// the room's first events, "shared" then, are shown.
				if n == 1 && c.limit == 40 {
					msgs := 0
					for _, e := range together[i].Timeline {
						if e.Type == "m.room.message" {
							msgs++
							if strings.Contains(string(e.Content), "before") {
								t.Errorf("bob sees %s", e.Content)
							}
						}
					}
					if msgs != 13 {
						t.Errorf("bob sees %d messages in room 1, want his 13", msgs)
					}
				}
			}
		})
	}
}

// countingStore counts the reads a warm first sync should not repeat.
type countingStore struct {
	storage.Store
	txns, states, summaries atomic.Int64
}

func (c *countingStore) RoomSummaries(ctx context.Context, rooms []id.RoomID, user id.UserID) (map[id.RoomID]*storage.RoomSummary, error) {
	c.summaries.Add(1)
	return c.Store.RoomSummaries(ctx, rooms, user)
}

func (c *countingStore) TxnsOf(ctx context.Context, positions []int64) (map[id.EventID]storage.EventTxn, error) {
	c.txns.Add(1)
	return c.Store.TxnsOf(ctx, positions)
}

func (c *countingStore) TxnIDsOf(ctx context.Context, user id.UserID, device id.DeviceID, positions []int64) (map[id.EventID]string, error) {
	c.txns.Add(1)
	return c.Store.TxnIDsOf(ctx, user, device, positions)
}

func (c *countingStore) StatesAt(ctx context.Context, groups []int64) (map[int64][]storage.StateEntry, error) {
	c.states.Add(1)
	return c.Store.StatesAt(ctx, groups)
}

// A repeated first sync takes the events' transaction IDs and the states
// before the timelines from the Reader's caches, and answers exactly as a
// Reader that reads everything from storage.
func TestWarmFirstSyncAnswersAsCold(t *testing.T) {
	ctx := context.Background()
	now := time.UnixMilli(1_800_000_000_000)
	opts := Options{Now: func() time.Time { return now }}
	s, store := newTestRoomsWith(t, opts)
	alice := id.UserID("@alice:example.org")
	empty := ""
	for i := range 3 {
		room, err := s.CreateRoom(ctx, &CreateRequest{Creator: alice, Preset: "private_chat"})
		if err != nil {
			t.Fatal(err)
		}
		for m := range 5 {
			dev := id.DeviceID("DEV")
			if m%2 == 1 {
				dev = "OTHER"
			}
			var sk *string
			typ := "m.room.message"
			if m == 3 {
				sk, typ = &empty, "m.room.topic" // a state event sent with a transaction
			}
			if _, err := s.Send(ctx, &SendRequest{RoomID: room, Sender: alice, DeviceID: dev, Type: typ, StateKey: sk,
				Content: []byte(fmt.Sprintf(`{"body":"%d/%d","topic":"t%d"}`, i, m, m)), TxnID: fmt.Sprint("t", i, m)}); err != nil {
				t.Fatal(err)
			}
		}
	}
	upto, err := store.MaxStreamPos(ctx)
	if err != nil {
		t.Fatal(err)
	}
	counted := &countingStore{Store: store}
	opts.ServerName = "example.org"
	warm, err := NewReader(counted, opts)
	if err != nil {
		t.Fatal(err)
	}
	memberships, err := s.UserMemberships(ctx, alice)
	if err != nil {
		t.Fatal(err)
	}
	sync := func(r *Reader, limit int) string {
		t.Helper()
		var reqs []*SyncRoomRequest
		for _, m := range memberships {
			reqs = append(reqs, &SyncRoomRequest{User: alice, Device: "DEV", RoomID: m.RoomID, Upto: upto,
				MembershipPos: m.Pos, Membership: m.Membership, MembershipEvent: m.EventID, TimelineLimit: limit})
		}
		out, err := r.SyncRooms(ctx, reqs)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := json.Marshal(out, json.Deterministic(true))
		return string(raw)
	}
	for _, limit := range []int{3, 10} {
		first := sync(warm, limit)
		txns, states := counted.txns.Load(), counted.states.Load()
		again := sync(warm, limit)
		if n := counted.txns.Load() - txns; n != 0 {
			t.Errorf("limit %d: the warm sync read transaction IDs %d times", limit, n)
		}
		if n := counted.states.Load() - states; n != 0 {
			t.Errorf("limit %d: the warm sync read states %d times", limit, n)
		}
		cold, err := NewReader(store, opts)
		if err != nil {
			t.Fatal(err)
		}
		want := sync(cold, limit)
		if first != want || again != want {
			t.Errorf("limit %d: warm answers\n%s\n%s\ncold\n%s", limit, first, again, want)
		}
		if !strings.Contains(want, `"transaction_id"`) {
			t.Errorf("limit %d: no transaction IDs in %s", limit, want)
		}
	}
}

// The state after the timeline (use_state_after), and the state of a
// first sync whose filter leaves no timeline, are read for all the rooms
// together: the state after each room's last event, as stateBefore reads
// it room by room — whether that event is a message or a state event, and
// in a room where it changed the state it replaced.
func TestSyncRoomsStateAfterAsStateBefore(t *testing.T) {
	ctx := context.Background()
	s, store := newTestRoomsWith(t, Options{})
	alice, bob := id.UserID("@alice:example.org"), id.UserID("@bob:example.org")
	empty := ""
	send := func(room id.RoomID, evType string, stateKey *string, content string) {
		t.Helper()
		if _, err := s.Send(ctx, &SendRequest{RoomID: room, Sender: alice, Type: evType, StateKey: stateKey,
			Content: []byte(content)}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 3 {
		room, err := s.CreateRoom(ctx, &CreateRequest{Creator: alice, Preset: "public_chat"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.ChangeMembership(ctx, &MembershipRequest{RoomID: room, Sender: bob, Target: bob, Membership: "join"}); err != nil {
			t.Fatal(err)
		}
		send(room, "m.room.topic", &empty, `{"topic":"first"}`)
		for m := range 4 {
			send(room, "m.room.message", nil, fmt.Sprintf(`{"msgtype":"m.text","body":"%d"}`, m))
		}
		switch i {
		case 1: // the last event replaces state
			send(room, "m.room.topic", &empty, `{"topic":"second"}`)
		case 2: // and adds some
			send(room, "m.room.name", &empty, `{"name":"named at last"}`)
		}
	}
	upto, err := store.MaxStreamPos(ctx)
	if err != nil {
		t.Fatal(err)
	}
	memberships, err := s.UserMemberships(ctx, bob)
	if err != nil {
		t.Fatal(err)
	}
	nothing := &EventFilter{Types: []string{"no.such.type"}}
	for _, c := range []struct {
		name   string
		after  bool
		filter *EventFilter
	}{{"state after", true, nil}, {"no timeline", false, nothing}, {"state after, no timeline", true, nothing}} {
		t.Run(c.name, func(t *testing.T) {
			var reqs []*SyncRoomRequest
			for _, m := range memberships {
				reqs = append(reqs, &SyncRoomRequest{User: bob, Device: "DEV", RoomID: m.RoomID, Upto: upto,
					MembershipPos: m.Pos, Membership: m.Membership, MembershipEvent: m.EventID, TimelineLimit: 3,
					StateAfter: c.after, Filter: c.filter})
			}
			if len(reqs) != 3 {
				t.Fatalf("bob is in %d rooms", len(reqs))
			}
			out, err := s.SyncRooms(ctx, reqs)
			if err != nil {
				t.Fatal(err)
			}
			for i, req := range reqs {
				want, err := s.stateBefore(ctx, req.RoomID, upto+1, nil)
				if err != nil {
					t.Fatal(err)
				}
				var got, wantIDs []id.EventID
				for _, e := range out[i].State {
					got = append(got, e.EventID)
				}
				for _, e := range want {
					wantIDs = append(wantIDs, e.EventID)
				}
				if !slices.Equal(got, wantIDs) || len(got) < 7 {
					t.Errorf("room %d: state %v, want %v", i, got, wantIDs)
				}
			}
		})
	}
}

// Room summaries are read once and kept until the next commit to their
// room: a join shows in the next summary.
func TestSummariesUntilTheRoomMoves(t *testing.T) {
	ctx := context.Background()
	s, store := newTestRoomsWith(t, Options{})
	counted := &countingStore{Store: store}
	// A Reader of its own over the counting store, following the
	// service's commits as every Reader does.
	r, err := NewReader(counted, Options{ServerName: "example.org", Notifier: s.opts.Notifier})
	if err != nil {
		t.Fatal(err)
	}
	alice, bob := id.UserID("@alice:example.org"), id.UserID("@bob:example.org")
	room, err := s.CreateRoom(ctx, &CreateRequest{Creator: alice, Preset: "public_chat"})
	if err != nil {
		t.Fatal(err)
	}
	other, err := s.CreateRoom(ctx, &CreateRequest{Creator: alice, Preset: "public_chat"})
	if err != nil {
		t.Fatal(err)
	}
	joined := func() string {
		t.Helper()
		sums, err := r.Summaries(ctx, []id.RoomID{room, other}, alice)
		if err != nil {
			t.Fatal(err)
		}
		return fmt.Sprint(sums[room]["m.joined_member_count"])
	}
	if n := joined(); n != "1" {
		t.Fatalf("%v joined", n)
	}
	reads := counted.summaries.Load()
	if n := joined(); n != "1" || counted.summaries.Load() != reads {
		t.Fatalf("%v joined, %d more reads", n, counted.summaries.Load()-reads)
	}
	if _, err := s.ChangeMembership(ctx, &MembershipRequest{RoomID: room, Sender: bob, Target: bob, Membership: "join"}); err != nil {
		t.Fatal(err)
	}
	if n := joined(); n != "2" {
		t.Fatalf("after bob's join: %v joined", n)
	}
	if n := counted.summaries.Load() - reads; n != 1 {
		t.Errorf("%d reads after the join, want 1", n)
	}
	// Only the room that moved was read again.
	reads = counted.summaries.Load()
	if _, err := r.Summaries(ctx, []id.RoomID{other}, alice); err != nil || counted.summaries.Load() != reads {
		t.Errorf("the other room was read again (%v)", err)
	}
}
