package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

func ephemeralOf(resp *mautrix.RespSync, room id.RoomID, typ event.Type) *event.Event {
	jr, ok := resp.Rooms.Join[room]
	if !ok {
		return nil
	}
	for _, e := range jr.Ephemeral.Events {
		if e.Type == typ {
			return e
		}
	}
	return nil
}

func TestTypingAndReceipts(t *testing.T) {
	srv := startOpen(t)
	ctx := context.Background()
	alice := register(t, srv, "alicet", defaultPassword)
	bob := register(t, srv, "bobt", defaultPassword)
	room, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bob.JoinRoomByID(ctx, room.RoomID); err != nil {
		t.Fatal(err)
	}
	msg, err := alice.SendText(ctx, room.RoomID, "read me")
	if err != nil {
		t.Fatal(err)
	}
	tok := syncOnce(t, bob, "", 0).NextBatch

	// Typing wakes a long-poll.
	done := make(chan *mautrix.RespSync, 1)
	go func() {
		r, err := bob.SyncRequest(ctx, 20000, tok, "", false, "")
		if err != nil {
			t.Error(err)
		}
		done <- r
	}()
	if _, err := alice.UserTyping(ctx, room.RoomID, true, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	var resp *mautrix.RespSync
	select {
	case resp = <-done:
	case <-time.After(15 * time.Second):
		t.Fatal("typing did not wake the long-poll")
	}
	typ := ephemeralOf(resp, room.RoomID, event.EphemeralEventTyping)
	if typ == nil {
		t.Fatal("no m.typing in sync")
	}
	var tc struct {
		UserIDs []id.UserID `json:"user_ids"`
	}
	raw, _ := json.Marshal(typ.Content.Raw)
	_ = json.Unmarshal(raw, &tc)
	if len(tc.UserIDs) != 1 || tc.UserIDs[0] != alice.UserID {
		t.Fatalf("typing users %v", tc.UserIDs)
	}
	if _, err := alice.UserTyping(ctx, room.RoomID, false, 0); err != nil {
		t.Fatal(err)
	}
	stopped := syncOnce(t, bob, resp.NextBatch, 10000)
	typ = ephemeralOf(stopped, room.RoomID, event.EphemeralEventTyping)
	raw, _ = json.Marshal(typ.Content.Raw)
	tc.UserIDs = nil
	_ = json.Unmarshal(raw, &tc)
	if typ == nil || len(tc.UserIDs) != 0 {
		t.Fatalf("typing stop not synced: %v", typ)
	}
	// Typing for someone else, or in a room one is not in, is refused.
	code, body := srv.Do(t, "PUT", "/_matrix/client/v3/rooms/"+string(room.RoomID)+"/typing/"+string(alice.UserID),
		bob.AccessToken, map[string]any{"typing": true, "timeout": 1000})
	wantStatus(t, "typing as another user", code, body, 403, "M_FORBIDDEN")

	// Receipts: public ones reach others, private ones only their owner.
	if err := bob.SendReceipt(ctx, room.RoomID, msg.EventID, event.ReceiptTypeRead, nil); err != nil {
		t.Fatal(err)
	}
	if err := alice.SendReceipt(ctx, room.RoomID, msg.EventID, event.ReceiptTypeReadPrivate, nil); err != nil {
		t.Fatal(err)
	}
	seen := syncOnce(t, alice, "", 0)
	rc := ephemeralOf(seen, room.RoomID, event.EphemeralEventReceipt)
	if rc == nil {
		t.Fatal("no receipts in alice's sync")
	}
	raw, _ = json.Marshal(rc.Content.Raw)
	var receipts map[id.EventID]map[string]map[id.UserID]any
	_ = json.Unmarshal(raw, &receipts)
	if _, ok := receipts[msg.EventID]["m.read"][bob.UserID]; !ok {
		t.Fatalf("bob's public receipt missing: %s", raw)
	}
	if _, ok := receipts[msg.EventID]["m.read.private"][alice.UserID]; !ok {
		t.Fatalf("alice's own private receipt missing: %s", raw)
	}
	bobView := syncOnce(t, bob, "", 0)
	raw, _ = json.Marshal(ephemeralOf(bobView, room.RoomID, event.EphemeralEventReceipt).Content.Raw)
	receipts = nil
	_ = json.Unmarshal(raw, &receipts)
	if _, leaked := receipts[msg.EventID]["m.read.private"]; leaked {
		t.Fatalf("a private receipt reached another user: %s", raw)
	}
	// Read markers set m.fully_read room account data.
	if err := bob.SetReadMarkers(ctx, room.RoomID, &mautrix.ReqSetReadMarkers{FullyRead: msg.EventID}); err != nil {
		t.Fatal(err)
	}
	var fr struct {
		EventID id.EventID `json:"event_id"`
	}
	if err := bob.GetRoomAccountData(ctx, room.RoomID, "m.fully_read", &fr); err != nil || fr.EventID != msg.EventID {
		t.Fatalf("m.fully_read: %v %v", fr, err)
	}
	code, body = srv.Do(t, "POST", "/_matrix/client/v3/rooms/"+string(room.RoomID)+"/receipt/m.read/$nope", bob.AccessToken, map[string]any{})
	wantStatus(t, "receipt for unknown event", code, body, 404, "M_NOT_FOUND")
	code, body = srv.Do(t, "POST", "/_matrix/client/v3/rooms/"+string(room.RoomID)+"/receipt/m.bogus/"+string(msg.EventID), bob.AccessToken, map[string]any{})
	wantStatus(t, "unknown receipt type", code, body, 400, "M_INVALID_PARAM")
}

func TestToDeviceExactlyOnce(t *testing.T) {
	srv := startOpen(t)
	alice := register(t, srv, "aliced", defaultPassword)
	bob := register(t, srv, "bobd", defaultPassword)
	bob2 := login(t, srv, passwordLogin("bobd", defaultPassword))
	tok := syncOnce(t, bob, "", 0).NextBatch
	tok2 := syncOnce(t, bob2, "", 0).NextBatch

	sendType := func(evType, txn string, devices map[string]any) {
		t.Helper()
		code, body := srv.Do(t, "PUT", "/_matrix/client/v3/sendToDevice/"+evType+"/"+txn, alice.AccessToken,
			map[string]any{"messages": map[string]any{string(bob.UserID): devices}})
		wantStatus(t, "sendToDevice", code, body, 200, "")
	}
	send := func(txn string, devices map[string]any) { t.Helper(); sendType("com.example.ping", txn, devices) }
	send("t1", map[string]any{string(bob.DeviceID): map[string]any{"n": 1}})
	send("t1", map[string]any{string(bob.DeviceID): map[string]any{"n": 1}}) // a retry: no second copy
	// The same ID with another event type is another request (the path scopes it).
	sendType("com.example.pong", "t1", map[string]any{string(bob.DeviceID): map[string]any{"n": 1}})
	send("t2", map[string]any{"*": map[string]any{"n": 2}})

	first := syncOnce(t, bob, tok, 0)
	var types []string
	for _, ev := range first.ToDevice.Events {
		types = append(types, ev.Type.Type)
	}
	if fmt.Sprint(types) != "[com.example.ping com.example.pong com.example.ping]" {
		t.Fatalf("bob's device got %v", first.ToDevice)
	}
	if first.ToDevice.Events[0].Sender != alice.UserID {
		t.Fatalf("to-device event %+v", first.ToDevice.Events[0])
	}
	// Until acknowledged, a retry with the same token gets them again.
	again := syncOnce(t, bob, tok, 0)
	if len(again.ToDevice.Events) != 3 {
		t.Fatal("unacknowledged to-device messages were lost")
	}
	// The next token acknowledges: never again.
	after := syncOnce(t, bob, first.NextBatch, 0)
	if len(after.ToDevice.Events) > 0 {
		t.Fatalf("to-device delivered twice: %v", after.ToDevice.Events)
	}
	// The second device only got the "*" message.
	other := syncOnce(t, bob2, tok2, 0)
	if len(other.ToDevice.Events) != 1 {
		t.Fatalf("second device got %v", other.ToDevice)
	}
	// A message to another server's user is queued for federation; with
	// federation off, it is refused.
	toRemote := map[string]any{"messages": map[string]any{"@someone:elsewhere.example": map[string]any{"D": map[string]any{}}}}
	code, body := srv.Do(t, "PUT", "/_matrix/client/v3/sendToDevice/x/t3", alice.AccessToken, toRemote)
	wantStatus(t, "to-device to another server", code, body, 200, "")
	off := startOpen(t, "--no-federation")
	carol := register(t, off, "carold", defaultPassword)
	code, body = off.Do(t, "PUT", "/_matrix/client/v3/sendToDevice/x/t3", carol.AccessToken, toRemote)
	wantStatus(t, "to-device to another server, federation off", code, body, 400, "M_UNRECOGNIZED")
}

func TestPresence(t *testing.T) {
	srv := startOpen(t)
	ctx := context.Background()
	alice := register(t, srv, "alicepr", defaultPassword)
	bob := register(t, srv, "bobpr", defaultPassword)
	carol := register(t, srv, "carolpr", defaultPassword)
	room, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bob.JoinRoomByID(ctx, room.RoomID); err != nil {
		t.Fatal(err)
	}
	bobTok := syncOnce(t, bob, "", 0).NextBatch
	carolTok := syncOnce(t, carol, "", 0).NextBatch
	if err := alice.SetPresence(ctx, mautrix.ReqPresence{Presence: event.PresenceOnline, StatusMsg: "coding"}); err != nil {
		t.Fatal(err)
	}
	p, err := bob.GetPresence(ctx, alice.UserID)
	if err != nil || p.Presence != event.PresenceOnline || p.StatusMsg != "coding" {
		t.Fatalf("presence: %+v %v", p, err)
	}
	resp := syncOnce(t, bob, bobTok, 10000)
	sawAlice := false
	for _, e := range resp.Presence.Events {
		sawAlice = sawAlice || (e.Sender == alice.UserID && e.Content.Raw["status_msg"] == "coding")
	}
	if !sawAlice {
		t.Fatalf("bob's sync presence: %+v", resp.Presence)
	}
	// Carol shares no room with alice.
	cresp := syncOnce(t, carol, carolTok, 50)
	for _, e := range cresp.Presence.Events {
		if e.Sender == alice.UserID {
			t.Fatalf("presence leaked to a stranger: %+v", e)
		}
	}
	code, body := srv.Do(t, "PUT", "/_matrix/client/v3/presence/"+string(alice.UserID)+"/status", bob.AccessToken,
		map[string]any{"presence": "online"})
	wantStatus(t, "presence of another user", code, body, 403, "M_FORBIDDEN")
	code, body = srv.Do(t, "PUT", "/_matrix/client/v3/presence/"+string(bob.UserID)+"/status", bob.AccessToken,
		map[string]any{"presence": "dancing"})
	wantStatus(t, "bad presence", code, body, 400, "M_INVALID_PARAM")
}

// Syncing marks a user online unless set_presence says otherwise.
func TestSyncSetsPresence(t *testing.T) {
	srv := startOpen(t)
	ctx := context.Background()
	alice := register(t, srv, "alicesp", defaultPassword)
	bob := register(t, srv, "bobsp", defaultPassword)
	if _, err := alice.SyncRequest(ctx, 0, "", "", false, event.PresenceOffline); err != nil {
		t.Fatal(err)
	}
	if p, err := bob.GetPresence(ctx, alice.UserID); err != nil || p.Presence != event.PresenceOffline {
		t.Fatalf("after set_presence=offline: %+v %v", p, err)
	}
	if _, err := alice.SyncRequest(ctx, 0, "", "", false, event.PresenceUnavailable); err != nil {
		t.Fatal(err)
	}
	if p, err := bob.GetPresence(ctx, alice.UserID); err != nil || p.Presence != event.PresenceUnavailable {
		t.Fatalf("after set_presence=unavailable: %+v %v", p, err)
	}
	if _, err := alice.SyncRequest(ctx, 0, "", "", false, ""); err != nil {
		t.Fatal(err)
	}
	if p, err := bob.GetPresence(ctx, alice.UserID); err != nil || p.Presence != event.PresenceOnline {
		t.Fatalf("after a plain sync: %+v %v", p, err)
	}
}

// Lazy-loaded members in /sync: only the timeline senders' member events.
func TestSyncLazyMembers(t *testing.T) {
	srv := startOpen(t)
	ctx := context.Background()
	alice := register(t, srv, "alicell", defaultPassword)
	room, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat"})
	if err != nil {
		t.Fatal(err)
	}
	var others []*mautrix.Client
	for i := range 4 {
		c := register(t, srv, fmt.Sprintf("lazy%d", i), defaultPassword)
		if _, err := c.JoinRoomByID(ctx, room.RoomID); err != nil {
			t.Fatal(err)
		}
		others = append(others, c)
	}
	for range 12 {
		if _, err := others[0].SendText(ctx, room.RoomID, "talk"); err != nil {
			t.Fatal(err)
		}
	}
	f, err := alice.CreateFilter(ctx, &mautrix.Filter{Room: &mautrix.RoomFilter{State: &mautrix.FilterPart{LazyLoadMembers: true}}})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := alice.SyncRequest(ctx, 0, "", f.FilterID, false, "")
	if err != nil {
		t.Fatal(err)
	}
	members := map[string]bool{}
	jr := resp.Rooms.Join[room.RoomID]
	for _, e := range append(append([]*event.Event{}, jr.State.Events...), jr.Timeline.Events...) {
		if e.Type == event.StateMember {
			members[*e.StateKey] = true
		}
	}
	if !members[string(others[0].UserID)] || !members[string(alice.UserID)] || members[string(others[3].UserID)] {
		t.Fatalf("lazy members %v: want the sender and the syncing user only", members)
	}
}
