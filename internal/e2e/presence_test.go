package e2e

import (
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/internal/pgtest"
	"github.com/tributary-hs/tributary/internal/testserver"
)

// startWithConfig starts an open server whose data directory holds the
// configuration cfg (YAML).
func startWithConfig(t *testing.T, cfg string, extra ...string) *testserver.Server {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "tributary.yaml"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return testserver.Start(t, testserver.Options{DataDir: dir, Args: append(slices.Clone(openArgs), extra...)})
}

// rawSync runs GET /sync with the optional since token, timeout (ms) and
// filter (inline JSON), and returns the answer.
func rawSync(t *testing.T, srv *testserver.Server, token, since string, timeout int, filter string) map[string]any {
	t.Helper()
	q := url.Values{"timeout": {strconv.Itoa(timeout)}}
	if since != "" {
		q.Set("since", since)
	}
	if filter != "" {
		q.Set("filter", filter)
	}
	code, body := srv.Do(t, "GET", "/_matrix/client/v3/sync?"+q.Encode(), token, nil)
	wantStatus(t, "sync", code, body, http.StatusOK, "")
	return body
}

// presenceOf lists the presence contents of user in a sync answer, in order.
func presenceOf(body map[string]any, user id.UserID) []map[string]any {
	section, _ := body["presence"].(map[string]any)
	evs, _ := section["events"].([]any)
	var out []map[string]any
	for _, e := range evs {
		ev, _ := e.(map[string]any)
		if ev["sender"] == string(user) && ev["type"] == "m.presence" {
			content, _ := ev["content"].(map[string]any)
			out = append(out, content)
		}
	}
	return out
}

// presencePos is the presence position of a sync token (its last).
func presencePos(t *testing.T, token string) int64 {
	t.Helper()
	parts := strings.Split(strings.TrimPrefix(token, "s"), "_")
	pos, err := strconv.ParseInt(parts[len(parts)-1], 10, 64)
	if err != nil || len(parts) != 7 {
		t.Fatalf("sync token %q has no presence position", token)
	}
	return pos
}

func putPresence(t *testing.T, srv *testserver.Server, cli *mautrix.Client, presence, status string) {
	t.Helper()
	code, body := srv.Do(t, "PUT", "/_matrix/client/v3/presence/"+url.PathEscape(string(cli.UserID))+"/status",
		cli.AccessToken, map[string]any{"presence": presence, "status_msg": status})
	wantStatus(t, "PUT presence", code, body, http.StatusOK, "")
}

// Presence reaches the user and those sharing a room with them, never
// others, whether a sync reads it from the server's recent changes or (a
// token from before a restart, an initial sync) from the database; and a
// filter that drops presence gets none (issue 12: the audit's crowd of
// long-polls each read every change on the server, filtered or not).
func TestPresenceReachesOnlyWhoMaySeeIt(t *testing.T) {
	t.Run("SQLite", func(t *testing.T) { testPresenceAudience(t, startOpen(t)) })
	t.Run("PostgreSQL", func(t *testing.T) { testPresenceAudience(t, startOpen(t, "--database-url", pgtest.URL(t))) })
}

