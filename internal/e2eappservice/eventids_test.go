package e2eappservice

import (
	"context"
	"slices"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

// TestBatchSendEventIDs: mautrix bridges name the events they batch send
// and keep referring to them by those names; the names stand for the real
// events in what the bridge sends later and in what it is sent.
func TestBatchSendEventIDs(t *testing.T) {
	ctx := context.Background()
	as, srv, raw := startEphemeralAS(t, "aliases", false)
	human := loginHuman(t, srv)
	room, err := human.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat"})
	if err != nil {
		t.Fatal(err)
	}
	ghostA, ghostB := as.Intent("@_eph_a:localhost"), as.Intent("@_eph_b:localhost")
	if err := ghostA.EnsureJoined(ctx, room.RoomID); err != nil {
		t.Fatal(err)
	}
	if err := ghostB.EnsureJoined(ctx, room.RoomID); err != nil {
		t.Fatal(err)
	}
	const m0, m1, r1 = id.EventID("$m0:backfill.test"), id.EventID("$m1:backfill.test"), id.EventID("$r1:backfill.test")
	text := func(body string) map[string]any { return map[string]any{"msgtype": "m.text", "body": body} }
	reply := text("a reply")
	reply["m.relates_to"] = map[string]any{"m.in_reply_to": map[string]any{"event_id": m0}}
	batch := []*event.Event{
		{ID: m0, Type: event.EventMessage, Sender: ghostA.UserID, Timestamp: 1_500_000_000_000, Content: event.Content{Raw: text("first")}},
		{ID: m1, Type: event.EventMessage, Sender: ghostB.UserID, Timestamp: 1_500_000_001_000, Content: event.Content{Raw: reply}},
		{ID: r1, Type: event.EventReaction, Sender: ghostA.UserID, Timestamp: 1_500_000_002_000, Content: event.Content{Raw: map[string]any{
			"m.relates_to": map[string]any{"rel_type": "m.annotation", "event_id": m1, "key": "👍"}}}},
	}
	resp, err := as.BotClient().BeeperBatchSend(ctx, room.RoomID, &mautrix.ReqBeeperBatchSend{Forward: true, Events: batch})
	if err != nil || len(resp.EventIDs) != 3 {
		t.Fatalf("batch send: %v %+v", err, resp)
	}
	real0, real1, realR := resp.EventIDs[0], resp.EventIDs[1], resp.EventIDs[2]
	if real0 == m0 {
		t.Fatal("the server kept a chosen event ID as the real one")
	}
	// References inside the batch point at the real events.
	got1, err := human.GetEvent(ctx, room.RoomID, real1)
	if err != nil {
		t.Fatal(err)
	}
	if r := got1.Content.Raw["m.relates_to"].(map[string]any)["m.in_reply_to"].(map[string]any)["event_id"]; r != string(real0) {
		t.Fatalf("reply points at %v, want %s", r, real0)
	}
	gotR, err := human.GetEvent(ctx, room.RoomID, realR)
	if err != nil || gotR.Content.Raw["m.relates_to"].(map[string]any)["event_id"] != string(real1) {
		t.Fatalf("reaction %v %+v", err, gotR)
	}

	// The bridge later edits, redacts and marks read by its names.
	edit := text("* edited")
	edit["m.new_content"] = text("edited")
	edit["m.relates_to"] = map[string]any{"rel_type": "m.replace", "event_id": m1}
	editResp, err := ghostB.SendMessageEvent(ctx, room.RoomID, event.EventMessage, edit)
	if err != nil {
		t.Fatal(err)
	}
	gotEdit, err := human.GetEvent(ctx, room.RoomID, editResp.EventID)
	if err != nil || gotEdit.Content.Raw["m.relates_to"].(map[string]any)["event_id"] != string(real1) {
		t.Fatalf("edit %v %+v", err, gotEdit)
	}
	if _, err := ghostA.RedactEvent(ctx, room.RoomID, r1); err != nil {
		t.Fatalf("redact by alias: %v", err)
	}
	if redacted, err := human.GetEvent(ctx, room.RoomID, realR); err != nil || redacted.Unsigned.RedactedBecause == nil {
		t.Fatalf("the reaction was not redacted: %v %+v", err, redacted)
	}
	if err := ghostA.MarkRead(ctx, room.RoomID, m1); err != nil {
		t.Fatalf("receipt by alias: %v", err)
	}
	// A name is taken once.
	if _, err := as.BotClient().BeeperBatchSend(ctx, room.RoomID, &mautrix.ReqBeeperBatchSend{Forward: true,
		Events: []*event.Event{{ID: m0, Type: event.EventMessage, Sender: ghostA.UserID, Content: event.Content{Raw: text("again")}}}}); err == nil {
		t.Fatal("an event ID alias was taken twice")
	}

	// What the bridge is sent refers to its names: a user's reply to the
	// first message arrives as a reply to m0.
	humanReply := text("replying")
	humanReply["m.relates_to"] = map[string]any{"m.in_reply_to": map[string]any{"event_id": real0}}
	if _, err := human.SendMessageEvent(ctx, room.RoomID, event.EventMessage, humanReply); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the user's reply", raw, func(txn map[string]any) bool {
		evs, _ := txn["events"].([]any)
		return slices.ContainsFunc(evs, func(ev any) bool {
			content, _ := ev.(map[string]any)["content"].(map[string]any)
			if content["body"] != "replying" {
				return false
			}
			to := content["m.relates_to"].(map[string]any)["m.in_reply_to"].(map[string]any)["event_id"]
			if to != string(m0) {
				t.Fatalf("the bridge was sent a reply to %v, want %s", to, m0)
			}
			return true
		})
	})
}
