package e2eappservice

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/internal/testserver"
)

func TestBatchSend(t *testing.T) {
	reg := writeFile(t, registration("bridge", asToken, hsToken, "@_bridge_.*:localhost"))
	// Without federation: the remote member invited below is stored here
	// alone (with federation, remote.example would have to sign the invite).
	srv := testserver.Start(t, testserver.Options{Args: []string{"--appservice", reg, "--no-federation"}})
	ctx := context.Background()

	bot, err := mautrix.NewClient(srv.URL, "@bridgebot:localhost", asToken)
	if err != nil {
		t.Fatal(err)
	}
	ghosts := []id.UserID{"@_bridge_alice:localhost", "@_bridge_bob:localhost"}
	for _, g := range ghosts {
		code, body := do(t, srv, "POST", "/_matrix/client/v3/register", asToken, map[string]any{
			"type": "m.login.application_service", "username": g.Localpart(), "inhibit_login": true})
		if code != 200 {
			t.Fatalf("register %s: %d %v", g, code, body)
		}
	}
	room, err := bot.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat"})
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range ghosts {
		code, body := do(t, srv, "POST", fmt.Sprintf("/_matrix/client/v3/rooms/%s/join?user_id=%s",
			url.PathEscape(string(room.RoomID)), url.QueryEscape(string(g))), asToken, map[string]any{})
		if code != 200 {
			t.Fatalf("join %s: %d %v", g, code, body)
		}
	}
	user := loginHuman(t, srv)
	if _, err := user.JoinRoomByID(ctx, room.RoomID); err != nil {
		t.Fatal(err)
	}

	msg := func(sender id.UserID, ts int64, text string) *event.Event {
		return &event.Event{Type: event.EventMessage, Sender: sender, Timestamp: ts,
			Content: event.Content{Raw: map[string]any{"msgtype": "m.text", "body": text}}}
	}
	batchPath := fmt.Sprintf("/_matrix/client/unstable/com.beeper.backfill/rooms/%s/batch_send", url.PathEscape(string(room.RoomID)))

	// Rejections leave nothing behind: the room has no messages afterwards.
	bad := []struct {
		name  string
		token string
		body  map[string]any
		code  int
		errc  string
	}{
		{"a user", user.AccessToken, map[string]any{"forward": true, "events": []any{msg(ghosts[0], 1, "x")}}, 403, "M_FORBIDDEN"},
		{"sender outside the namespace", asToken, map[string]any{"forward": true,
			"events": []any{msg(ghosts[0], 1, "ok"), msg("@human:localhost", 2, "not yours")}}, 403, "M_FORBIDDEN"},
		{"sender not in the room", asToken, map[string]any{"forward": true,
			"events": []any{msg(ghosts[0], 1, "ok"), msg("@_bridge_stranger:localhost", 2, "not joined")}}, 403, "M_FORBIDDEN"},
		{"state in a backward batch", asToken, map[string]any{"forward": false, "events": []any{msg(ghosts[0], 1, "ok"),
			map[string]any{"type": "m.room.topic", "state_key": "", "sender": ghosts[0], "content": map[string]any{"topic": "t"}}}},
			400, "M_INVALID_PARAM"},
		{"no content", asToken, map[string]any{"forward": true, "events": []any{map[string]any{
			"type": "m.room.message", "sender": ghosts[0]}}}, 400, "M_BAD_JSON"},
		{"redaction", asToken, map[string]any{"forward": true, "events": []any{map[string]any{
			"type": "m.room.redaction", "sender": ghosts[0], "content": map[string]any{"redacts": "$x"}}}}, 400, "M_INVALID_PARAM"},
		{"mark_read_by not in the room", asToken, map[string]any{"forward": true, "mark_read_by": "@nobody:localhost",
			"events": []any{msg(ghosts[0], 1, "x")}}, 403, "M_FORBIDDEN"},
		// Canonical JSON, which events are signed in, has no floats.
		{"a float in content", asToken, map[string]any{"forward": true, "events": []any{msg(ghosts[0], 1, "ok"),
			map[string]any{"type": "m.room.message", "sender": ghosts[0], "content": map[string]any{"body": "x", "n": 0.5}}}},
			400, "M_BAD_JSON"},
	}
	for _, b := range bad {
		code, body := do(t, srv, "POST", batchPath, b.token, b.body)
		if code != b.code || body["errcode"] != b.errc {
			t.Fatalf("%s: %d %v", b.name, code, body)
		}
	}
	for name, raw := range map[string]string{
		"invalid UTF-8":  "{\"forward\":true,\"events\":[{\"type\":\"m.room.message\",\"sender\":\"" + string(ghosts[0]) + "\",\"content\":{\"body\":\"\xff\"}}]}",
		"lone surrogate": `{"forward":true,"events":[{"type":"m.room.message","sender":"` + string(ghosts[0]) + `","content":{"body":"\ud800"}}]}`,
		"duplicate keys": `{"forward":true,"events":[{"type":"m.room.message","sender":"` + string(ghosts[0]) + `","content":{"body":"a","body":"b"}}]}`,
	} {
		code, body := do(t, srv, "POST", batchPath, asToken, raw)
		if code != 400 || (body["errcode"] != "M_BAD_JSON" && body["errcode"] != "M_NOT_JSON") {
			t.Fatalf("batch with %s: %d %v", name, code, body)
		}
	}
	page, err := user.Messages(ctx, room.RoomID, "", "", mautrix.DirectionBackward, nil, 100)
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range page.Chunk {
		if ev.Type == event.EventMessage {
			t.Fatalf("a rejected batch left %s behind", ev.ID)
		}
	}

	// An empty room takes a backward batch as a forward one
	// (forward_if_no_messages), as bridges' first backfill sends it.
	const n = 1000
	const base = int64(1_400_000_000_000)
	var evs []*event.Event
	for i := range n {
		evs = append(evs, msg(ghosts[i%2], base+int64(i)*1000, fmt.Sprintf("history %d", i)))
	}
	resp, err := bot.BeeperBatchSend(ctx, room.RoomID, &mautrix.ReqBeeperBatchSend{ForwardIfNoMessages: true,
		MarkReadBy: user.UserID, Events: evs})
	if err != nil || len(resp.EventIDs) != n {
		t.Fatalf("batch send: %v %+v", err, resp)
	}
	before, err := user.SyncRequest(ctx, 0, "", "", false, "")
	if err != nil {
		t.Fatal(err)
	}
	// The room has messages now: a backward batch goes before them all, as
	// older history (the events of each batch in their own order).
	const m = 300
	var older []*event.Event
	for i := range m {
		older = append(older, msg(ghosts[(i+1)%2], base-int64(m-i)*1000, fmt.Sprintf("older %d", i)))
	}
	oldResp, err := bot.BeeperBatchSend(ctx, room.RoomID, &mautrix.ReqBeeperBatchSend{ForwardIfNoMessages: true, Events: older})
	if err != nil || len(oldResp.EventIDs) != m {
		t.Fatalf("backward batch send: %v %+v", err, oldResp)
	}
	live, err := user.SendText(ctx, room.RoomID, "live")
	if err != nil {
		t.Fatal(err)
	}
	// Syncing clients are not sent the past as news: only the live message.
	after, err := user.SyncRequest(ctx, 0, before.NextBatch, "", false, "")
	if err != nil {
		t.Fatal(err)
	}
	var news []string
	for _, ev := range after.Rooms.Join[room.RoomID].Timeline.Events {
		news = append(news, ev.Content.Raw["body"].(string))
	}
	if len(news) != 1 || news[0] != "live" {
		t.Fatalf("incremental sync after a backward batch got %v", news)
	}

	// The user reads the history back in order, with senders and timestamps.
	var got []*event.Event
	from := ""
	for {
		page, err := user.Messages(ctx, room.RoomID, from, "", mautrix.DirectionBackward, nil, 400)
		if err != nil {
			t.Fatal(err)
		}
		for _, ev := range page.Chunk {
			if ev.Type == event.EventMessage {
				got = append(got, ev)
			}
		}
		if page.End == "" || len(page.Chunk) == 0 {
			break
		}
		from = page.End
	}
	if len(got) != n+m+1 || got[0].ID != live.EventID {
		t.Fatalf("read back %d messages, newest %s (want %d, %s)", len(got), got[0].ID, n+m+1, live.EventID)
	}
	for i := range n {
		ev := got[n-i] // oldest last
		if ev.ID != resp.EventIDs[i] || ev.Sender != ghosts[i%2] || ev.Timestamp != base+int64(i)*1000 ||
			ev.Content.Raw["body"] != fmt.Sprintf("history %d", i) {
			t.Fatalf("event %d read back as %s %s %d %v", i, ev.ID, ev.Sender, ev.Timestamp, ev.Content.Raw["body"])
		}
	}
	for i := range m {
		ev := got[n+m-i]
		if ev.ID != oldResp.EventIDs[i] || ev.Sender != ghosts[(i+1)%2] || ev.Timestamp != base-int64(m-i)*1000 ||
			ev.Content.Raw["body"] != fmt.Sprintf("older %d", i) {
			t.Fatalf("older event %d read back as %s %s %d %v", i, ev.ID, ev.Sender, ev.Timestamp, ev.Content.Raw["body"])
		}
	}

	// mark_read_by (the real user, as bridges send it) left a read receipt
	// on the last event of the forward batch.
	code, raw := srv.DoRaw(t, "GET", "/_matrix/client/v3/sync?timeout=0", user.AccessToken, nil)
	if code != 200 {
		t.Fatalf("sync: %d", code)
	}
	var sync struct {
		Rooms struct {
			Join map[id.RoomID]struct {
				Ephemeral struct {
					Events []struct {
						Type    string                                      `json:"type"`
						Content map[id.EventID]map[string]map[id.UserID]any `json:"content"`
					} `json:"events"`
				} `json:"ephemeral"`
			} `json:"join"`
		} `json:"rooms"`
	}
	if err := json.Unmarshal(raw, &sync); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, e := range sync.Rooms.Join[room.RoomID].Ephemeral.Events {
		if e.Type == "m.receipt" && e.Content[resp.EventIDs[n-1]]["m.read"][user.UserID] != nil {
			found = true
		}
	}
	if !found {
		t.Fatalf("no read receipt from mark_read_by in %s", raw)
	}

	// History is this server's local view, off the room's graph, so a room
	// with a user of another server takes it too (it is never sent there).
	if _, err := bot.InviteUser(ctx, room.RoomID, &mautrix.ReqInviteUser{UserID: "@friend:remote.example"}); err != nil {
		t.Fatalf("invite a remote user: %v", err)
	}
	code, body := do(t, srv, "POST", batchPath, asToken, map[string]any{"forward": false,
		"events": []any{msg(ghosts[0], 1, "still local history")}})
	if code != 200 {
		t.Fatalf("backward batch into a room with a remote member: %d %v", code, body)
	}

	// Batch sends are advertised.
	vers, err := user.Versions(ctx)
	if err != nil || !vers.UnstableFeatures["com.beeper.batch_sending"] {
		t.Fatalf("versions: %v %+v", err, vers)
	}
}
