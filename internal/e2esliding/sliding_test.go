package e2esliding

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

// flows are the sliding sync flows, run on SQLite by TestSliding and on
// PostgreSQL by TestPostgres.
var flows = []struct {
	name string
	run  func(*testing.T, *env)
}{
	{"Recency", recencyFlow},
	{"RangesAndCounts", rangesFlow},
	{"RequiredState", requiredStateFlow},
	{"TimelineLimit", timelineFlow},
	{"Subscriptions", subscriptionsFlow},
	{"InvitesAndDMs", invitesFlow},
	{"JoinAndLeave", joinLeaveFlow},
	{"ToDevice", toDeviceFlow},
	{"AccountData", accountDataFlow},
	{"ReceiptsAndTyping", receiptsTypingFlow},
	{"LongPoll", longPollFlow},
	{"ProfileChangeAndKick", profileKickFlow},
	{"Errors", errorsFlow},
}

func TestSliding(t *testing.T) {
	e := newEnv(t)
	for _, f := range flows {
		t.Run(f.name, func(t *testing.T) { f.run(t, e) })
	}
}

// Rooms are listed by recency: a message in an older room brings it to the
// top of the list on the next request.
func recencyFlow(t *testing.T, e *env) {
	alice := e.user(t, "alice")
	a := createRoom(t, alice, &mautrix.ReqCreateRoom{Name: "A"})
	b := createRoom(t, alice, &mautrix.ReqCreateRoom{Name: "B"})
	c := createRoom(t, alice, &mautrix.ReqCreateRoom{Name: "C"})
	top := lists("all", list([][2]int{{0, 0}}, 1))
	first := e.ss(t, alice, "", -1, top)
	equal(t, "top room", first.roomIDs(), []id.RoomID{c})
	if first.Lists["all"].Count != 3 {
		t.Fatalf("count %d, want 3", first.Lists["all"].Count)
	}
	room := first.room(t, c)
	if !room.Initial || room.Name != "C" || room.BumpStamp == nil {
		t.Fatalf("room C: %s", first.raw)
	}
	// Nothing changed: an empty answer.
	same := e.ss(t, alice, first.Pos, 0, top)
	if len(same.Rooms) != 0 {
		t.Fatalf("nothing changed, rooms %v", same.roomIDs())
	}
	sendText(t, alice, a, "wake up A")
	moved := e.ss(t, alice, same.Pos, 0, top)
	equal(t, "top room after a message in A", moved.roomIDs(), []id.RoomID{a})
	ra := moved.room(t, a)
	if !ra.Initial {
		t.Fatal("A was never sent on this connection: it should be initial")
	}
	equal(t, "A's timeline", ra.bodies(), []string{"wake up A"})
	if *ra.BumpStamp <= *room.BumpStamp {
		t.Fatalf("A's bump_stamp %d is not after C's %d", *ra.BumpStamp, *room.BumpStamp)
	}
	// The full list has every room, with bump stamps in recency order.
	all := e.ss(t, alice, "", -1, lists("all", list([][2]int{{0, 9}}, 1)))
	equal(t, "all rooms", all.roomIDs(), sortedIDs(a, b, c))
	if !(*all.room(t, a).BumpStamp > *all.room(t, c).BumpStamp && *all.room(t, c).BumpStamp > *all.room(t, b).BumpStamp) {
		t.Fatalf("bump stamps out of order: %s", all.raw)
	}
	// State events do not bump a room; messages do.
	sendState(t, alice, b, "m.room.topic", "", map[string]any{"topic": "new topic"})
	again := e.ss(t, alice, all.Pos, 0, lists("all", list([][2]int{{0, 9}}, 1)))
	rb := again.room(t, b)
	if rb.Initial || len(rb.Timeline) != 1 || rb.Timeline[0].Type != "m.room.topic" {
		t.Fatalf("B after a topic change: %s", again.raw)
	}
	if rb.BumpStamp == nil || *rb.BumpStamp != *all.room(t, b).BumpStamp {
		t.Fatalf("a topic change moved B's bump_stamp: %s", again.raw)
	}
}

func sortedIDs(ids ...id.RoomID) []id.RoomID {
	out := slices.Clone(ids)
	slices.Sort(out)
	return out
}

