package e2e

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

func syncOnce(t *testing.T, cli *mautrix.Client, since string, timeout int) *mautrix.RespSync {
	t.Helper()
	resp, err := cli.SyncRequest(context.Background(), timeout, since, "", false, "")
	if err != nil {
		t.Fatalf("sync: %v", err)
	}
	return resp
}

func bodies(evs []*event.Event) []string {
	var out []string
	for _, e := range evs {
		if e.Type == event.EventMessage {
			out = append(out, fmt.Sprint(e.Content.Raw["body"]))
		}
	}
	return out
}

func TestSyncRoomsAndAccountData(t *testing.T) {
	srv := startOpen(t)
	ctx := context.Background()
	alice := register(t, srv, "alices", defaultPassword)
	bob := register(t, srv, "bobs", defaultPassword)

	first := syncOnce(t, bob, "", 0)
	if len(first.Rooms.Join) != 0 || first.NextBatch == "" {
		t.Fatalf("initial sync of a new user: %d rooms, token %q", len(first.Rooms.Join), first.NextBatch)
	}
	room, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "private_chat", Name: "Sync test",
		Invite: []id.UserID{bob.UserID}})
	if err != nil {
		t.Fatal(err)
	}
	// The invite wakes bob's long-poll and shows stripped state.
	inv := syncOnce(t, bob, first.NextBatch, 10000)
	ir, ok := inv.Rooms.Invite[room.RoomID]
	if !ok {
		t.Fatalf("invite not in sync: %+v", inv.Rooms)
	}
	sawName := false
	for _, e := range ir.State.Events {
		if e.Type == event.StateRoomName {
			sawName = true
		}
	}
	if !sawName {
		t.Fatal("invite_state lacks the room name")
	}
	if _, err := bob.JoinRoomByID(ctx, room.RoomID); err != nil {
		t.Fatal(err)
	}
	joined := syncOnce(t, bob, inv.NextBatch, 10000)
	jr, ok := joined.Rooms.Join[room.RoomID]
	if !ok {
		t.Fatal("joined room not in sync")
	}
	stateTypes := map[event.Type]bool{}
	for _, e := range jr.State.Events {
		stateTypes[e.Type] = true
	}
	for _, e := range jr.Timeline.Events {
		stateTypes[e.Type] = true
	}
	if !stateTypes[event.StateCreate] || !stateTypes[event.StatePowerLevels] || !stateTypes[event.StateMember] {
		t.Fatalf("newly joined room lacks its state: %v", stateTypes)
	}

	// Long-poll woken by a message from another user.
	done := make(chan *mautrix.RespSync, 1)
	go func() {
		resp, err := bob.SyncRequest(ctx, 20000, joined.NextBatch, "", false, "")
		if err != nil {
			t.Error(err)
		}
		done <- resp
	}()
	if _, err := alice.SendText(ctx, room.RoomID, "wake up"); err != nil {
		t.Fatal(err)
	}
	var woke *mautrix.RespSync
	select {
	case woke = <-done:
	case <-time.After(15 * time.Second):
		t.Fatal("long-poll not woken by a message")
	}
	if got := bodies(woke.Rooms.Join[room.RoomID].Timeline.Events); len(got) != 1 || got[0] != "wake up" {
		t.Fatalf("woken sync timeline: %v", got)
	}
	// Nothing new: a short timeout returns an empty answer with a token.
	empty := syncOnce(t, bob, woke.NextBatch, 50)
	if len(empty.Rooms.Join) != 0 || empty.NextBatch == "" {
		t.Fatalf("empty sync: %+v", empty.Rooms.Join)
	}

	// A limited timeline: 15 messages with the default limit of 10.
	for i := range 15 {
		if _, err := alice.SendText(ctx, room.RoomID, fmt.Sprintf("m%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	lim := syncOnce(t, bob, empty.NextBatch, 0)
	tl := lim.Rooms.Join[room.RoomID].Timeline
	if !tl.Limited || len(tl.Events) != 10 || tl.PrevBatch == "" {
		t.Fatalf("limited timeline: limited=%v n=%d prev=%q", tl.Limited, len(tl.Events), tl.PrevBatch)
	}
	if got := bodies(tl.Events); got[0] != "m5" || got[9] != "m14" {
		t.Fatalf("limited timeline holds %v", got)
	}
	// The gap is reachable with /messages from prev_batch.
	gap, err := bob.Messages(ctx, room.RoomID, tl.PrevBatch, "", mautrix.DirectionBackward, nil, 5)
	if err != nil {
		t.Fatal(err)
	}
	if got := bodies(gap.Chunk); len(got) != 5 || got[0] != "m4" || got[4] != "m0" {
		t.Fatalf("messages from prev_batch: %v", got)
	}

	// Account data, global and per room.
	if err := bob.SetAccountData(ctx, "com.example.test", map[string]any{"k": 1}); err != nil {
		t.Fatal(err)
	}
	if err := bob.SetRoomAccountData(ctx, room.RoomID, "m.tag", map[string]any{"tags": map[string]any{"u.work": map[string]any{}}}); err != nil {
		t.Fatal(err)
	}
	ad := syncOnce(t, bob, lim.NextBatch, 10000)
	if len(ad.AccountData.Events) != 1 || ad.AccountData.Events[0].Type.Type != "com.example.test" {
		t.Fatalf("global account data: %+v", ad.AccountData.Events)
	}
	if r := ad.Rooms.Join[room.RoomID]; len(r.AccountData.Events) != 1 || r.AccountData.Events[0].Type.Type != "m.tag" {
		t.Fatalf("room account data: %+v", ad.Rooms.Join[room.RoomID])
	}

	// Leaving shows the room under leave, up to the leave event.
	if _, err := bob.LeaveRoom(ctx, room.RoomID); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.SendText(ctx, room.RoomID, "after bob left"); err != nil {
		t.Fatal(err)
	}
	left := syncOnce(t, bob, ad.NextBatch, 0)
	lr, ok := left.Rooms.Leave[room.RoomID]
	if !ok {
		t.Fatalf("left room not in sync: %+v", left.Rooms)
	}
	for _, b := range bodies(lr.Timeline.Events) {
		if b == "after bob left" {
			t.Fatal("a message after the leave reached the leaver")
		}
	}
}

// Reconnecting with an old token gives exactly what was missed, also
// after the server was killed.
func TestSyncResumesAcrossKill(t *testing.T) {
	srv := startOpen(t)
	ctx := context.Background()
	alice := register(t, srv, "alicek", defaultPassword)
	room, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat"})
	if err != nil {
		t.Fatal(err)
	}
	tok := syncOnce(t, alice, "", 0).NextBatch
	for i := range 3 {
		if _, err := alice.SendText(ctx, room.RoomID, fmt.Sprintf("before %d", i)); err != nil {
			t.Fatal(err)
		}
	}
	srv2 := srv.Restart(true)
	alice2 := clientFor(t, srv2, alice.UserID, alice.DeviceID, alice.AccessToken)
	for i := range 2 {
		if _, err := alice2.SendText(ctx, room.RoomID, fmt.Sprintf("after %d", i)); err != nil {
			t.Fatal(err)
		}
	}
	resp := syncOnce(t, alice2, tok, 0)
	got := bodies(resp.Rooms.Join[room.RoomID].Timeline.Events)
	want := []string{"before 0", "before 1", "before 2", "after 0", "after 1"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("missed messages %v, want %v", got, want)
	}
	again := syncOnce(t, alice2, resp.NextBatch, 0)
	if len(again.Rooms.Join) != 0 {
		t.Fatalf("the same events came twice: %+v", again.Rooms.Join)
	}
}

func TestSyncFiltersAndErrors(t *testing.T) {
	srv := startOpen(t)
	ctx := context.Background()
	alice := register(t, srv, "alicef", defaultPassword)
	room, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat"})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 4 {
		if _, err := alice.SendText(ctx, room.RoomID, fmt.Sprintf("f%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	f, err := alice.CreateFilter(ctx, &mautrix.Filter{Room: &mautrix.RoomFilter{Timeline: &mautrix.FilterPart{
		Limit: 2, Types: []event.Type{event.EventMessage}}}})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := alice.SyncRequest(ctx, 0, "", f.FilterID, false, "")
	if err != nil {
		t.Fatal(err)
	}
	tl := resp.Rooms.Join[room.RoomID].Timeline
	if got := bodies(tl.Events); len(tl.Events) != 2 || got[0] != "f2" || got[1] != "f3" || !tl.Limited {
		t.Fatalf("filtered timeline %v limited=%v", got, tl.Limited)
	}
	code, body := srv.Do(t, "GET", "/_matrix/client/v3/user/"+string(alice.UserID)+"/filter/"+f.FilterID, alice.AccessToken, nil)
	if code != 200 || body["room"] == nil {
		t.Fatalf("get filter: %d %v", code, body)
	}
	for _, tc := range []struct{ path, code string }{
		{"/_matrix/client/v3/sync?since=garbage", "M_INVALID_PARAM"},
		{"/_matrix/client/v3/sync?timeout=-1", "M_INVALID_PARAM"},
		{"/_matrix/client/v3/sync?filter=404", "M_NOT_FOUND"},
		{"/_matrix/client/v3/sync?filter=%7Bnot", "M_NOT_JSON"},
	} {
		code, body := srv.Do(t, "GET", tc.path, alice.AccessToken, nil)
		if code < 400 || body["errcode"] != tc.code {
			if !(tc.code == "M_NOT_JSON" && body["errcode"] == "M_BAD_JSON") {
				t.Errorf("%s: %d %v, want %s", tc.path, code, body, tc.code)
			}
		}
	}
	code, body = srv.Do(t, "POST", "/_matrix/client/v3/user/@other:localhost/filter", alice.AccessToken, map[string]any{})
	wantStatus(t, "filter for another user", code, body, 403, "M_FORBIDDEN")
	code, body = srv.Do(t, "GET", "/_matrix/client/v3/sync", "", nil)
	wantStatus(t, "sync without token", code, body, 401, "M_MISSING_TOKEN")
}

