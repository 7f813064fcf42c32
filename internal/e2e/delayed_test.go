package e2e

import (
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/internal/pgtest"
	"github.com/tributary-hs/tributary/internal/testserver"
)

const delayedPath = "/_matrix/client/unstable/org.matrix.msc4140/delayed_events"

// waitForBody syncs as cli from since until a message with body arrives in
// room, or fails at the deadline; it returns the next since token and how
// many messages with that body the syncs carried.
func waitForBody(t *testing.T, cli *mautrix.Client, room id.RoomID, since, body string) (string, int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	seen := 0
	for time.Now().Before(deadline) {
		resp := syncOnce(t, cli, since, 2000)
		since = resp.NextBatch
		if jr, ok := resp.Rooms.Join[room]; ok {
			for _, b := range bodies(jr.Timeline.Events) {
				if b == body {
					seen++
				}
			}
		}
		if seen > 0 {
			return since, seen
		}
	}
	t.Fatalf("%s never saw %q in %s", cli.UserID, body, room)
	return "", 0
}

// scheduleMessage sends a delayed message and returns its delay ID.
func scheduleMessage(t *testing.T, srv *testserver.Server, cli *mautrix.Client, room id.RoomID, txn, body string, delay time.Duration) string {
	t.Helper()
	st, res := srv.Do(t, "PUT", fmt.Sprintf("/_matrix/client/v3/rooms/%s/send/m.room.message/%s?org.matrix.msc4140.delay=%d",
		url.PathEscape(string(room)), txn, delay.Milliseconds()), cli.AccessToken, map[string]any{"msgtype": "m.text", "body": body})
	wantStatus(t, "scheduling "+body, st, res, http.StatusOK, "")
	if _, has := res["event_id"]; has {
		t.Fatalf("a delayed send answered an event ID: %v", res)
	}
	return str(t, res, "delay_id")
}

// listDelayed lists the caller's delayed events by delay ID.
func listDelayed(t *testing.T, srv *testserver.Server, token string) map[string]map[string]any {
	t.Helper()
	st, res := srv.Do(t, "GET", delayedPath, token, nil)
	wantStatus(t, "listing delayed events", st, res, http.StatusOK, "")
	out := map[string]map[string]any{}
	list, _ := res["delayed_events"].([]any)
	for _, e := range list {
		m := e.(map[string]any)
		out[m["delay_id"].(string)] = m
	}
	return out
}

// TestDelayedEvents: MSC4140 through the binary, on SQLite and PostgreSQL:
// scheduling, firing on time, the management actions, the owner's rights,
// limits, state set by someone else cancelling delayed state, and
// delayed events surviving a kill -9.
func TestDelayedEvents(t *testing.T) {
	for _, backend := range []string{"sqlite", "postgres"} {
		t.Run(backend, func(t *testing.T) {
			var args []string
			if backend == "postgres" {
				args = []string{"--database-url", pgtest.URL(t)}
			}
			testDelayedEvents(t, startOpen(t, args...))
		})
	}
}