// Ranges pick from the sorted list; counts follow filters; a room that
// changed while outside every range catches up when it comes back.
func rangesFlow(t *testing.T, e *env) {
	alice := e.user(t, "alice")
	var rooms []id.RoomID // oldest first
	for i := range 5 {
		rooms = append(rooms, createRoom(t, alice, &mautrix.ReqCreateRoom{Name: fmt.Sprint("R", i)}))
	}
	body := lists("a", list([][2]int{{1, 2}}, 3), "b", list([][2]int{{0, 0}, {4, 10}}, 3))
	res := e.ss(t, alice, "", -1, body)
	// Newest first: R4 R3 R2 R1 R0 → a = R3, R2; b = R4 and R0.
	equal(t, "rooms of two lists", res.roomIDs(), sortedIDs(rooms[3], rooms[2], rooms[4], rooms[0]))
	if res.Lists["a"].Count != 5 || res.Lists["b"].Count != 5 {
		t.Fatalf("counts %v", res.Lists)
	}
	// R1 (outside every range) gets two messages, then one more after R0
	// moved; it comes back into range behind, and catches up from where
	// the client's copy ended: here it was never sent, so it is initial.
	sendText(t, alice, rooms[1], "one")
	res2 := e.ss(t, alice, res.Pos, 0, body)
	equal(t, "R1 moved to the top", res2.roomIDs(), []id.RoomID{rooms[1]})
	if !res2.room(t, rooms[1]).Initial {
		t.Fatal("R1 should be initial")
	}
	// R3 was sent (live). It changes while out of range (ranges now cover
	// only the top room), then comes back: it gets exactly the missed events.
	top := lists("a", list([][2]int{{0, 0}}, 3))
	res3 := e.ss(t, alice, res2.Pos, 0, top)
	if len(res3.Rooms) != 0 {
		t.Fatalf("nothing new, got %v", res3.roomIDs())
	}
	sendText(t, alice, rooms[3], "missed 1")
	sendText(t, alice, rooms[1], "R1 stays on top")
	res4 := e.ss(t, alice, res3.Pos, 0, top)
	equal(t, "only R1 in range", res4.roomIDs(), []id.RoomID{rooms[1]})
	sendText(t, alice, rooms[3], "missed 2")
	res5 := e.ss(t, alice, res4.Pos, 0, top)
	r3 := res5.room(t, rooms[3])
	if r3.Initial {
		t.Fatal("R3 was sent before; it should catch up, not start again")
	}
	equal(t, "R3 catches up", r3.bodies(), []string{"missed 1", "missed 2"})
	if *r3.Limited {
		t.Fatal("R3's catch-up is not limited")
	}
	// A filter: only invites (none) → count 0, no rooms.
	inv := e.ss(t, alice, "", -1, lists("inv", map[string]any{"ranges": [][]int{{0, 9}}, "timeline_limit": 1,
		"filters": map[string]any{"is_invite": true}}))
	if inv.Lists["inv"].Count != 0 || len(inv.Rooms) != 0 {
		t.Fatalf("invite filter: %s", inv.raw)
	}
	// A list without ranges only counts.
	cnt := e.ss(t, alice, "", -1, lists("n", map[string]any{"timeline_limit": 1}))
	if cnt.Lists["n"].Count != 5 || len(cnt.Rooms) != 0 {
		t.Fatalf("count-only list: %s", cnt.raw)
	}
}

// required_state with wildcards, $LAZY and $ME.
func requiredStateFlow(t *testing.T, e *env) {
	alice, bob, carol := e.user(t, "alice"), e.user(t, "bob"), e.user(t, "carol")
	room := createRoom(t, alice, &mautrix.ReqCreateRoom{Preset: "public_chat", Name: "State", Topic: "T"})
	join(t, bob, room)
	join(t, carol, room)
	sendText(t, bob, room, "bob speaks")
	sendText(t, alice, room, "alice speaks")
	with := func(timeline int, required ...[2]string) map[string]any {
		return lists("l", list([][2]int{{0, 0}}, timeline, required...))
	}
	au, bu, cu := string(alice.UserID), string(bob.UserID), string(carol.UserID)

	res := e.ss(t, carol, "", -1, with(1, [2]string{"m.room.name", ""}, [2]string{"m.room.member", "$ME"}))
	equal(t, "name and $ME", res.room(t, room).state(), []string{"m.room.member|" + cu, "m.room.name|"})

	res = e.ss(t, carol, "", -1, with(1, [2]string{"m.room.member", "*"}))
	equal(t, "all members", res.room(t, room).state(),
		sortedStrings("m.room.member|"+au, "m.room.member|"+bu, "m.room.member|"+cu))

	// $LAZY: the members of the timeline's senders (the last 2 events: bob's and alice's messages).
	res = e.ss(t, carol, "", -1, with(2, [2]string{"m.room.member", "$LAZY"}))
	equal(t, "lazy members", res.room(t, room).state(), sortedStrings("m.room.member|"+au, "m.room.member|"+bu))

	res = e.ss(t, carol, "", -1, with(1, [2]string{"*", "*"}))
	st := res.room(t, room).state()
	for _, want := range []string{"m.room.create|", "m.room.power_levels|", "m.room.topic|", "m.room.member|" + bu} {
		if !slices.Contains(st, want) {
			t.Fatalf("[*,*] lacks %s: %v", want, st)
		}
	}
	res = e.ss(t, carol, "", -1, with(1, [2]string{"*", ""}))
	for _, s := range res.room(t, room).state() {
		if !strings.HasSuffix(s, "|") {
			t.Fatalf("[*, \"\"] returned %s", s)
		}
	}

	// Incremental: only changed state that is required.
	body := with(5, [2]string{"m.room.topic", ""}, [2]string{"m.room.member", "$LAZY"})
	first := e.ss(t, carol, "", -1, body)
	sendState(t, alice, room, "m.room.topic", "", map[string]any{"topic": "T2"})
	sendState(t, alice, room, "m.room.join_rules", "", map[string]any{"join_rule": "public"})
	next := e.ss(t, carol, first.Pos, 0, body)
	r := next.room(t, room)
	equal(t, "changed required state", r.state(), []string{"m.room.member|" + au, "m.room.topic|"})
	if r.RequiredState[0].Type == "m.room.topic" && r.RequiredState[0].Content["topic"] != "T2" {
		t.Fatalf("topic %v", r.RequiredState[0].Content)
	}
	// Asking for more state on the same connection sends the newly required entries.
	body2 := with(5, [2]string{"m.room.topic", ""}, [2]string{"m.room.member", "$LAZY"}, [2]string{"m.room.create", ""})
	more := e.ss(t, carol, next.Pos, 0, body2)
	equal(t, "newly required state", more.room(t, room).state(), []string{"m.room.create|"})
}

