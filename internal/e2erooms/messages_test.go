package e2erooms

import (
	"fmt"
	"net/http"
	"slices"
	"sync"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

// TestCoreFlow creates a room, has two users talk in it, pages through the
// timeline both ways and redacts, in room versions 10, 11 and 12 (whose
// redaction algorithms differ).
func TestCoreFlow(t *testing.T) { coreFlows(t, newEnv(t)) }

func coreFlows(t *testing.T, e *env) {
	for _, rv := range []id.RoomVersion{"10", "11", "12"} {
		t.Run("v"+string(rv), func(t *testing.T) { coreFlow(t, e, rv) })
	}
}

func coreFlow(t *testing.T, e *env, rv id.RoomVersion) {
	alice, bob := e.user(t, "alice"), e.user(t, "bob")
	room := createRoom(t, alice, &mautrix.ReqCreateRoom{RoomVersion: rv, Name: "core " + string(rv)})
	create := stateOf(t, alice, room, "m.room.create", "")
	if create["room_version"] != string(rv) {
		t.Fatalf("create content %v, want room_version %s", create, rv)
	}
	invite(t, alice, room, bob.UserID)
	join(t, bob, room)

	var want []string
	for i := range 25 {
		cli := alice
		if i%2 == 1 {
			cli = bob
		}
		body := fmt.Sprintf("m%d", i)
		sendText(t, cli, room, body)
		want = append(want, body)
	}

	// Whole timeline, both directions, in pages of 10.
	for _, cli := range []*mautrix.Client{alice, bob} {
		back := timeline(t, cli, room, mautrix.DirectionBackward, 10)
		equal(t, "backward bodies", bodies(back), reversed(want))
		fwd := timeline(t, cli, room, mautrix.DirectionForward, 10)
		equal(t, "forward bodies", bodies(fwd), want)
		equal(t, "forward is backward reversed", ids(fwd), reversed(ids(back)))
		if fwd[0].Type != event.StateCreate {
			t.Fatalf("first event is %s, want m.room.create", fwd[0].Type.Type)
		}
	}

	// Pages of exactly 10 messages with explicit from tokens, and the to bound.
	onlyMsgs := &mautrix.FilterPart{Types: []event.Type{event.EventMessage}}
	p1 := page(t, bob, room, "", "", mautrix.DirectionBackward, 10, onlyMsgs)
	equal(t, "page 1", bodies(p1.Chunk), reversed(want[15:25]))
	p2 := page(t, bob, room, p1.End, "", mautrix.DirectionBackward, 10, onlyMsgs)
	equal(t, "page 2", bodies(p2.Chunk), reversed(want[5:15]))
	p3 := page(t, bob, room, p2.End, "", mautrix.DirectionBackward, 10, onlyMsgs)
	equal(t, "page 3", bodies(p3.Chunk), reversed(want[0:5]))
	if p3.End != "" {
		if p4 := page(t, bob, room, p3.End, "", mautrix.DirectionBackward, 10, onlyMsgs); len(p4.Chunk) != 0 || p4.End != "" {
			t.Fatalf("page after the start: %d events, end %q", len(p4.Chunk), p4.End)
		}
	}
	// Forward from the point page 2 ended at, up to where page 1 ended: m5…m14.
	between := page(t, bob, room, p2.End, p1.End, mautrix.DirectionForward, 100, onlyMsgs)
	equal(t, "forward between tokens", bodies(between.Chunk), want[5:15])
	// Backward from page 1's end down to page 2's end: m14…m5.
	betweenBack := page(t, bob, room, p1.End, p2.End, mautrix.DirectionBackward, 100, onlyMsgs)
	equal(t, "backward between tokens", bodies(betweenBack.Chunk), reversed(want[5:15]))
	// Forward paging with tokens continues exactly where it stopped.
	f1 := page(t, alice, room, p2.End, "", mautrix.DirectionForward, 4, onlyMsgs)
	f2 := page(t, alice, room, f1.End, "", mautrix.DirectionForward, 4, onlyMsgs)
	equal(t, "forward pages", append(bodies(f1.Chunk), bodies(f2.Chunk)...), want[5:13])

	// Redaction: own event, someone else's without power (403), a moderator's.
	msgs := page(t, alice, room, "", "", mautrix.DirectionBackward, 25, onlyMsgs).Chunk
	slices.Reverse(msgs)
	aliceMsg, bobMsg := msgs[0], msgs[1]
	if aliceMsg.Sender != alice.UserID || bobMsg.Sender != bob.UserID {
		t.Fatalf("unexpected senders %s %s", aliceMsg.Sender, bobMsg.Sender)
	}
	_, err := bob.RedactEvent(ctx(t), room, aliceMsg.ID)
	wantErr(t, err, http.StatusForbidden, "M_FORBIDDEN")
	red1 := must(alice.RedactEvent(ctx(t), room, aliceMsg.ID, mautrix.ReqRedact{Reason: "oops"})).of(t).EventID
	red2 := must(alice.RedactEvent(ctx(t), room, bobMsg.ID)).of(t).EventID
	for _, c := range []struct {
		target, redaction id.EventID
	}{{aliceMsg.ID, red1}, {bobMsg.ID, red2}} {
		raw := e.rawEvent(t, bob, room, c.target)
		if content, _ := raw["content"].(map[string]any); len(content) != 0 {
			t.Fatalf("redacted event still has content %v", content)
		}
		because, _ := path(raw, "unsigned", "redacted_because").(map[string]any)
		if because == nil || because["event_id"] != string(c.redaction) || because["type"] != "m.room.redaction" {
			t.Fatalf("redacted_because = %v, want redaction %s", because, c.redaction)
		}
		if because["redacts"] != string(c.target) {
			t.Fatalf("redacted_because.redacts = %v, want %s", because["redacts"], c.target)
		}
	}
	// The redaction event itself: "redacts" in content from room version 11.
	red := e.rawEvent(t, bob, room, red1)
	if red["redacts"] != string(aliceMsg.ID) {
		t.Fatalf("redaction event has redacts %v, want %s", red["redacts"], aliceMsg.ID)
	}
	inContent := path(red, "content", "redacts")
	if rv == "10" && inContent != nil {
		t.Fatalf("v10 redaction has content.redacts %v", inContent)
	}
	if rv != "10" && inContent != string(aliceMsg.ID) {
		t.Fatalf("v%s redaction has content.redacts %v, want %s", rv, inContent, aliceMsg.ID)
	}
	if path(red, "content", "reason") != "oops" {
		t.Fatalf("redaction reason = %v", path(red, "content", "reason"))
	}
	// The redacted events come back redacted in /messages too.
	back := timeline(t, bob, room, mautrix.DirectionBackward, 7)
	for _, ev := range back {
		if ev.ID == aliceMsg.ID || ev.ID == bobMsg.ID {
			if len(ev.Content.Raw) != 0 || ev.Unsigned.RedactedBecause == nil {
				t.Fatalf("/messages shows redacted event %s with content %v, redacted_because %v", ev.ID, ev.Content.Raw, ev.Unsigned.RedactedBecause)
			}
		}
	}

	// An m.room.redaction sent with PUT /send (spec v1.18, MSC4169) redacts
	// as /redact does, in every room version: "redacts" moves to the top
	// level before version 11; the rest of the content stays.
	target := msgs[2]
	sendRedaction := func(cli *mautrix.Client, txn string) (int, map[string]any) {
		return e.do(t, cli, http.MethodPut, p("v3", "rooms", room, "send", "m.room.redaction", txn),
			map[string]any{"redacts": target.ID, "reason": "via send", "org.example.extra": 1})
	}
	if code, body := sendRedaction(bob, "bob-red"); code != http.StatusForbidden {
		t.Fatalf("bob redacting alice's message with /send: %d %v", code, body)
	}
	code, body := sendRedaction(alice, "send-red")
	if code != http.StatusOK {
		t.Fatalf("redaction with /send: %d %v", code, body)
	}
	viaSend := id.EventID(body["event_id"].(string))
	if _, again := sendRedaction(alice, "send-red"); again["event_id"] != string(viaSend) {
		t.Fatalf("retry of the /send redaction gave %v, was %s", again["event_id"], viaSend)
	}
	if because, _ := path(e.rawEvent(t, bob, room, target.ID), "unsigned", "redacted_because").(map[string]any); because == nil ||
		because["event_id"] != string(viaSend) {
		t.Fatalf("target of the /send redaction: redacted_because %v, want %s", because, viaSend)
	}
	red = e.rawEvent(t, bob, room, viaSend)
	if red["redacts"] != string(target.ID) || path(red, "content", "reason") != "via send" ||
		path(red, "content", "org.example.extra") != float64(1) {
		t.Fatalf("v%s redaction sent with /send: %v", rv, red)
	}
	if inContent := path(red, "content", "redacts"); (rv == "10") != (inContent == nil) {
		t.Fatalf("v%s redaction sent with /send has content.redacts %v", rv, inContent)
	}
	for _, bad := range []map[string]any{{}, {"redacts": 5}, {"redacts": "not an event ID"}} {
		code, body := e.do(t, alice, http.MethodPut, p("v3", "rooms", room, "send", "m.room.redaction", fmt.Sprint("bad", bad)), bad)
		if code != http.StatusBadRequest {
			t.Fatalf("redaction with content %v: %d %v", bad, code, body)
		}
	}

	// The redaction algorithm keeps power levels' "invite" from version 11 on.
	pl := stateOf(t, alice, room, "m.room.power_levels", "")
	pl["invite"] = 0
	pl["kick"] = 40
	oldPL := sendState(t, alice, room, "m.room.power_levels", "", pl)
	pl["kick"] = 50
	sendState(t, alice, room, "m.room.power_levels", "", pl)
	must(alice.RedactEvent(ctx(t), room, oldPL)).of(t)
	redPL := e.rawEvent(t, alice, room, oldPL)
	_, hasInvite := path(redPL, "content").(map[string]any)["invite"]
	if hasInvite != (rv != "10") {
		t.Fatalf("v%s redacted power levels %v: invite kept = %v", rv, redPL["content"], hasInvite)
	}
	if path(redPL, "content", "kick") != float64(40) || path(redPL, "content", "users") == nil {
		t.Fatalf("v%s redacted power levels lost kept keys: %v", rv, redPL["content"])
	}
	// The redacted state event still reads as the previous content of its successor.
	cur := must(alice.FullStateEvent(ctx(t), room, event.StatePowerLevels, "")).of(t)
	if cur.Unsigned.ReplacesState != oldPL {
		t.Fatalf("current power levels replace %s, want %s", cur.Unsigned.ReplacesState, oldPL)
	}
}

// TestTransactionIDs checks that PUT /send and /redact are idempotent per
// device and path (client-server API, "Transaction identifiers").
func TestTransactionIDs(t *testing.T) { transactionIDsFlow(t, newEnv(t)) }

func transactionIDsFlow(t *testing.T, e *env) {
	alice := e.user(t, "alice")
	room := createRoom(t, alice, nil)
	send := func(cli *mautrix.Client, txn, body string) id.EventID {
		return must(cli.SendMessageEvent(ctx(t), room, event.EventMessage,
			map[string]any{"msgtype": "m.text", "body": body}, mautrix.ReqSendEvent{TransactionID: txn})).of(t).EventID
	}
	first := send(alice, "txn-1", "once")
	if again := send(alice, "txn-1", "once"); again != first {
		t.Fatalf("same txn gave %s, then %s", first, again)
	}
	other := e.login(t, alice)
	second := send(other, "txn-1", "once")
	if second == first {
		t.Fatal("the same txn ID from another device returned the first device's event")
	}
	if again := send(other, "txn-1", "once"); again != second {
		t.Fatalf("second device: same txn gave %s, then %s", second, again)
	}
	// Concurrent retries of one transaction make one event.
	var wg sync.WaitGroup
	got := make([]id.EventID, 8)
	for i := range got {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := alice.SendMessageEvent(ctx(t), room, event.EventMessage,
				map[string]any{"msgtype": "m.text", "body": "racy"}, mautrix.ReqSendEvent{TransactionID: "txn-race"})
			if err != nil {
				t.Error(err)
				return
			}
			got[i] = res.EventID
		}()
	}
	wg.Wait()
	for _, g := range got {
		if g != got[0] {
			t.Fatalf("concurrent sends of one txn gave different events %v", got)
		}
	}
	all := bodies(timeline(t, alice, room, mautrix.DirectionForward, 50))
	equal(t, "timeline", all, []string{"once", "once", "racy"})

	// A txn ID used for /send does not make a later /redact with the same ID a no-op:
	// transaction IDs are scoped to one endpoint.
	target := send(alice, "txn-2", "to redact")
	res := must(alice.RedactEvent(ctx(t), room, target, mautrix.ReqRedact{TxnID: "txn-2"})).of(t)
	if res.EventID == target {
		t.Fatal("redact with a txn ID already used by /send returned the sent event instead of redacting")
	}
	if again := must(alice.RedactEvent(ctx(t), room, target, mautrix.ReqRedact{TxnID: "txn-2"})).of(t); again.EventID != res.EventID {
		t.Fatalf("redact retry gave %s, then %s", res.EventID, again.EventID)
	}
	if ev := must(alice.GetEvent(ctx(t), room, target)).of(t); ev.Unsigned.RedactedBecause == nil {
		t.Fatal("target not redacted")
	}

	// The path scopes the ID: the same ID in another room, with another
	// event type or for another redaction target is a new request (a
	// bridge deriving IDs from remote message IDs lost messages when
	// only the device scoped them).
	room2 := createRoom(t, alice, nil)
	sendTo := func(room id.RoomID, evType, txn string) id.EventID {
		return must(alice.SendMessageEvent(ctx(t), room, event.Type{Type: evType, Class: event.MessageEventType},
			map[string]any{"msgtype": "m.text", "body": "elsewhere"}, mautrix.ReqSendEvent{TransactionID: txn})).of(t).EventID
	}
	for _, tc := range []struct {
		what   string
		room   id.RoomID
		evType string
	}{{"in another room", room2, "m.room.message"}, {"with another event type", room, "org.example.other"}} {
		got := sendTo(tc.room, tc.evType, "txn-1")
		if got == first {
			t.Fatalf("txn-1 %s returned the first event %s", tc.what, first)
		}
		if again := sendTo(tc.room, tc.evType, "txn-1"); again != got {
			t.Fatalf("txn-1 %s: %s, then %s on retry", tc.what, got, again)
		}
	}
	equal(t, "the other room's messages", bodies(timeline(t, alice, room2, mautrix.DirectionForward, 50)), []string{"elsewhere"})
	target2 := send(alice, "txn-3", "to redact too")
	res2 := must(alice.RedactEvent(ctx(t), room, target2, mautrix.ReqRedact{TxnID: "txn-2"})).of(t)
	if res2.EventID == res.EventID {
		t.Fatal("redacting another event with the same txn ID returned the first redaction")
	}
	if ev := must(alice.GetEvent(ctx(t), room, target2)).of(t); ev.Unsigned.RedactedBecause == nil {
		t.Fatal("second target not redacted")
	}
	// unsigned.transaction_id is the client's ID, whatever the path.
	msgs := must(alice.Messages(ctx(t), room2, "", "", mautrix.DirectionBackward, nil, 10)).of(t)
	for _, ev := range msgs.Chunk {
		if ev.Type == event.EventMessage && ev.Unsigned.TransactionID != "txn-1" {
			t.Fatalf("transaction_id of the other room's message: %q", ev.Unsigned.TransactionID)
		}
	}
}

