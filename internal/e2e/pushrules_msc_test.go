package e2e

import (
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/internal/testserver"
)

// notifications is a room's notification count in a sync from since, the
// main timeline's and every thread's together.
func notifications(t *testing.T, srv *testserver.Server, token string, room id.RoomID, since string) (float64, string) {
	t.Helper()
	code, res := srv.Do(t, "GET", "/_matrix/client/v3/sync?since="+url.QueryEscape(since), token, nil)
	if code != 200 {
		t.Fatalf("sync: %d %v", code, res)
	}
	jr, _ := res["rooms"].(map[string]any)["join"].(map[string]any)[string(room)].(map[string]any)
	var n float64
	if un, ok := jr["unread_notifications"].(map[string]any); ok {
		n, _ = un["notification_count"].(float64)
	}
	threads, _ := jr["unread_thread_notifications"].(map[string]any)
	for _, th := range threads {
		c, _ := th.(map[string]any)["notification_count"].(float64)
		n += c
	}
	return n, res["next_batch"].(string)
}

func ruleIDsOf(t *testing.T, global map[string]any, kind string) []string {
	t.Helper()
	list, ok := global[kind].([]any)
	if !ok {
		t.Fatalf("push rules lack kind %s: %v", kind, global)
	}
	var out []string
	for _, r := range list {
		out = append(out, r.(map[string]any)["rule_id"].(string))
	}
	return out
}

// TestPushRulesPostContentAndPolls: the postcontent kind is listed and
// holds only server rules (MSC4306: custom ones are 400 M_INVALID_PARAM);
// the poll rules of MSC3930 are among the defaults and act: a poll
// response does not notify, a poll start does.
func TestPushRulesPostContentAndPolls(t *testing.T) {
	srv := startOpen(t)
	ctx := t.Context()
	alice := register(t, srv, "alice", defaultPassword)
	bob := register(t, srv, "bob", defaultPassword)
	code, global := srv.Do(t, "GET", "/_matrix/client/v3/pushrules/global/", bob.AccessToken, nil)
	wantStatus(t, "push rules", code, global, http.StatusOK, "")
	if over := ruleIDsOf(t, global, "override"); over[len(over)-1] != ".org.matrix.msc3930.rule.poll_response" {
		t.Fatalf("override rules %v", over)
	}
	under := ruleIDsOf(t, global, "underride")
	if !slices.Equal(under[len(under)-4:], []string{".org.matrix.msc3930.rule.poll_start_one_to_one",
		".org.matrix.msc3930.rule.poll_start", ".org.matrix.msc3930.rule.poll_end_one_to_one", ".org.matrix.msc3930.rule.poll_end"}) {
		t.Fatalf("underride rules %v", under)
	}
	if pc := ruleIDsOf(t, global, "postcontent"); len(pc) != 0 {
		t.Fatalf("postcontent without thread subscriptions: %v", pc)
	}
	code, res := srv.Do(t, "PUT", "/_matrix/client/v3/pushrules/global/postcontent/mine", bob.AccessToken,
		map[string]any{"actions": []any{"notify"}, "conditions": []any{}})
	wantStatus(t, "custom postcontent rule", code, res, http.StatusBadRequest, "M_INVALID_PARAM")
	code, res = srv.Do(t, "GET", "/_matrix/client/v3/pushrules/global/postcontent/mine", bob.AccessToken, nil)
	wantStatus(t, "unknown postcontent rule", code, res, http.StatusNotFound, "M_NOT_FOUND")
	// The poll rules are rules like others: a user may turn one off.
	code, res = srv.Do(t, "PUT", "/_matrix/client/v3/pushrules/global/underride/.org.matrix.msc3930.rule.poll_end/enabled",
		bob.AccessToken, map[string]any{"enabled": false})
	wantStatus(t, "disabling poll_end", code, res, http.StatusOK, "")

	room, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bob.JoinRoomByID(ctx, room.RoomID); err != nil {
		t.Fatal(err)
	}
	carol := register(t, srv, "carol", defaultPassword)
	if _, err := carol.JoinRoomByID(ctx, room.RoomID); err != nil {
		t.Fatal(err)
	}
	since := syncOnce(t, bob, "", 0).NextBatch
	for _, tc := range []struct {
		evType string
		want   float64
	}{
		{"org.matrix.msc3381.poll.start", 1},
		{"org.matrix.msc3381.poll.response", 1},
		{"org.matrix.msc3381.poll.end", 1},
	} {
		if _, err := alice.SendMessageEvent(ctx, room.RoomID, event.Type{Type: tc.evType, Class: event.MessageEventType},
			map[string]any{"org.matrix.msc3381.poll.response": map[string]any{}}); err != nil {
			t.Fatal(err)
		}
		var n float64
		n, _ = notifications(t, srv, bob.AccessToken, room.RoomID, since)
		if n != tc.want {
			t.Fatalf("after a %s: %v notifications, want %v", tc.evType, n, tc.want)
		}
	}
}