// The sender's own device sees the transaction ID of its events (clients
// match local echoes with it); other devices and users do not.
func TestTransactionIDInUnsigned(t *testing.T) {
	srv := startOpen(t)
	ctx := context.Background()
	alice := register(t, srv, "alicetx", defaultPassword)
	other := login(t, srv, passwordLogin("alicetx", defaultPassword))
	room, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat"})
	if err != nil {
		t.Fatal(err)
	}
	sent, err := alice.SendMessageEvent(ctx, room.RoomID, event.EventMessage, map[string]any{"msgtype": "m.text", "body": "echo"},
		mautrix.ReqSendEvent{TransactionID: "my-txn-1"})
	if err != nil {
		t.Fatal(err)
	}
	find := func(resp *mautrix.RespSync) *event.Event {
		for _, e := range resp.Rooms.Join[room.RoomID].Timeline.Events {
			if e.ID == sent.EventID {
				return e
			}
		}
		t.Fatal("message not in sync")
		return nil
	}
	if got := find(syncOnce(t, alice, "", 0)).Unsigned.TransactionID; got != "my-txn-1" {
		t.Fatalf("own device: transaction_id %q", got)
	}
	if got := find(syncOnce(t, other, "", 0)).Unsigned.TransactionID; got != "" {
		t.Fatalf("another device saw transaction_id %q", got)
	}
	msgs, err := alice.Messages(ctx, room.RoomID, "", "", mautrix.DirectionBackward, nil, 1)
	if err != nil || len(msgs.Chunk) != 1 || msgs.Chunk[0].Unsigned.TransactionID != "my-txn-1" {
		t.Fatalf("/messages transaction_id: %v %+v", err, msgs)
	}
}