func testPresenceAudience(t *testing.T, srv *testserver.Server) {
	ctx := t.Context()
	alice, bob := register(t, srv, "alice", defaultPassword), register(t, srv, "bob", defaultPassword)
	carol, dave := register(t, srv, "carol", defaultPassword), register(t, srv, "dave", defaultPassword)
	eve := register(t, srv, "eve", defaultPassword)
	shared, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bob.JoinRoomByID(ctx, shared.RoomID); err != nil {
		t.Fatal(err)
	}
	other, err := carol.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dave.JoinRoomByID(ctx, other.RoomID); err != nil {
		t.Fatal(err)
	}
	// Carol is invited to the shared room, not joined: no presence either way.
	if _, err := alice.InviteUser(ctx, shared.RoomID, &mautrix.ReqInviteUser{UserID: carol.UserID}); err != nil {
		t.Fatal(err)
	}
	tokens := map[id.UserID]string{}
	for _, c := range []*mautrix.Client{alice, bob, carol, dave, eve} {
		tokens[c.UserID] = rawSync(t, srv, c.AccessToken, "", 0, "")["next_batch"].(string)
	}
	putPresence(t, srv, alice, "online", "in a meeting")

	if got := presenceOf(rawSync(t, srv, bob.AccessToken, tokens[bob.UserID], 0, ""), alice.UserID); len(got) != 1 ||
		got[0]["status_msg"] != "in a meeting" || got[0]["presence"] != "online" || got[0]["currently_active"] != true {
		t.Fatalf("bob's sync: alice's presence %v, want online, in a meeting, currently active", got)
	}
	for _, f := range []string{`{"presence":{"types":[]}}`, `{"presence":{"not_types":["*"]}}`,
		`{"presence":{"senders":[]}}`, `{"presence":{"types":["m.typing"]}}`} {
		body := rawSync(t, srv, bob.AccessToken, tokens[bob.UserID], 0, f)
		if _, ok := body["presence"]; ok {
			t.Fatalf("bob's sync with filter %s has a presence section: %v", f, body["presence"])
		}
	}
	if got := presenceOf(rawSync(t, srv, bob.AccessToken, tokens[bob.UserID], 0, `{"presence":{"senders":["`+string(eve.UserID)+`"]}}`),
		alice.UserID); len(got) != 0 {
		t.Fatalf("bob's sync of eve's presence only has alice's: %v", got)
	}
	for _, c := range []*mautrix.Client{carol, dave, eve} {
		if got := presenceOf(rawSync(t, srv, c.AccessToken, tokens[c.UserID], 0, ""), alice.UserID); len(got) != 0 {
			t.Fatalf("%s shares no room with alice but got her presence: %v", c.UserID, got)
		}
		if got := presenceOf(rawSync(t, srv, c.AccessToken, "", 0, ""), alice.UserID); len(got) != 0 {
			t.Fatalf("%s's initial sync has alice's presence: %v", c.UserID, got)
		}
	}
	if got := presenceOf(rawSync(t, srv, eve.AccessToken, "", 0, ""), eve.UserID); len(got) != 1 {
		t.Fatalf("eve's initial sync has her own presence %v, want it once", got)
	}
	if got := presenceOf(rawSync(t, srv, carol.AccessToken, "", 0, ""), dave.UserID); len(got) != 1 {
		t.Fatalf("carol's initial sync has dave's presence %v, want it once", got)
	}
	if got := presenceOf(rawSync(t, srv, bob.AccessToken, "", 0, ""), alice.UserID); len(got) != 1 ||
		got[0]["status_msg"] != "in a meeting" {
		t.Fatalf("bob's initial sync: alice's presence %v", got)
	}

	// A long-poll whose filter drops presence answers with the message
	// that follows a presence change, without the change.
	since := rawSync(t, srv, bob.AccessToken, "", 0, "")["next_batch"].(string)
	polled := make(chan map[string]any, 1)
	go func() {
		q := url.Values{"timeout": {"20000"}, "since": {since}, "filter": {`{"presence":{"not_types":["*"]}}`}}
		_, body := srv.Do(t, "GET", "/_matrix/client/v3/sync?"+q.Encode(), bob.AccessToken, nil)
		polled <- body
	}()
	putPresence(t, srv, alice, "unavailable", "lunch")
	if _, err := alice.SendText(ctx, shared.RoomID, "back soon"); err != nil {
		t.Fatal(err)
	}
	body := <-polled
	if _, ok := body["presence"]; ok {
		t.Fatalf("bob's long-poll without presence got %v", body["presence"])
	}
	if _, ok := body["rooms"]; !ok {
		t.Fatalf("bob's long-poll ended without the message: %v", body)
	}

	// After a restart, tokens from before are answered from the database.
	srv = srv.Restart(false)
	got := presenceOf(rawSync(t, srv, bob.AccessToken, tokens[bob.UserID], 0, ""), alice.UserID)
	if len(got) != 1 || got[0]["presence"] != "unavailable" || got[0]["status_msg"] != "lunch" {
		t.Fatalf("bob's sync after a restart: alice's presence %v, want unavailable, lunch", got)
	}
	for _, c := range []*mautrix.Client{carol, dave, eve} {
		if got := presenceOf(rawSync(t, srv, c.AccessToken, tokens[c.UserID], 0, ""), alice.UserID); len(got) != 0 {
			t.Fatalf("%s got alice's presence after a restart: %v", c.UserID, got)
		}
	}
}