// TestThreadSubscriptions: MSC4306 with push.thread_subscriptions on —
// the endpoints, automatic subscriptions ordered against unsubscriptions,
// and threads notifying their subscribers only.
func TestThreadSubscriptions(t *testing.T) {
	off := startOpen(t)
	offUser := register(t, off, "alice", defaultPassword)
	code, res := off.Do(t, "GET", "/_matrix/client/versions", "", nil)
	if feats, _ := res["unstable_features"].(map[string]any); code != 200 || feats["org.matrix.msc4306"] != nil {
		t.Fatalf("msc4306 advertised while off: %v", res)
	}
	code, res = off.Do(t, "GET", "/_matrix/client/unstable/io.element.msc4306/rooms/!r:localhost/thread/$e/subscription",
		offUser.AccessToken, nil)
	wantStatus(t, "subscriptions while off", code, res, http.StatusNotFound, "M_UNRECOGNIZED")

	cfg := filepath.Join(t.TempDir(), "threads.yaml")
	if err := os.WriteFile(cfg, []byte("push:\n  thread_subscriptions: true\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	srv := startOpen(t, "--config", cfg)
	ctx := t.Context()
	code, res = srv.Do(t, "GET", "/_matrix/client/versions", "", nil)
	if feats, _ := res["unstable_features"].(map[string]any); code != 200 || feats["org.matrix.msc4306"] != true {
		t.Fatalf("msc4306 not advertised: %v", res)
	}
	alice := register(t, srv, "alice", defaultPassword)
	bob := register(t, srv, "bob", defaultPassword)
	code, global := srv.Do(t, "GET", "/_matrix/client/v3/pushrules/global/", bob.AccessToken, nil)
	wantStatus(t, "push rules", code, global, http.StatusOK, "")
	if pc := ruleIDsOf(t, global, "postcontent"); !slices.Equal(pc, []string{".io.element.msc4306.rule.unsubscribed_thread",
		".io.element.msc4306.rule.subscribed_thread"}) {
		t.Fatalf("postcontent rules %v", pc)
	}
	created, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat"})
	if err != nil {
		t.Fatal(err)
	}
	room := created.RoomID
	if _, err := bob.JoinRoomByID(ctx, room); err != nil {
		t.Fatal(err)
	}
	root, err := alice.SendText(ctx, room, "root")
	if err != nil {
		t.Fatal(err)
	}
	reply := func(body string) id.EventID {
		t.Helper()
		r, err := alice.SendMessageEvent(ctx, room, event.EventMessage, map[string]any{"msgtype": "m.text", "body": body,
			"m.relates_to": map[string]any{"rel_type": "m.thread", "event_id": root.EventID}})
		if err != nil {
			t.Fatal(err)
		}
		return r.EventID
	}
	subPath := fmt.Sprintf("/_matrix/client/unstable/io.element.msc4306/rooms/%s/thread/%s/subscription",
		url.PathEscape(string(room)), url.PathEscape(string(root.EventID)))
	since := syncOnce(t, bob, "", 0).NextBatch
	// Bob has read the root (the main timeline's counts stay out of it).
	if err := bob.SendReceipt(ctx, room, root.EventID, event.ReceiptTypeRead, nil); err != nil {
		t.Fatal(err)
	}

	// Unsubscribed: a thread reply does not notify bob.
	first := reply("unheard")
	if n, _ := notifications(t, srv, bob.AccessToken, room, since); n != 0 {
		t.Fatalf("a reply in an unsubscribed thread notified (%v)", n)
	}
	code, res = srv.Do(t, "GET", subPath, bob.AccessToken, nil)
	wantStatus(t, "no subscription yet", code, res, http.StatusNotFound, "M_NOT_FOUND")
	code, res = srv.Do(t, "PUT", subPath, bob.AccessToken, map[string]any{})
	wantStatus(t, "manual subscription", code, res, http.StatusOK, "")
	code, res = srv.Do(t, "GET", subPath, bob.AccessToken, nil)
	if code != 200 || res["automatic"] != false {
		t.Fatalf("subscription %d %v", code, res)
	}
	reply("heard")
	if n, _ := notifications(t, srv, bob.AccessToken, room, since); n != 1 {
		t.Fatalf("a reply in a subscribed thread gave %v notifications, want 1", n)
	}

	// Unsubscribing wins over an automatic subscription caused by an
	// event the server had before it.
	code, res = srv.Do(t, "DELETE", subPath, bob.AccessToken, nil)
	wantStatus(t, "unsubscribe", code, res, http.StatusOK, "")
	code, res = srv.Do(t, "DELETE", subPath, bob.AccessToken, nil)
	wantStatus(t, "unsubscribe twice", code, res, http.StatusOK, "")
	code, res = srv.Do(t, "GET", subPath, bob.AccessToken, nil)
	wantStatus(t, "after unsubscribing", code, res, http.StatusNotFound, "M_NOT_FOUND")
	code, res = srv.Do(t, "PUT", subPath, bob.AccessToken, map[string]any{"automatic": first})
	wantStatus(t, "automatic subscription older than the unsubscription", code, res, http.StatusConflict,
		"IO.ELEMENT.MSC4306.M_CONFLICTING_UNSUBSCRIPTION")
	code, res = srv.Do(t, "PUT", subPath, bob.AccessToken, map[string]any{"automatic": root.EventID})
	wantStatus(t, "automatic subscription by the root, older too", code, res, http.StatusConflict,
		"IO.ELEMENT.MSC4306.M_CONFLICTING_UNSUBSCRIPTION")
	elsewhere, err := alice.SendText(ctx, room, "main timeline")
	if err != nil {
		t.Fatal(err)
	}
	code, res = srv.Do(t, "PUT", subPath, bob.AccessToken, map[string]any{"automatic": elsewhere.EventID})
	wantStatus(t, "cause outside the thread", code, res, http.StatusBadRequest, "IO.ELEMENT.MSC4306.M_NOT_IN_THREAD")
	newer := reply("mentions bob")
	code, res = srv.Do(t, "PUT", subPath, bob.AccessToken, map[string]any{"automatic": newer})
	wantStatus(t, "automatic subscription newer than the unsubscription", code, res, http.StatusOK, "")
	code, res = srv.Do(t, "GET", subPath, bob.AccessToken, nil)
	if code != 200 || res["automatic"] != true {
		t.Fatalf("subscription %d %v", code, res)
	}
	// A manual subscription over an automatic one makes it manual.
	code, res = srv.Do(t, "PUT", subPath, bob.AccessToken, nil)
	wantStatus(t, "manual over automatic", code, res, http.StatusOK, "")
	if _, res = srv.Do(t, "GET", subPath, bob.AccessToken, nil); res["automatic"] != false {
		t.Fatalf("subscription %v", res)
	}

	// Threads that do not exist, or that the caller cannot see, are 404.
	code, res = srv.Do(t, "PUT", fmt.Sprintf("/_matrix/client/unstable/io.element.msc4306/rooms/%s/thread/%s/subscription",
		url.PathEscape(string(room)), url.PathEscape("$nosuchevent")), bob.AccessToken, map[string]any{})
	wantStatus(t, "unknown thread", code, res, http.StatusNotFound, "M_NOT_FOUND")
	stranger := register(t, srv, "stranger", defaultPassword)
	code, res = srv.Do(t, "PUT", subPath, stranger.AccessToken, map[string]any{})
	if code != http.StatusNotFound && code != http.StatusForbidden {
		t.Fatalf("a stranger subscribing: %d %v", code, res)
	}
}