func sortedStrings(s ...string) []string {
	slices.Sort(s)
	return s
}

// timeline_limit, limited and prev_batch (which /messages accepts); a
// bigger timeline_limit on the same connection expands the timeline.
func timelineFlow(t *testing.T, e *env) {
	alice := e.user(t, "alice")
	room := createRoom(t, alice, &mautrix.ReqCreateRoom{Name: "T"})
	for i := range 6 {
		sendText(t, alice, room, fmt.Sprint("m", i))
	}
	body := lists("l", list([][2]int{{0, 0}}, 2))
	res := e.ss(t, alice, "", -1, body)
	r := res.room(t, room)
	equal(t, "last two", r.bodies(), []string{"m4", "m5"})
	if r.Limited == nil || !*r.Limited || r.PrevBatch == "" || r.NumLive == nil || *r.NumLive != 0 {
		t.Fatalf("limited/prev_batch/num_live: %s", res.raw)
	}
	if r.JoinedCount == nil || *r.JoinedCount != 1 || r.InvitedCount == nil || *r.InvitedCount != 0 {
		t.Fatalf("counts: %s", res.raw)
	}
	page, err := alice.Messages(ctx(t), room, r.PrevBatch, "", mautrix.DirectionBackward, nil, 3)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, ev := range page.Chunk {
		got = append(got, fmt.Sprint(ev.Content.Raw["body"]))
	}
	equal(t, "/messages from prev_batch", got, []string{"m3", "m2", "m1"})

	// Incremental: the new events, num_live counts them.
	sendText(t, alice, room, "m6")
	inc := e.ss(t, alice, res.Pos, 0, body)
	ri := inc.room(t, room)
	if ri.Initial || *ri.Limited || *ri.NumLive != 1 {
		t.Fatalf("incremental: %s", inc.raw)
	}
	equal(t, "new event", ri.bodies(), []string{"m6"})
	// More new events than the limit: limited, with a prev_batch for the gap.
	for i := 7; i < 10; i++ {
		sendText(t, alice, room, fmt.Sprint("m", i))
	}
	gap := e.ss(t, alice, inc.Pos, 0, body)
	rg := gap.room(t, room)
	if !*rg.Limited || *rg.NumLive != 2 {
		t.Fatalf("gap: %s", gap.raw)
	}
	equal(t, "gap timeline", rg.bodies(), []string{"m8", "m9"})
	page, err = alice.Messages(ctx(t), room, rg.PrevBatch, "", mautrix.DirectionBackward, nil, 1)
	if err != nil || len(page.Chunk) != 1 || page.Chunk[0].Content.Raw["body"] != "m7" {
		t.Fatalf("gap fill: %v %v", page, err)
	}
	// A bigger timeline_limit (a room opened in the client) expands it.
	big := e.ss(t, alice, gap.Pos, 0, lists("l", list([][2]int{{0, 0}}, 4)))
	rb := big.room(t, room)
	if !rb.Expanded || rb.Initial {
		t.Fatalf("expanded timeline: %s", big.raw)
	}
	equal(t, "expanded", rb.bodies(), []string{"m6", "m7", "m8", "m9"})
	// timeline_limit 0: no timeline at all.
	none := e.ss(t, alice, "", -1, lists("l", list([][2]int{{0, 0}}, 0)))
	if rn := none.room(t, room); rn.Timeline != nil || rn.Limited != nil {
		t.Fatalf("timeline_limit 0: %s", none.raw)
	}
}