// TestMessagesFilterAndLazyLoad checks RoomEventFilter on /messages and the
// lazy-loaded member state.
func TestMessagesFilterAndLazyLoad(t *testing.T) { messagesFilterAndLazyLoadFlow(t, newEnv(t)) }

func messagesFilterAndLazyLoadFlow(t *testing.T, e *env) {
	alice, bob, carol := e.user(t, "alice"), e.user(t, "bob"), e.user(t, "carol")
	room := publicRoom(t, alice, "")
	join(t, bob, room)
	join(t, carol, room)
	sendText(t, alice, room, "a1")
	sendText(t, bob, room, "b1")
	sendEvent(t, bob, room, "org.example.custom", map[string]any{"x": 1})
	sendText(t, alice, room, "a2")

	// Lazy loading: the state holds the member events of the page's senders only.
	res := page(t, carol, room, "", "", mautrix.DirectionBackward, 3, &mautrix.FilterPart{LazyLoadMembers: true})
	if len(res.Chunk) != 3 {
		t.Fatalf("got %d events", len(res.Chunk))
	}
	var stateUsers []id.UserID
	for _, ev := range res.State {
		if ev.Type != event.StateMember {
			t.Fatalf("lazy-load state has a %s event", ev.Type.Type)
		}
		if ev.Content.Raw["membership"] != "join" {
			t.Fatalf("member event of %s: %v", *ev.StateKey, ev.Content.Raw)
		}
		stateUsers = append(stateUsers, id.UserID(*ev.StateKey))
	}
	slices.Sort(stateUsers)
	wantUsers := []id.UserID{alice.UserID, bob.UserID}
	slices.Sort(wantUsers)
	equal(t, "lazy-loaded members", stateUsers, wantUsers)
	if noLazy := page(t, carol, room, "", "", mautrix.DirectionBackward, 3, nil); len(noLazy.State) != 0 {
		t.Fatalf("state without lazy loading: %d events", len(noLazy.State))
	}

	// Type, sender filters and filter.limit.
	onlyBob := page(t, carol, room, "", "", mautrix.DirectionForward, 0,
		&mautrix.FilterPart{Senders: []id.UserID{bob.UserID}, NotTypes: []event.Type{event.StateMember}})
	if len(onlyBob.Chunk) != 2 || onlyBob.Chunk[0].Content.Raw["body"] != "b1" || onlyBob.Chunk[1].Type.Type != "org.example.custom" {
		t.Fatalf("senders filter gave %v", ids(onlyBob.Chunk))
	}
	custom := page(t, carol, room, "", "", mautrix.DirectionBackward, 0,
		&mautrix.FilterPart{Types: []event.Type{{Type: "org.example.*"}}})
	if len(custom.Chunk) != 1 || custom.Chunk[0].Type.Type != "org.example.custom" {
		t.Fatalf("type glob filter gave %v", ids(custom.Chunk))
	}
	limited := page(t, carol, room, "", "", mautrix.DirectionBackward, 0,
		&mautrix.FilterPart{Limit: 2, Types: []event.Type{event.EventMessage}})
	equal(t, "filter.limit", bodies(limited.Chunk), []string{"a2", "b1"})
}