// A long-poll that times out answers as if asked without a timeout when it
// started: empty, its token moved past what happened elsewhere before it
// parked, with the device's key counts (a parked long-poll keeps only that
// answer's JSON).
func TestSyncLongPollTimesOut(t *testing.T) {
	srv := startOpen(t)
	ctx := context.Background()
	alice := register(t, srv, "alicet", defaultPassword)
	bob := register(t, srv, "bobt", defaultPassword)
	auth := http.Header{"Authorization": {"Bearer " + bob.AccessToken}}
	resp, raw := rawRequest(t, nil, "POST", srv.URL+"/_matrix/client/v3/keys/upload", auth,
		strings.NewReader(`{"one_time_keys":{"curve25519:AAAAAQ":"r3y1lqGuRrrTqH1mx4NPMQnZVr0GUjBqNkq1DwFpYHk","curve25519:AAAAAg":"2KLcbPnZqA8j1yZ4T8Sd9XmNEebgQxCbQQ+Xw2m1J2E"}}`))
	if resp.StatusCode != 200 {
		t.Fatalf("keys upload: HTTP %d %s", resp.StatusCode, raw)
	}
	first := syncOnce(t, bob, "", 0)
	// Alice's room and messages move the events stream; bob sees none of it.
	room, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "private_chat"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := alice.SendText(ctx, room.RoomID, "not for bob"); err != nil {
		t.Fatal(err)
	}
	current := syncOnce(t, alice, "", 0).NextBatch
	start := time.Now()
	resp, raw = rawRequest(t, nil, "GET", srv.URL+"/_matrix/client/v3/sync?timeout=300&since="+url.QueryEscape(first.NextBatch), auth, nil)
	if resp.StatusCode != 200 {
		t.Fatalf("long-poll: HTTP %d %s", resp.StatusCode, raw)
	}
	if waited := time.Since(start); waited < 300*time.Millisecond {
		t.Fatalf("the long-poll answered after %v, before its timeout: %s", waited, raw)
	}
	got := decode(t, raw)
	if got["next_batch"] != current {
		t.Fatalf("timed-out long-poll's next_batch %v, want %s (the token when it parked)", got["next_batch"], current)
	}
	for _, k := range []string{"rooms", "account_data", "presence", "to_device"} {
		if _, ok := got[k]; ok {
			t.Fatalf("timed-out long-poll has %s: %s", k, raw)
		}
	}
	counts, _ := got["device_one_time_keys_count"].(map[string]any)
	if counts["curve25519"] != float64(2) {
		t.Fatalf("timed-out long-poll's key counts: %s", raw)
	}
	// Its token is where the next long-poll starts: nothing for bob since.
	again := syncOnce(t, bob, current, 100)
	if len(again.Rooms.Join)+len(again.Rooms.Invite) != 0 || again.NextBatch != current {
		t.Fatalf("sync from the timed-out token: %+v, token %s", again.Rooms, again.NextBatch)
	}
}
