package e2e

import (
	"context"
	"net/http"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

func counts(t *testing.T, resp *mautrix.RespSync, room id.RoomID) (int, int) {
	t.Helper()
	jr, ok := resp.Rooms.Join[room]
	if !ok || jr.UnreadNotifications == nil {
		t.Fatalf("room %s missing from sync or without counts", room)
	}
	return jr.UnreadNotifications.NotificationCount, jr.UnreadNotifications.HighlightCount
}

func TestPushRulesAndUnreadCounts(t *testing.T) {
	srv := startOpen(t)
	ctx := context.Background()
	alice := register(t, srv, "alicen", defaultPassword)
	bob := register(t, srv, "bobn", defaultPassword)

	rules, err := bob.GetPushRules(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(rules.Override) == 0 || rules.Override[0].RuleID != ".m.rule.master" || len(rules.Underride) == 0 {
		t.Fatalf("default rules: %+v", rules)
	}
	initial := syncOnce(t, bob, "", 0)
	hasRules := false
	for _, e := range initial.AccountData.Events {
		hasRules = hasRules || e.Type.Type == "m.push_rules"
	}
	if !hasRules {
		t.Fatal("initial sync lacks m.push_rules")
	}

	room, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "trusted_private_chat", IsDirect: true,
		Invite: []id.UserID{bob.UserID}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bob.JoinRoomByID(ctx, room.RoomID); err != nil {
		t.Fatal(err)
	}
	tok := syncOnce(t, bob, "", 0).NextBatch
	if _, err := alice.SendText(ctx, room.RoomID, "one"); err != nil {
		t.Fatal(err)
	}
	mention, err := alice.SendMessageEvent(ctx, room.RoomID, event.EventMessage, map[string]any{
		"msgtype": "m.text", "body": "hey bob", "m.mentions": map[string]any{"user_ids": []id.UserID{bob.UserID}}})
	if err != nil {
		t.Fatal(err)
	}
	resp := syncOnce(t, bob, tok, 0)
	if n, h := counts(t, resp, room.RoomID); n != 2 || h != 1 {
		t.Fatalf("counts after a message and a mention: %d notifications, %d highlights", n, h)
	}
	// A notice does not notify.
	if _, err := alice.SendNotice(ctx, room.RoomID, "beep"); err != nil {
		t.Fatal(err)
	}
	resp = syncOnce(t, bob, resp.NextBatch, 0)
	if n, _ := counts(t, resp, room.RoomID); n != 2 {
		t.Fatalf("a notice changed the count to %d", n)
	}
	// Reading resets.
	if err := bob.SendReceipt(ctx, room.RoomID, mention.EventID, event.ReceiptTypeRead, nil); err != nil {
		t.Fatal(err)
	}
	resp = syncOnce(t, bob, resp.NextBatch, 0)
	if n, h := counts(t, resp, room.RoomID); n != 0 || h != 0 {
		t.Fatalf("counts after reading: %d, %d", n, h)
	}
	// Thread replies count per thread.
	if _, err := alice.SendMessageEvent(ctx, room.RoomID, event.EventMessage, map[string]any{"msgtype": "m.text",
		"body": "in thread", "m.relates_to": map[string]any{"rel_type": "m.thread", "event_id": mention.EventID}}); err != nil {
		t.Fatal(err)
	}
	code, raw := srv.Do(t, "GET", "/_matrix/client/v3/sync?since="+resp.NextBatch, bob.AccessToken, nil)
	if code != 200 {
		t.Fatalf("sync: %d %v", code, raw)
	}
	joinedRooms, _ := raw["rooms"].(map[string]any)["join"].(map[string]any)
	threads, _ := joinedRooms[string(room.RoomID)].(map[string]any)["unread_thread_notifications"].(map[string]any)
	if th, _ := threads[string(mention.EventID)].(map[string]any); th == nil || th["notification_count"] != 1.0 {
		t.Fatalf("thread counts %v", threads)
	}
	resp = syncOnce(t, bob, resp.NextBatch, 0)

	// A user rule muting the room stops counting.
	code, body := srv.Do(t, "PUT", "/_matrix/client/v3/pushrules/global/room/"+string(room.RoomID), bob.AccessToken,
		map[string]any{"actions": []any{}})
	wantStatus(t, "put room rule", code, body, http.StatusOK, "")
	if _, err := alice.SendText(ctx, room.RoomID, "muted"); err != nil {
		t.Fatal(err)
	}
	resp = syncOnce(t, bob, resp.NextBatch, 0)
	if n, _ := counts(t, resp, room.RoomID); n != 0 {
		t.Fatalf("muted room counted %d", n)
	}
	base := "/_matrix/client/v3/pushrules/global/"
	code, body = srv.Do(t, "GET", base+"room/"+string(room.RoomID)+"/enabled", bob.AccessToken, nil)
	if code != 200 || body["enabled"] != true {
		t.Fatalf("enabled: %d %v", code, body)
	}
	code, body = srv.Do(t, "PUT", base+"override/.m.rule.master/enabled", bob.AccessToken, map[string]any{"enabled": true})
	wantStatus(t, "enable master", code, body, http.StatusOK, "")
	code, body = srv.Do(t, "GET", base+"override/.m.rule.master", bob.AccessToken, nil)
	if code != 200 || body["enabled"] != true {
		t.Fatalf("master after enabling: %d %v", code, body)
	}
	code, body = srv.Do(t, "PUT", base+"override/my.rule", bob.AccessToken, map[string]any{"actions": []any{"notify"},
		"conditions": []any{map[string]any{"kind": "event_match", "key": "content.body", "pattern": "*cake*"}}})
	wantStatus(t, "user override", code, body, http.StatusOK, "")
	code, body = srv.Do(t, "PUT", base+"override/my.second?before=my.rule", bob.AccessToken, map[string]any{"actions": []any{}})
	wantStatus(t, "placed before", code, body, http.StatusOK, "")
	rules, err = bob.GetPushRules(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if rules.Override[1].RuleID != "my.second" || rules.Override[2].RuleID != "my.rule" {
		t.Fatalf("override order: %s, %s", rules.Override[1].RuleID, rules.Override[2].RuleID)
	}
	for _, tc := range []struct {
		method, path string
		body         any
		status       int
		code         string
	}{
		{"GET", base + "bogus/x", nil, 400, "M_INVALID_PARAM"},
		{"GET", base + "override/nope", nil, 404, "M_NOT_FOUND"},
		{"DELETE", base + "override/.m.rule.master", nil, 400, "M_INVALID_PARAM"},
		{"PUT", base + "override/.my.rule", map[string]any{"actions": []any{}}, 400, "M_INVALID_PARAM"},
		{"PUT", base + "content/nopattern", map[string]any{"actions": []any{}}, 400, "M_MISSING_PARAM"},
		{"PUT", base + "override/x?before=.m.rule.master", map[string]any{"actions": []any{}}, 400, "M_INVALID_PARAM"},
	} {
		code, body := srv.Do(t, tc.method, tc.path, bob.AccessToken, tc.body)
		wantStatus(t, tc.method+" "+tc.path, code, body, tc.status, tc.code)
	}
	code, body = srv.Do(t, "DELETE", base+"override/my.rule", bob.AccessToken, nil)
	wantStatus(t, "delete user rule", code, body, http.StatusOK, "")
	code, body = srv.Do(t, "DELETE", base+"override/my.rule", bob.AccessToken, nil)
	wantStatus(t, "delete again", code, body, http.StatusNotFound, "M_NOT_FOUND")
}