// TestContextAndEvent covers /context and /event.
func TestContextAndEvent(t *testing.T) { contextAndEventFlow(t, newEnv(t)) }

func contextAndEventFlow(t *testing.T, e *env) {
	alice, bob := e.user(t, "alice"), e.user(t, "bob")
	room := createRoom(t, alice, &mautrix.ReqCreateRoom{Preset: "public_chat", Name: "ctx"})
	join(t, bob, room)
	var sent []id.EventID
	for i := range 10 {
		cli := alice
		if i%2 == 1 {
			cli = bob
		}
		sent = append(sent, sendText(t, cli, room, fmt.Sprintf("c%d", i)))
	}
	res, err := bob.Context(ctx(t), room, sent[5], nil, 4)
	if err != nil {
		t.Fatal(err)
	}
	if res.Event.ID != sent[5] || res.Event.Content.Raw["body"] != "c5" {
		t.Fatalf("context event %s %v", res.Event.ID, res.Event.Content.Raw)
	}
	equal(t, "events_before (newest first)", ids(res.EventsBefore), []id.EventID{sent[4], sent[3]})
	equal(t, "events_after", ids(res.EventsAfter), []id.EventID{sent[6], sent[7]})
	types := map[string]int{}
	for _, ev := range res.State {
		types[ev.Type.Type]++
	}
	if types["m.room.create"] != 1 || types["m.room.name"] != 1 || types["m.room.member"] != 2 || types["m.room.power_levels"] != 1 {
		t.Fatalf("context state types %v", types)
	}
	// The start and end tokens continue the timeline on either side.
	before := page(t, bob, room, res.Start, "", mautrix.DirectionBackward, 2, nil)
	equal(t, "before start", ids(before.Chunk), []id.EventID{sent[2], sent[1]})
	after := page(t, bob, room, res.End, "", mautrix.DirectionForward, 2, nil)
	equal(t, "after end", ids(after.Chunk), []id.EventID{sent[8], sent[9]})

	// Lazy loading in /context: only the senders' member events.
	lazy, err := bob.Context(ctx(t), room, sent[5], &mautrix.FilterPart{LazyLoadMembers: true}, 2)
	if err != nil {
		t.Fatal(err)
	}
	members := 0
	for _, ev := range lazy.State {
		if ev.Type == event.StateMember {
			members++
		}
	}
	if members != 2 {
		t.Fatalf("lazy /context has %d member events, want 2 (both senders)", members)
	}

	ev, err := bob.GetEvent(ctx(t), room, sent[3])
	if err != nil {
		t.Fatal(err)
	}
	if ev.ID != sent[3] || ev.Sender != bob.UserID || ev.RoomID != room || ev.Content.Raw["body"] != "c3" || ev.Timestamp == 0 {
		t.Fatalf("GET /event gave %+v", ev)
	}
	_, err = bob.GetEvent(ctx(t), room, "$doesnotexist")
	wantErr(t, err, http.StatusNotFound, "M_NOT_FOUND")
	_, err = bob.Context(ctx(t), room, "$doesnotexist", nil, 2)
	wantErr(t, err, http.StatusNotFound, "M_NOT_FOUND")
	// An event of another room through this room's path is not found.
	other := createRoom(t, bob, nil)
	otherEv := sendText(t, bob, other, "elsewhere")
	_, err = bob.GetEvent(ctx(t), room, otherEv)
	wantErr(t, err, http.StatusNotFound, "M_NOT_FOUND")
}