func testDelayedEvents(t *testing.T, srv *testserver.Server) {
	ctx := t.Context()
	st, res := srv.Do(t, "GET", "/_matrix/client/versions", "", nil)
	if feats, _ := res["unstable_features"].(map[string]any); st != 200 || feats["org.matrix.msc4140"] != true {
		t.Fatalf("versions does not advertise org.matrix.msc4140: %v", res)
	}
	alice := register(t, srv, "alice", defaultPassword)
	bob := register(t, srv, "bob", defaultPassword)
	created, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat"})
	if err != nil {
		t.Fatal(err)
	}
	room := created.RoomID
	if _, err := bob.JoinRoomByID(ctx, room); err != nil {
		t.Fatal(err)
	}
	since := syncOnce(t, bob, "", 0).NextBatch

	// A short delay: the message arrives by itself, once, and a repeated
	// request with the same transaction ID is the same delayed event.
	soon := scheduleMessage(t, srv, alice, room, "t1", "soon", 300*time.Millisecond)
	if again := scheduleMessage(t, srv, alice, room, "t1", "soon", 300*time.Millisecond); again != soon {
		t.Fatalf("the same transaction scheduled another delayed event: %s, then %s", soon, again)
	}
	since, n := waitForBody(t, bob, room, since, "soon")
	if n != 1 {
		t.Fatalf("the delayed message arrived %d times", n)
	}

	// A long one is listed with what it will send, and cancelled.
	later := scheduleMessage(t, srv, alice, room, "t2", "later", time.Hour)
	got := listDelayed(t, srv, alice.AccessToken)[later]
	if got == nil || got["room_id"] != string(room) || got["type"] != "m.room.message" || got["delay"] != float64(3600000) ||
		got["content"].(map[string]any)["body"] != "later" || got["running_since"] == nil {
		t.Fatalf("listed: %v", got)
	}
	if len(listDelayed(t, srv, bob.AccessToken)) != 0 {
		t.Fatal("bob sees alice's delayed events")
	}
	// Only the owner may act on the older path; others are told it does not exist.
	st, res = srv.Do(t, "POST", delayedPath+"/"+later, bob.AccessToken, map[string]any{"action": "cancel"})
	wantStatus(t, "bob cancelling alice's", st, res, http.StatusNotFound, "M_NOT_FOUND")
	st, res = srv.Do(t, "POST", delayedPath+"/"+later, alice.AccessToken, map[string]any{"action": "explode"})
	wantStatus(t, "unknown action", st, res, http.StatusBadRequest, "M_INVALID_PARAM")
	st, res = srv.Do(t, "POST", delayedPath+"/"+later, alice.AccessToken, map[string]any{})
	wantStatus(t, "no action", st, res, http.StatusBadRequest, "M_MISSING_PARAM")
	st, res = srv.Do(t, "POST", delayedPath+"/"+later, alice.AccessToken, map[string]any{"action": "cancel"})
	wantStatus(t, "cancel", st, res, http.StatusOK, "")
	if _, ok := listDelayed(t, srv, alice.AccessToken)[later]; ok {
		t.Fatal("a cancelled delayed event is still listed")
	}
	st, res = srv.Do(t, "POST", delayedPath+"/"+later+"/cancel", "", nil)
	wantStatus(t, "cancelling twice", st, res, http.StatusNotFound, "M_NOT_FOUND")

	// Restart (without a login: the delay ID is the capability) starts the
	// delay again; send sends at once.
	restartMe := scheduleMessage(t, srv, alice, room, "t3", "restarted", time.Hour)
	before := listDelayed(t, srv, alice.AccessToken)[restartMe]["running_since"].(float64)
	st, res = srv.Do(t, "POST", delayedPath+"/"+restartMe+"/restart", "", nil)
	wantStatus(t, "restart", st, res, http.StatusOK, "")
	if after := listDelayed(t, srv, alice.AccessToken)[restartMe]["running_since"].(float64); after < before {
		t.Fatalf("running_since went from %v to %v on restart", before, after)
	}
	st, res = srv.Do(t, "POST", delayedPath+"/"+restartMe+"/send", "", nil)
	wantStatus(t, "send now", st, res, http.StatusOK, "")
	since, _ = waitForBody(t, bob, room, since, "restarted")
	if _, ok := listDelayed(t, srv, alice.AccessToken)[restartMe]; ok {
		t.Fatal("a sent delayed event is still listed")
	}
	st, res = srv.Do(t, "POST", delayedPath+"/"+restartMe+"/frobnicate", "", nil)
	wantStatus(t, "unknown action path", st, res, http.StatusNotFound, "M_UNRECOGNIZED")

	// Limits: the longest delay (24h by default) and bad delays.
	st, res = srv.Do(t, "PUT", fmt.Sprintf("/_matrix/client/v3/rooms/%s/send/m.room.message/t4?org.matrix.msc4140.delay=%d",
		url.PathEscape(string(room)), (25*time.Hour).Milliseconds()), alice.AccessToken, map[string]any{"body": "x"})
	wantStatus(t, "too long a delay", st, res, http.StatusBadRequest, "M_UNKNOWN")
	if res["org.matrix.msc4140.errcode"] != "M_MAX_DELAY_EXCEEDED" || res["org.matrix.msc4140.max_delay"] != float64(86400000) {
		t.Fatalf("too long a delay: %v", res)
	}
	st, res = srv.Do(t, "PUT", fmt.Sprintf("/_matrix/client/v3/rooms/%s/send/m.room.message/t5?org.matrix.msc4140.delay=soon",
		url.PathEscape(string(room))), alice.AccessToken, map[string]any{"body": "x"})
	wantStatus(t, "a delay that is not a number", st, res, http.StatusBadRequest, "M_INVALID_PARAM")

	// Delayed state: bob's is cancelled when alice sets the same state;
	// alice's own survives her setting it herself.
	statePath := func(key string, delay time.Duration) string {
		return fmt.Sprintf("/_matrix/client/v3/rooms/%s/state/org.example.call.member/%s?org.matrix.msc4140.delay=%d",
			url.PathEscape(string(room)), key, delay.Milliseconds())
	}
	st, res = srv.Do(t, "PUT", statePath("shared", time.Hour), bob.AccessToken, map[string]any{"left": true})
	wantStatus(t, "bob's delayed state", st, res, http.StatusOK, "")
	bobsState := str(t, res, "delay_id")
	st, res = srv.Do(t, "PUT", statePath("mine", time.Hour), alice.AccessToken, map[string]any{"left": true})
	wantStatus(t, "alice's delayed state", st, res, http.StatusOK, "")
	alicesState := str(t, res, "delay_id")
	if got := listDelayed(t, srv, bob.AccessToken)[bobsState]; got == nil || got["state_key"] != "shared" {
		t.Fatalf("bob's delayed state is listed as %v", got)
	}
	for _, key := range []string{"shared", "mine"} {
		if _, err := alice.SendStateEvent(ctx, room, event.Type{Type: "org.example.call.member", Class: event.StateEventType},
			key, map[string]any{"joined": true}); err != nil {
			t.Fatal(err)
		}
	}
	if _, ok := listDelayed(t, srv, bob.AccessToken)[bobsState]; ok {
		t.Fatal("bob's delayed state survived alice setting the same state")
	}
	if _, ok := listDelayed(t, srv, alice.AccessToken)[alicesState]; !ok {
		t.Fatal("alice's delayed state was cancelled by her own state")
	}

	// Pending delayed events survive kill -9: one due in a moment is sent
	// by the new process (once), a long one is still listed.
	afterKill := scheduleMessage(t, srv, alice, room, "t6", "after the crash", 1500*time.Millisecond)
	srv = srv.Restart(true)
	alice = clientFor(t, srv, alice.UserID, alice.DeviceID, alice.AccessToken)
	bob = clientFor(t, srv, bob.UserID, bob.DeviceID, bob.AccessToken)
	if _, ok := listDelayed(t, srv, alice.AccessToken)[alicesState]; !ok {
		t.Fatal("a pending delayed event was lost in the restart")
	}
	since, n = waitForBody(t, bob, room, since, "after the crash")
	if n != 1 {
		t.Fatalf("the delayed message arrived %d times", n)
	}
	if _, ok := listDelayed(t, srv, alice.AccessToken)[afterKill]; ok {
		// The send and forgetting it are not one transaction: wait for the
		// forgetting with a deadline rather than assume it happened.
		deadline := time.Now().Add(10 * time.Second)
		for ok && time.Now().Before(deadline) {
			_, ok = listDelayed(t, srv, alice.AccessToken)[afterKill]
		}
		if ok {
			t.Fatal("a sent delayed event is still listed after the restart")
		}
	}
	// Alice's delayed state fires as her state once sent.
	st, res = srv.Do(t, "POST", delayedPath+"/"+alicesState, alice.AccessToken, map[string]any{"action": "send"})
	wantStatus(t, "sending delayed state", st, res, http.StatusOK, "")
	var content map[string]any
	if err := alice.StateEvent(ctx, room, event.Type{Type: "org.example.call.member", Class: event.StateEventType}, "mine",
		&content); err != nil || content["left"] != true {
		t.Fatalf("state after the delayed state was sent: %v %v", content, err)
	}
	_ = since
}