// A user who keeps syncing while online, or sets the presence they have,
// writes nothing: their roommates' tokens do not move and they are sent
// nothing (issue 12: each syncing user rewrote their presence every minute).
func TestPresenceWrittenOnlyOnChange(t *testing.T) {
	srv := startOpen(t)
	alice, bob, _ := aliceAndBobInPublicRoom(t, srv)
	rawSync(t, srv, alice.AccessToken, "", 0, "") // alice is online now
	token := rawSync(t, srv, bob.AccessToken, "", 0, "")["next_batch"].(string)
	since := token
	for range 5 {
		since = rawSync(t, srv, alice.AccessToken, since, 0, "")["next_batch"].(string)
	}
	putPresence(t, srv, alice, "online", "")
	putPresence(t, srv, alice, "online", "")
	body := rawSync(t, srv, bob.AccessToken, token, 0, "")
	if got := presenceOf(body, alice.UserID); len(got) != 0 {
		t.Fatalf("alice stayed online, yet bob was sent %v", got)
	}
	if next := body["next_batch"].(string); presencePos(t, next) != presencePos(t, token) {
		t.Fatalf("the presence stream moved from %s to %s while nothing changed", token, next)
	}
	putPresence(t, srv, alice, "online", "reading")
	body = rawSync(t, srv, bob.AccessToken, token, 0, "")
	got := presenceOf(body, alice.UserID)
	if len(got) != 1 || got[0]["status_msg"] != "reading" {
		t.Fatalf("bob's sync after alice's new status: %v", got)
	}
	if ago, _ := got[0]["last_active_ago"].(float64); ago < 0 || ago > 60_000 {
		t.Fatalf("last_active_ago %v of a user active just now", got[0]["last_active_ago"])
	}
	if next := body["next_batch"].(string); presencePos(t, next) != presencePos(t, token)+1 {
		t.Fatalf("one change moved the presence stream from %s to %s", token, next)
	}
}

// A user whose syncs stop is marked offline presence.offline_after later;
// never while a long-poll of theirs runs.
func TestPresenceOfflineAfterSyncsStop(t *testing.T) {
	srv := startWithConfig(t, "presence:\n  offline_after: 1s\n")
	alice, bob, _ := aliceAndBobInPublicRoom(t, srv)
	since := rawSync(t, srv, bob.AccessToken, "", 0, `{"presence":{"senders":["`+string(alice.UserID)+`"]}}`)["next_batch"].(string)
	aliceDone := make(chan struct{})
	go func() {
		defer close(aliceDone)
		rawSync(t, srv, alice.AccessToken, "", 0, "")
		since := rawSync(t, srv, alice.AccessToken, "", 0, "")["next_batch"].(string)
		rawSync(t, srv, alice.AccessToken, since, 2500, `{"room":{"rooms":[]}}`) // a long-poll past offline_after
	}()
	var seen []string
	deadline := time.Now().Add(30 * time.Second)
	for !slices.Contains(seen, "offline") {
		if time.Now().After(deadline) {
			t.Fatalf("alice's presence went %v in 30 s, never offline", seen)
		}
		body := rawSync(t, srv, bob.AccessToken, since, 10000, `{"presence":{"senders":["`+string(alice.UserID)+`"]}}`)
		since = body["next_batch"].(string)
		for _, p := range presenceOf(body, alice.UserID) {
			seen = append(seen, p["presence"].(string))
			if p["presence"] == "offline" {
				select {
				case <-aliceDone:
				default:
					t.Fatal("alice was marked offline while her long-poll ran")
				}
				if p["currently_active"] != false {
					t.Fatalf("offline presence %v is currently active", p)
				}
			}
		}
	}
	if seen[0] != "online" {
		t.Fatalf("alice's presence went %v, want online first", seen)
	}
}

// A member who joins a room appears with their presence in the incremental
// syncs of those already there, and the newcomer's next sync carries the
// presence of everyone in the room, although none of it changed.
func TestPresenceOnJoin(t *testing.T) {
	srv := startOpen(t)
	alice, bob := register(t, srv, "alice", defaultPassword), register(t, srv, "bob", defaultPassword)
	room, err := alice.CreateRoom(t.Context(), &mautrix.ReqCreateRoom{Preset: "public_chat"})
	if err != nil {
		t.Fatal(err)
	}
	putPresence(t, srv, alice, "online", "here")
	putPresence(t, srv, bob, "online", "arriving")
	aliceToken := rawSync(t, srv, alice.AccessToken, "", 0, "")["next_batch"].(string)
	bobToken := rawSync(t, srv, bob.AccessToken, "", 0, "")["next_batch"].(string)
	if _, err := bob.JoinRoomByID(t.Context(), room.RoomID); err != nil {
		t.Fatal(err)
	}
	if got := presenceOf(rawSync(t, srv, alice.AccessToken, aliceToken, 0, ""), bob.UserID); len(got) != 1 ||
		got[0]["status_msg"] != "arriving" {
		t.Fatalf("alice's sync after bob joined: bob's presence %v", got)
	}
	if got := presenceOf(rawSync(t, srv, bob.AccessToken, bobToken, 0, ""), alice.UserID); len(got) != 1 ||
		got[0]["status_msg"] != "here" {
		t.Fatalf("bob's sync after joining: alice's presence %v", got)
	}
}