// Room subscriptions send rooms outside the lists, with their own config.
func subscriptionsFlow(t *testing.T, e *env) {
	alice, bob := e.user(t, "alice"), e.user(t, "bob")
	old := createRoom(t, alice, &mautrix.ReqCreateRoom{Name: "Old"})
	sendText(t, alice, old, "old message")
	createRoom(t, alice, &mautrix.ReqCreateRoom{Name: "New"})
	foreign := createRoom(t, bob, &mautrix.ReqCreateRoom{Name: "Not alice's"})
	body := map[string]any{
		"lists": map[string]any{"l": list([][2]int{{0, 0}}, 1)},
		"room_subscriptions": map[string]any{
			string(old):     map[string]any{"timeline_limit": 5, "required_state": [][]string{{"m.room.create", ""}}},
			string(foreign): map[string]any{"timeline_limit": 5},
		},
	}
	res := e.ss(t, alice, "", -1, body)
	if len(res.Rooms) != 2 || res.Rooms[foreign] != nil {
		t.Fatalf("rooms %v", res.roomIDs())
	}
	r := res.room(t, old)
	equal(t, "subscription state", r.state(), []string{"m.room.create|"})
	if len(r.Timeline) != 5 || r.bodies()[0] != "old message" {
		t.Fatalf("subscription timeline: %s", res.raw)
	}
	sendText(t, alice, old, "new message")
	inc := e.ss(t, alice, res.Pos, 0, body)
	equal(t, "subscribed room update", inc.room(t, old).bodies(), []string{"new message"})
}

// Invites appear with invite_state (and no timeline); is_invite and is_dm
// filters; m.direct makes a room a DM.
func invitesFlow(t *testing.T, e *env) {
	alice, bob := e.user(t, "alice"), e.user(t, "bob")
	group := createRoom(t, alice, &mautrix.ReqCreateRoom{Name: "Group", Invite: []id.UserID{bob.UserID}})
	dm := createRoom(t, alice, &mautrix.ReqCreateRoom{Preset: "trusted_private_chat", IsDirect: true,
		Invite: []id.UserID{bob.UserID}})
	own := createRoom(t, bob, &mautrix.ReqCreateRoom{Name: "Bob's"})
	body := lists(
		"invites", map[string]any{"ranges": [][]int{{0, 9}}, "timeline_limit": 1, "filters": map[string]any{"is_invite": true}},
		"joined", map[string]any{"ranges": [][]int{{0, 9}}, "timeline_limit": 1, "filters": map[string]any{"is_invite": false}},
		"dms", map[string]any{"ranges": [][]int{{0, 9}}, "timeline_limit": 1, "filters": map[string]any{"is_dm": true}},
	)
	res := e.ss(t, bob, "", -1, body)
	if res.Lists["invites"].Count != 2 || res.Lists["joined"].Count != 1 || res.Lists["dms"].Count != 1 {
		t.Fatalf("counts: %s", res.raw)
	}
	g := res.room(t, group)
	if !g.Initial || g.Timeline != nil || g.Name != "Group" || len(g.InviteState) == 0 {
		t.Fatalf("invite: %s", res.raw)
	}
	sawInvite := false
	for _, ev := range g.InviteState {
		if ev.Type == "m.room.member" && ev.StateKey != nil && *ev.StateKey == string(bob.UserID) && ev.Content["membership"] == "invite" {
			sawInvite = true
		}
	}
	if !sawInvite {
		t.Fatalf("invite_state lacks the invite: %s", res.raw)
	}
	if !res.room(t, dm).IsDM || res.room(t, group).IsDM || res.room(t, own).IsDM {
		t.Fatalf("is_dm: %s", res.raw)
	}
	// Nothing new for invites on the next request.
	same := e.ss(t, bob, res.Pos, 0, body)
	if len(same.Rooms) != 0 {
		t.Fatalf("rooms %v", same.roomIDs())
	}
	// m.direct marks the joined room as a DM.
	if err := bob.SetAccountData(ctx(t), "m.direct", map[string][]id.RoomID{string(alice.UserID): {own}}); err != nil {
		t.Fatal(err)
	}
	dms := e.ss(t, bob, "", -1, lists("dms", map[string]any{"ranges": [][]int{{0, 9}}, "timeline_limit": 1,
		"filters": map[string]any{"is_dm": true, "is_invite": false}}))
	equal(t, "joined DMs", dms.roomIDs(), []id.RoomID{own})
	if !dms.room(t, own).IsDM {
		t.Fatal("m.direct room is not is_dm")
	}
}