// TestDelayedEventsOff: with rooms.max_event_delay 0 the feature is not
// advertised and a delayed send is refused as Synapse refuses it.
func TestDelayedEventsOff(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "off.yaml")
	if err := os.WriteFile(cfg, []byte("rooms:\n  max_event_delay: 0s\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	srv := startOpen(t, "--config", cfg)
	st, res := srv.Do(t, "GET", "/_matrix/client/versions", "", nil)
	if feats, _ := res["unstable_features"].(map[string]any); st != 200 || feats["org.matrix.msc4140"] != nil {
		t.Fatalf("versions advertises org.matrix.msc4140 although it is off: %v", res)
	}
	alice := register(t, srv, "alice", defaultPassword)
	created, err := alice.CreateRoom(t.Context(), &mautrix.ReqCreateRoom{})
	if err != nil {
		t.Fatal(err)
	}
	st, res = srv.Do(t, "PUT", fmt.Sprintf("/_matrix/client/v3/rooms/%s/send/m.room.message/t?org.matrix.msc4140.delay=10",
		url.PathEscape(string(created.RoomID))), alice.AccessToken, map[string]any{"body": "x"})
	wantStatus(t, "delayed send while off", st, res, http.StatusBadRequest, "M_UNKNOWN")
	if res["org.matrix.msc4140.errcode"] != "M_MAX_DELAY_UNSUPPORTED" {
		t.Fatalf("answer %v", res)
	}
}