// TestConcurrentSends has 16 goroutines send 20 messages each to one room.
func TestConcurrentSends(t *testing.T) { concurrentSendsFlow(t, newEnv(t)) }

func concurrentSendsFlow(t *testing.T, e *env) {
	owner := e.user(t, "owner")
	room := publicRoom(t, owner, "")
	var users []*mautrix.Client
	for range 4 {
		u := e.user(t, "sender")
		join(t, u, room)
		users = append(users, u)
	}
	const goroutines, each = 16, 20
	sent := make([][]id.EventID, goroutines)
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cli := users[g%len(users)]
			for i := range each {
				res, err := cli.SendText(ctx(t), room, fmt.Sprintf("g%02d-%02d", g, i))
				if err != nil {
					t.Errorf("goroutine %d message %d: %v", g, i, err)
					return
				}
				sent[g] = append(sent[g], res.EventID)
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	all := timeline(t, owner, room, mautrix.DirectionForward, 100)
	var msgs []*event.Event
	for _, ev := range all {
		if ev.Type == event.EventMessage {
			msgs = append(msgs, ev)
		}
	}
	if len(msgs) != goroutines*each {
		t.Fatalf("/messages has %d messages, want %d", len(msgs), goroutines*each)
	}
	want := map[id.EventID]bool{}
	for _, s := range sent {
		for _, eid := range s {
			want[eid] = true
		}
	}
	if len(want) != goroutines*each {
		t.Fatalf("%d distinct event IDs returned by /send, want %d", len(want), goroutines*each)
	}
	perG := make([][]id.EventID, goroutines)
	for _, ev := range msgs {
		if !want[ev.ID] {
			t.Fatalf("/messages has unexpected event %s", ev.ID)
		}
		var g, i int
		if _, err := fmt.Sscanf(ev.Content.Raw["body"].(string), "g%02d-%02d", &g, &i); err != nil {
			t.Fatal(err)
		}
		perG[g] = append(perG[g], ev.ID)
	}
	for g := range goroutines {
		equal(t, fmt.Sprintf("order of goroutine %d", g), perG[g], sent[g])
	}
	// Backwards gives the same events reversed.
	back := timeline(t, owner, room, mautrix.DirectionBackward, 64)
	equal(t, "backward timeline", ids(back), reversed(ids(all)))

	// Concurrent membership changes and state: 12 users join while the
	// owner renames the room; all land, and the state is consistent.
	var joiners []*mautrix.Client
	for range 12 {
		joiners = append(joiners, e.user(t, "joiner"))
	}
	var jg sync.WaitGroup
	for _, j := range joiners {
		jg.Add(1)
		go func() {
			defer jg.Done()
			if _, err := j.JoinRoomByID(ctx(t), room); err != nil {
				t.Errorf("%s joins: %v", j.UserID, err)
				return
			}
			if _, err := j.SendText(ctx(t), room, "joined "+string(j.UserID)); err != nil {
				t.Errorf("%s sends: %v", j.UserID, err)
			}
		}()
	}
	for i := range 5 {
		if _, err := owner.SendStateEvent(ctx(t), room, event.StateRoomName, "", map[string]any{"name": fmt.Sprint("name ", i)}); err != nil {
			t.Errorf("rename %d: %v", i, err)
		}
	}
	jg.Wait()
	if t.Failed() {
		return
	}
	jm := must(owner.JoinedMembers(ctx(t), room)).of(t)
	if len(jm.Joined) != 1+len(users)+len(joiners) {
		t.Fatalf("%d joined members, want %d", len(jm.Joined), 1+len(users)+len(joiners))
	}
	if got := stateOf(t, owner, room, "m.room.name", ""); got["name"] != "name 4" {
		t.Fatalf("name %v", got)
	}
}

// TestPersistence kills the server and checks that the timeline survives
// and that the room writer carries on from the stored state.
func TestPersistence(t *testing.T) { persistenceFlow(t, newEnv(t)) }

func persistenceFlow(t *testing.T, e *env) {
	alice, bob := e.user(t, "alice"), e.user(t, "bob")
	room := publicRoom(t, alice, "")
	join(t, bob, room)
	var want []string
	for i := range 12 {
		body := fmt.Sprintf("before%d", i)
		sendText(t, []*mautrix.Client{alice, bob}[i%2], room, body)
		want = append(want, body)
	}
	sendState(t, alice, room, "m.room.name", "", map[string]any{"name": "kept"})
	txnEvent := must(alice.SendMessageEvent(ctx(t), room, event.EventMessage,
		map[string]any{"msgtype": "m.text", "body": "with txn"}, mautrix.ReqSendEvent{TransactionID: "persisted-txn"})).of(t)
	want = append(want, "with txn")
	beforeIDs := ids(timeline(t, alice, room, mautrix.DirectionForward, 100))

	e.restart(t, true, alice, bob)

	// A retry of a transaction from before the crash is still recognised.
	retry := must(alice.SendMessageEvent(ctx(t), room, event.EventMessage,
		map[string]any{"msgtype": "m.text", "body": "with txn"}, mautrix.ReqSendEvent{TransactionID: "persisted-txn"})).of(t)
	if retry.EventID != txnEvent.EventID {
		t.Fatalf("retry after restart gave %s, want %s", retry.EventID, txnEvent.EventID)
	}

	equal(t, "bodies after restart", bodies(timeline(t, bob, room, mautrix.DirectionForward, 5)), want)
	for i := range 8 {
		body := fmt.Sprintf("after%d", i)
		sendText(t, []*mautrix.Client{bob, alice}[i%2], room, body)
		want = append(want, body)
	}
	if got := stateOf(t, bob, room, "m.room.name", ""); got["name"] != "kept" {
		t.Fatalf("name after restart %v", got)
	}
	// State changes still pass the auth rules against the reloaded state.
	_, err := bob.SendStateEvent(ctx(t), room, event.StateRoomName, "", map[string]any{"name": "bob's"})
	wantErr(t, err, http.StatusForbidden, "M_FORBIDDEN")
	sendState(t, alice, room, "m.room.name", "", map[string]any{"name": "renamed"})
	all := timeline(t, bob, room, mautrix.DirectionForward, 7)
	equal(t, "bodies", bodies(all), want)
	equal(t, "old events keep their place", ids(all)[:len(beforeIDs)], beforeIDs)
	back := timeline(t, alice, room, mautrix.DirectionBackward, 9)
	equal(t, "backward", ids(back), reversed(ids(all)))
	// Restart again, gracefully this time.
	e.restart(t, false, alice, bob)
	sendText(t, alice, room, "final")
	equal(t, "after second restart", bodies(timeline(t, bob, room, mautrix.DirectionForward, 50)), append(want, "final"))
}

// TestTimestampToEvent checks both directions against the timeline.
func TestTimestampToEvent(t *testing.T) { timestampToEventFlow(t, newEnv(t)) }

func timestampToEventFlow(t *testing.T, e *env) {
	alice := e.user(t, "alice")
	room := createRoom(t, alice, nil)
	for i := range 6 {
		sendText(t, alice, room, fmt.Sprintf("t%d", i))
	}
	all := timeline(t, alice, room, mautrix.DirectionForward, 100)
	// Expected answers from the timeline: forward, the first event at or after
	// ts; backward, the last event at or before ts (stream order breaks ties).
	expect := func(ts int64, forward bool) id.EventID {
		var best *event.Event
		for _, ev := range all {
			if forward && ev.Timestamp >= ts && (best == nil || ev.Timestamp < best.Timestamp) {
				best = ev
			}
			if !forward && ev.Timestamp <= ts && (best == nil || ev.Timestamp >= best.Timestamp) {
				best = ev
			}
		}
		if best == nil {
			return ""
		}
		return best.ID
	}
	for _, ev := range all {
		for _, ts := range []int64{ev.Timestamp - 1, ev.Timestamp, ev.Timestamp + 1} {
			for _, dir := range []mautrix.Direction{mautrix.DirectionForward, mautrix.DirectionBackward} {
				want := expect(ts, dir == mautrix.DirectionForward)
				var got map[string]any
				status, body := e.do(t, alice, http.MethodGet, q(p("v1", "rooms", room, "timestamp_to_event"),
					"ts", fmt.Sprint(ts), "dir", string(dir)), nil)
				got = body
				if want == "" {
					wantStatus(t, "timestamp_to_event", status, body, http.StatusNotFound, "M_NOT_FOUND")
					continue
				}
				if status != http.StatusOK || got["event_id"] != string(want) {
					t.Fatalf("ts %d dir %c: HTTP %d %v, want %s", ts, dir, status, got, want)
				}
			}
		}
	}
	// Through the mautrix client, and past either end.
	last := all[len(all)-1]
	res := must(alice.TimestampToEvent(ctx(t), room, unixMilli(last.Timestamp+60_000), mautrix.DirectionBackward)).of(t)
	if res.EventID != last.ID {
		t.Fatalf("backward from the future gave %s, want %s", res.EventID, last.ID)
	}
	_, err := alice.TimestampToEvent(ctx(t), room, unixMilli(last.Timestamp+60_000), mautrix.DirectionForward)
	wantErr(t, err, http.StatusNotFound, "M_NOT_FOUND")
	status, body := e.do(t, alice, http.MethodGet, q(p("v1", "rooms", room, "timestamp_to_event"), "ts", "1", "dir", "x"), nil)
	wantStatus(t, "bad dir", status, body, http.StatusBadRequest, "M_INVALID_PARAM")
	outsider := e.user(t, "outsider")
	_, err = outsider.TimestampToEvent(ctx(t), room, unixMilli(last.Timestamp), mautrix.DirectionBackward)
	wantErr(t, err, http.StatusForbidden, "M_FORBIDDEN")
}