// Joining an invited room sends it afresh; leaving sends the leave once.
func joinLeaveFlow(t *testing.T, e *env) {
	alice, bob := e.user(t, "alice"), e.user(t, "bob")
	if err := alice.SetDisplayName(ctx(t), "Alice A"); err != nil {
		t.Fatal(err)
	}
	room := createRoom(t, alice, &mautrix.ReqCreateRoom{Invite: []id.UserID{bob.UserID}})
	sendText(t, alice, room, "before bob")
	body := lists("l", list([][2]int{{0, 9}}, 5, [2]string{"m.room.member", "$ME"}))
	res := e.ss(t, bob, "", -1, body)
	if res.room(t, room).InviteState == nil {
		t.Fatalf("not an invite: %s", res.raw)
	}
	join(t, bob, room)
	joined := e.ss(t, bob, res.Pos, 0, body)
	r := joined.room(t, room)
	if !r.Initial || r.InviteState != nil || r.Timeline == nil || r.JoinedCount == nil || *r.JoinedCount != 2 {
		t.Fatalf("newly joined room: %s", joined.raw)
	}
	// No name: the heroes are the other members, with their display names.
	if len(r.Heroes) != 1 || r.Heroes[0].UserID != alice.UserID || r.Heroes[0].DisplayName != "Alice A" {
		t.Fatalf("heroes: %s", joined.raw)
	}
	if _, err := bob.LeaveRoom(ctx(t), room); err != nil {
		t.Fatal(err)
	}
	left := e.ss(t, bob, joined.Pos, 0, body)
	lr := left.room(t, room)
	if lr.Initial || len(lr.Timeline) == 0 || lr.Timeline[len(lr.Timeline)-1].Content["membership"] != "leave" {
		t.Fatalf("leave: %s", left.raw)
	}
	if left.Lists["l"].Count != 1 {
		t.Fatalf("the left room still counts in the answer that shows the leave: %s", left.raw)
	}
	after := e.ss(t, bob, left.Pos, 0, body)
	if len(after.Rooms) != 0 || after.Lists["l"].Count != 0 {
		t.Fatalf("after leaving: %s", after.raw)
	}
	// A new connection does not show the room the user left.
	fresh := e.ss(t, bob, "", -1, body)
	if len(fresh.Rooms) != 0 {
		t.Fatalf("fresh connection shows a left room: %s", fresh.raw)
	}
}

type toDeviceExt struct {
	NextBatch string `json:"next_batch"`
	Events    []struct {
		Type    string         `json:"type"`
		Sender  id.UserID      `json:"sender"`
		Content map[string]any `json:"content"`
	} `json:"events"`
}

// To-device messages are delivered until acknowledged by since.
func toDeviceFlow(t *testing.T, e *env) {
	alice, bob := e.user(t, "alice"), e.user(t, "bob")
	ext := func(since string) map[string]any {
		td := map[string]any{"enabled": true}
		if since != "" {
			td["since"] = since
		}
		return map[string]any{"conn_id": "encryption", "extensions": map[string]any{"to_device": td, "e2ee": map[string]any{"enabled": true}}}
	}
	res := e.ss(t, bob, "", -1, ext(""))
	var td toDeviceExt
	if !res.ext(t, "to_device", &td) || len(td.Events) != 0 || td.NextBatch == "" {
		t.Fatalf("empty to_device: %s", res.raw)
	}
	var e2ee struct {
		DeviceLists struct {
			Changed []string `json:"changed"`
			Left    []string `json:"left"`
		} `json:"device_lists"`
		OTK map[string]int `json:"device_one_time_keys_count"`
	}
	if !res.ext(t, "e2ee", &e2ee) || e2ee.DeviceLists.Changed == nil || e2ee.OTK == nil {
		t.Fatalf("e2ee: %s", res.raw)
	}
	_, err := alice.SendToDevice(ctx(t), event.Type{Type: "m.test", Class: event.ToDeviceEventType}, &mautrix.ReqSendToDevice{
		Messages: map[id.UserID]map[id.DeviceID]*event.Content{bob.UserID: {bob.DeviceID: {Raw: map[string]any{"n": 1}}}}})
	if err != nil {
		t.Fatal(err)
	}
	// The long-poll wakes for it.
	got := e.ss(t, bob, res.Pos, 10000, ext(td.NextBatch))
	var td2 toDeviceExt
	got.ext(t, "to_device", &td2)
	if len(td2.Events) != 1 || td2.Events[0].Type != "m.test" || td2.Events[0].Sender != alice.UserID {
		t.Fatalf("to-device: %s", got.raw)
	}
	// Not acknowledged (same since): delivered again.
	again := e.ss(t, bob, got.Pos, 0, ext(td.NextBatch))
	var td3 toDeviceExt
	again.ext(t, "to_device", &td3)
	if len(td3.Events) != 1 {
		t.Fatalf("unacknowledged message not redelivered: %s", again.raw)
	}
	// Acknowledged: gone.
	acked := e.ss(t, bob, again.Pos, 0, ext(td2.NextBatch))
	var td4 toDeviceExt
	acked.ext(t, "to_device", &td4)
	if len(td4.Events) != 0 {
		t.Fatalf("acknowledged message delivered again: %s", acked.raw)
	}
	fresh := e.ss(t, bob, "", -1, ext(""))
	var td5 toDeviceExt
	fresh.ext(t, "to_device", &td5)
	if len(td5.Events) != 0 {
		t.Fatalf("acknowledged message on a new connection: %s", fresh.raw)
	}
	e.ssErr(t, bob, "", ext("not-a-number"), http.StatusBadRequest, "M_INVALID_PARAM")
}

type accountDataExt struct {
	Global []struct {
		Type    string         `json:"type"`
		Content map[string]any `json:"content"`
	} `json:"global"`
	Rooms map[id.RoomID][]struct {
		Type    string         `json:"type"`
		Content map[string]any `json:"content"`
	} `json:"rooms"`
}

func accountDataFlow(t *testing.T, e *env) {
	alice := e.user(t, "alice")
	room := createRoom(t, alice, nil)
	other := createRoom(t, alice, nil)
	if err := alice.SetAccountData(ctx(t), "org.example.global", map[string]any{"v": 1}); err != nil {
		t.Fatal(err)
	}
	if err := alice.SetRoomAccountData(ctx(t), room, "org.example.room", map[string]any{"v": 2}); err != nil {
		t.Fatal(err)
	}
	body := map[string]any{"lists": map[string]any{"l": list([][2]int{{0, 0}}, 1)},
		"extensions": map[string]any{"account_data": map[string]any{"enabled": true}}}
	// Make room the top room.
	sendText(t, alice, room, "top")
	res := e.ss(t, alice, "", -1, body)
	var ad accountDataExt
	res.ext(t, "account_data", &ad)
	types := map[string]bool{}
	for _, g := range ad.Global {
		types[g.Type] = true
	}
	if !types["org.example.global"] || !types["m.push_rules"] {
		t.Fatalf("global account data: %s", res.raw)
	}
	if rd := ad.Rooms[room]; len(rd) != 1 || rd[0].Content["v"] != float64(2) {
		t.Fatalf("room account data: %s", res.raw)
	}
	// Changes: only what changed.
	if err := alice.SetAccountData(ctx(t), "org.example.global2", map[string]any{"v": 3}); err != nil {
		t.Fatal(err)
	}
	inc := e.ss(t, alice, res.Pos, 0, body)
	var ad2 accountDataExt
	inc.ext(t, "account_data", &ad2)
	if len(ad2.Global) != 1 || ad2.Global[0].Type != "org.example.global2" || len(ad2.Rooms) != 0 {
		t.Fatalf("incremental account data: %s", inc.raw)
	}
	// Room account data of a room outside the range is sent when it comes in.
	if err := alice.SetRoomAccountData(ctx(t), other, "org.example.room", map[string]any{"v": 4}); err != nil {
		t.Fatal(err)
	}
	inc2 := e.ss(t, alice, inc.Pos, 0, body)
	var ad3 accountDataExt
	inc2.ext(t, "account_data", &ad3)
	if len(ad3.Rooms) != 0 {
		t.Fatalf("account data of a room out of range: %s", inc2.raw)
	}
	sendText(t, alice, other, "now other is on top")
	inc3 := e.ss(t, alice, inc2.Pos, 0, body)
	var ad4 accountDataExt
	inc3.ext(t, "account_data", &ad4)
	if rd := ad4.Rooms[other]; len(rd) != 1 || rd[0].Content["v"] != float64(4) {
		t.Fatalf("room account data when the room comes into range: %s", inc3.raw)
	}
}

func receiptsTypingFlow(t *testing.T, e *env) {
	alice, bob := e.user(t, "alice"), e.user(t, "bob")
	room := createRoom(t, alice, &mautrix.ReqCreateRoom{Preset: "public_chat"})
	join(t, bob, room)
	msg := sendText(t, alice, room, "read me")
	body := map[string]any{"lists": map[string]any{"l": list([][2]int{{0, 0}}, 3)},
		"extensions": map[string]any{"receipts": map[string]any{"enabled": true}, "typing": map[string]any{"enabled": true}}}
	res := e.ss(t, alice, "", -1, body)
	if err := bob.MarkRead(ctx(t), room, msg); err != nil {
		t.Fatal(err)
	}
	got := e.ss(t, alice, res.Pos, 10000, body)
	var rc struct {
		Rooms map[id.RoomID]struct {
			Type    string                               `json:"type"`
			Content map[string]map[string]map[string]any `json:"content"`
		} `json:"rooms"`
	}
	got.ext(t, "receipts", &rc)
	r, ok := rc.Rooms[room]
	if !ok || r.Type != "m.receipt" || r.Content[string(msg)]["m.read"][string(bob.UserID)] == nil {
		t.Fatalf("receipt: %s", got.raw)
	}
	// A new connection gets the receipts of the timeline's events.
	fresh := e.ss(t, alice, "", -1, body)
	var rc2 struct {
		Rooms map[id.RoomID]map[string]any `json:"rooms"`
	}
	fresh.ext(t, "receipts", &rc2)
	if rc2.Rooms[room] == nil {
		t.Fatalf("initial receipts: %s", fresh.raw)
	}

	if _, err := bob.UserTyping(ctx(t), room, true, 30000); err != nil {
		t.Fatal(err)
	}
	typ := e.ss(t, alice, got.Pos, 10000, body)
	var ty struct {
		Rooms map[id.RoomID]struct {
			Type    string `json:"type"`
			Content struct {
				UserIDs []id.UserID `json:"user_ids"`
			} `json:"content"`
		} `json:"rooms"`
	}
	typ.ext(t, "typing", &ty)
	if tr := ty.Rooms[room]; tr.Type != "m.typing" || !slices.Equal(tr.Content.UserIDs, []id.UserID{bob.UserID}) {
		t.Fatalf("typing: %s", typ.raw)
	}
	if _, err := bob.UserTyping(ctx(t), room, false, 0); err != nil {
		t.Fatal(err)
	}
	stop := e.ss(t, alice, typ.Pos, 10000, body)
	var ty2 struct {
		Rooms map[id.RoomID]struct {
			Content struct {
				UserIDs []id.UserID `json:"user_ids"`
			} `json:"content"`
		} `json:"rooms"`
	}
	stop.ext(t, "typing", &ty2)
	if tr, ok := ty2.Rooms[room]; !ok || len(tr.Content.UserIDs) != 0 {
		t.Fatalf("typing stopped: %s", stop.raw)
	}
}

// A long-poll returns when a message arrives, and empty at its timeout.
func longPollFlow(t *testing.T, e *env) {
	alice, bob := e.user(t, "alice"), e.user(t, "bob")
	room := createRoom(t, alice, &mautrix.ReqCreateRoom{Preset: "public_chat"})
	join(t, bob, room)
	body := lists("l", list([][2]int{{0, 9}}, 5))
	res := e.ss(t, alice, "", -1, body)
	// Timeout with nothing new: same shape, no rooms.
	idle := e.ss(t, alice, res.Pos, 50, body)
	if len(idle.Rooms) != 0 || idle.Lists["l"].Count != 1 {
		t.Fatalf("idle long-poll: %s", idle.raw)
	}
	done := e.ssAsync(t, alice, idle.Pos, 30000, body)
	sendText(t, bob, room, "wake")
	woke := done(t)
	equal(t, "woken by", woke.room(t, room).bodies(), []string{"wake"})
	if woke.room(t, room).Timeline[0].Sender != bob.UserID {
		t.Fatalf("sender: %s", woke.raw)
	}
	// Activity the request does not cover (a list of invites only) does not
	// end the long-poll before its timeout.
	invites := lists("inv", map[string]any{"ranges": [][]int{{0, 9}}, "timeline_limit": 1,
		"filters": map[string]any{"is_invite": true}})
	quiet := e.ss(t, alice, "", -1, invites)
	sendText(t, bob, room, "not for the invite list")
	still := e.ss(t, alice, quiet.Pos, 200, invites)
	if len(still.Rooms) != 0 || len(still.Extensions) != 0 {
		t.Fatalf("woken by an unrelated event: %s", still.raw)
	}
}

// A display name change does not send a room afresh; a kicked user keeps
// seeing the room (as Synapse shows it) with the kick.
func profileKickFlow(t *testing.T, e *env) {
	alice, bob := e.user(t, "alice"), e.user(t, "bob")
	room := createRoom(t, alice, &mautrix.ReqCreateRoom{Preset: "public_chat"})
	join(t, bob, room)
	body := lists("l", list([][2]int{{0, 9}}, 5, [2]string{"m.room.member", "$ME"}))
	res := e.ss(t, bob, "", -1, body)
	if err := bob.SetDisplayName(ctx(t), "Bobby"); err != nil {
		t.Fatal(err)
	}
	renamed := e.ss(t, bob, res.Pos, 0, body)
	r := renamed.room(t, room)
	if r.Initial || len(r.Timeline) != 1 || r.Timeline[0].Content["displayname"] != "Bobby" {
		t.Fatalf("display name change: %s", renamed.raw)
	}
	equal(t, "own member event", r.state(), []string{"m.room.member|" + string(bob.UserID)})
	// An invite the client holds, accepted and then followed by a rename:
	// the room is new to the client, though the latest join followed a
	// join.
	carol := e.user(t, "carol")
	invited := createRoom(t, alice, &mautrix.ReqCreateRoom{Name: "Invited", Invite: []id.UserID{carol.UserID}})
	cres := e.ss(t, carol, "", -1, body)
	if !cres.room(t, invited).Initial {
		t.Fatalf("carol's invite: %s", cres.raw)
	}
	join(t, carol, invited)
	if err := carol.SetDisplayName(ctx(t), "Carol C"); err != nil {
		t.Fatal(err)
	}
	if cj := e.ss(t, carol, cres.Pos, 0, body); !cj.room(t, invited).Initial {
		t.Fatalf("an invite accepted and a rename since: not sent afresh: %s", cj.raw)
	}
	if _, err := alice.KickUser(ctx(t), room, &mautrix.ReqKickUser{UserID: bob.UserID, Reason: "bye"}); err != nil {
		t.Fatal(err)
	}
	kicked := e.ss(t, bob, renamed.Pos, 0, body)
	k := kicked.room(t, room)
	if last := k.Timeline[len(k.Timeline)-1]; last.Content["membership"] != "leave" || last.Sender != alice.UserID {
		t.Fatalf("kick: %s", kicked.raw)
	}
	// Events after the kick stay hidden; the room stays listed.
	sendText(t, alice, room, "after the kick")
	after := e.ss(t, bob, kicked.Pos, 0, body)
	if len(after.Rooms) != 0 || after.Lists["l"].Count != 1 {
		t.Fatalf("after the kick: %s", after.raw)
	}
	fresh := e.ss(t, bob, "", -1, body)
	fk := fresh.room(t, room)
	for _, ev := range fk.Timeline {
		if ev.Content["body"] == "after the kick" {
			t.Fatalf("a kicked user sees later events: %s", fresh.raw)
		}
	}
}

func errorsFlow(t *testing.T, e *env) {
	alice := e.user(t, "alice")
	body := lists("l", list([][2]int{{0, 9}}, 1))
	res := e.ss(t, alice, "", -1, body)
	for _, pos := range []string{"nonsense", "s1_2_3", "ss999_s1", "ss1_s99999999"} {
		e.ssErr(t, alice, pos, body, http.StatusBadRequest, "M_UNKNOWN_POS")
	}
	// Another user's or another connection's pos is unknown too.
	bob := e.user(t, "bob")
	e.ssErr(t, bob, res.Pos, body, http.StatusBadRequest, "M_UNKNOWN_POS")
	e.ssErr(t, alice, res.Pos, map[string]any{"conn_id": "other", "lists": body["lists"]}, http.StatusBadRequest, "M_UNKNOWN_POS")
	// A pos stays usable while it is the latest one received.
	e.ss(t, alice, res.Pos, 0, body)
	e.ss(t, alice, res.Pos, 0, body)

	e.ssErr(t, alice, "", "{not json", http.StatusBadRequest, "M_NOT_JSON")
	e.ssErr(t, alice, "", `{"lists": []}`, http.StatusBadRequest, "M_BAD_JSON")
	e.ssErr(t, alice, "", `{"lists": {"l": {"ranges": [[0, "a"]]}}}`, http.StatusBadRequest, "M_BAD_JSON")
	for _, ranges := range []string{`[[5, 1]]`, `[[-1, 3]]`, `[[0]]`, `[[0, 1, 2]]`} {
		e.ssErr(t, alice, "", `{"lists": {"l": {"ranges": `+ranges+`, "timeline_limit": 1}}}`, http.StatusBadRequest, "M_INVALID_PARAM")
	}
	e.ssErr(t, alice, "", `{"lists": {"l": {"ranges": [[0, 1]], "timeline_limit": -1}}}`, http.StatusBadRequest, "M_INVALID_PARAM")
	e.ssErr(t, alice, "", `{"lists": {"l": {"ranges": [[0, 1]], "required_state": [["m.room.name"]]}}}`, http.StatusBadRequest, "M_INVALID_PARAM")
	status, raw := e.raw(t, nil, http.MethodPost, slidingPath, "{}")
	var eb map[string]any
	_ = json.Unmarshal(raw, &eb)
	if status != http.StatusUnauthorized || eb["errcode"] != "M_MISSING_TOKEN" {
		t.Fatalf("no token: %d %s", status, raw)
	}
	status, raw = e.raw(t, alice, http.MethodPost, slidingPath+"?timeout=soon", "{}")
	if status != http.StatusBadRequest {
		t.Fatalf("bad timeout: %d %s", status, raw)
	}
	// An empty body is an empty request.
	empty := e.ss(t, alice, "", -1, nil)
	if len(empty.Rooms) != 0 || len(empty.Lists) != 0 {
		t.Fatalf("empty request: %s", empty.raw)
	}
}
