package e2e

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
	"maunium.net/go/mautrix/synapseadmin"

	"github.com/tributary-hs/tributary/internal/testserver"
)

// sendUntilLimited sends up to n messages as cli and returns how many
// went through before the first 429 (n if none).
func sendUntilLimited(t *testing.T, cli *mautrix.Client, room id.RoomID, n int) int {
	t.Helper()
	for i := range n {
		_, err := cli.SendText(t.Context(), room, fmt.Sprintf("message %d", i))
		if err == nil {
			continue
		}
		if errors.Is(err, mautrix.MLimitExceeded) {
			return i
		}
		t.Fatalf("send %d: %v", i, err)
	}
	return n
}

// TestAdminRateLimitOverride: with the server's limits on, an admin's
// override replaces the message limit for one user (0/0 lifts it), and
// deleting it brings the server's back.
func TestAdminRateLimitOverride(t *testing.T) {
	srv := testserver.Start(t, testserver.Options{}) // the server's rate limits on
	for _, u := range []string{"alice", "bob"} {
		if out, err := srv.Run(t, "", "user", "add", u, "--password", defaultPassword); err != nil {
			t.Fatalf("user add %s: %v\n%s", u, err, out)
		}
	}
	adm := adminClient(t, srv)
	ctx := t.Context()
	alice := login(t, srv, passwordLogin("alice", defaultPassword))
	bob := login(t, srv, passwordLogin("bob", defaultPassword))
	room, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bob.JoinRoomByID(ctx, room.RoomID); err != nil {
		t.Fatal(err)
	}
	if n := sendUntilLimited(t, bob, room.RoomID, 30); n == 30 {
		t.Fatal("the server's message limit never stopped bob")
	}

	_, err = (&synapseadmin.Client{Client: alice}).GetUserRatelimit(ctx, bob.UserID)
	wantErr(t, err, mautrix.MForbidden.WithStatus(http.StatusForbidden))
	path := "/_synapse/admin/v1/users/" + url.PathEscape(string(bob.UserID)) + "/override_ratelimit"
	st, body := srv.Do(t, "GET", path, adm.Client.AccessToken, nil)
	wantStatus(t, "no override yet", st, body, http.StatusOK, "")
	if len(body) != 0 {
		t.Fatalf("no override: %v, want {}", body)
	}
	st, body = srv.Do(t, "POST", path, adm.Client.AccessToken, map[string]any{"messages_per_second": -1})
	wantStatus(t, "a negative rate", st, body, http.StatusBadRequest, "M_INVALID_PARAM")
	st, body = srv.Do(t, "POST", path, adm.Client.AccessToken, map[string]any{"burst_count": "many"})
	wantStatus(t, "a burst that is not a number", st, body, http.StatusBadRequest, "M_INVALID_PARAM")
	st, body = srv.Do(t, "POST", "/_synapse/admin/v1/users/@bob:elsewhere.example/override_ratelimit", adm.Client.AccessToken,
		map[string]any{})
	wantStatus(t, "a remote user", st, body, http.StatusBadRequest, "M_INVALID_PARAM")
	st, body = srv.Do(t, "POST", "/_synapse/admin/v1/users/@nobody:localhost/override_ratelimit", adm.Client.AccessToken,
		map[string]any{})
	wantStatus(t, "an unknown user", st, body, http.StatusNotFound, "M_NOT_FOUND")

	// 0/0: no limit at all.
	if err := adm.SetUserRatelimit(ctx, bob.UserID, synapseadmin.ReqSetRatelimit{}); err != nil {
		t.Fatal(err)
	}
	if n := sendUntilLimited(t, bob, room.RoomID, 40); n != 40 {
		t.Fatalf("without a limit bob was stopped after %d messages", n)
	}
	// A limit of its own: a burst of 2, one a second.
	if err := adm.SetUserRatelimit(ctx, bob.UserID, synapseadmin.ReqSetRatelimit{MessagesPerSecond: 1, BurstCount: 2}); err != nil {
		t.Fatal(err)
	}
	got, err := adm.GetUserRatelimit(ctx, bob.UserID)
	if err != nil || got.MessagesPerSecond != 1 || got.BurstCount != 2 {
		t.Fatalf("override: %+v %v", got, err)
	}
	if n := sendUntilLimited(t, bob, room.RoomID, 10); n < 2 || n == 10 {
		t.Fatalf("with a burst of 2 bob sent %d messages before a 429", n)
	}
	// Deleted: the server's limit again (bob's bucket is still empty).
	if err := adm.DeleteUserRatelimit(ctx, bob.UserID); err != nil {
		t.Fatal(err)
	}
	st, body = srv.Do(t, "GET", path, adm.Client.AccessToken, nil)
	if st != http.StatusOK || len(body) != 0 {
		t.Fatalf("after the deletion: %d %v", st, body)
	}
	if n := sendUntilLimited(t, bob, room.RoomID, 3); n == 3 {
		t.Fatal("after the override went, the server's limit did not stop bob")
	}
}

// TestAdminShadowBan: a shadow-banned user's messages, state and invites
// seem to succeed but nobody receives them; lifted, their messages flow.
func TestAdminShadowBan(t *testing.T) {
	srv := startOpen(t)
	adm := adminClient(t, srv)
	ctx := t.Context()
	alice, bob, room := aliceAndBobInPublicRoom(t, srv)
	register(t, srv, "carol", defaultPassword)
	path := "/_synapse/admin/v1/users/" + url.PathEscape(string(bob.UserID)) + "/shadow_ban"
	st, body := srv.Do(t, "POST", path, alice.AccessToken, map[string]any{})
	wantStatus(t, "a non-admin", st, body, http.StatusForbidden, "M_FORBIDDEN")
	st, body = srv.Do(t, "POST", "/_synapse/admin/v1/users/@bob:elsewhere.example/shadow_ban", adm.Client.AccessToken, map[string]any{})
	wantStatus(t, "a remote user", st, body, http.StatusBadRequest, "M_INVALID_PARAM")
	st, body = srv.Do(t, "POST", path, adm.Client.AccessToken, map[string]any{})
	wantStatus(t, "shadow-ban bob", st, body, http.StatusOK, "")
	info, err := adm.GetUserInfo(ctx, bob.UserID)
	if err != nil || !info.ShadowBanned {
		t.Fatalf("bob's info: %+v %v", info, err)
	}

	since := syncOnce(t, alice, "", 0).NextBatch
	hidden, err := bob.SendText(ctx, room.RoomID, "hidden")
	if err != nil || hidden.EventID == "" {
		t.Fatalf("a shadow-banned send must seem to succeed: %+v %v", hidden, err)
	}
	if _, err := bob.SendStateEvent(ctx, room.RoomID, event.StateTopic, "", map[string]any{"topic": "hidden topic"}); err != nil {
		t.Fatalf("a shadow-banned state send must seem to succeed: %v", err)
	}
	if _, err := bob.InviteUser(ctx, room.RoomID, &mautrix.ReqInviteUser{UserID: userID("carol")}); err != nil {
		t.Fatalf("a shadow-banned invite must seem to succeed: %v", err)
	}
	if _, err := bob.CreateRoom(ctx, &mautrix.ReqCreateRoom{Invite: []id.UserID{alice.UserID}}); err != nil {
		t.Fatalf("a shadow-banned user still creates rooms: %v", err)
	}
	if _, err := alice.SendText(ctx, room.RoomID, "marker"); err != nil {
		t.Fatal(err)
	}
	// alice's sync reaches her marker without bob's message.
	var seen []string
	deadline := time.Now().Add(20 * time.Second)
	for len(seen) == 0 || seen[len(seen)-1] != "marker" {
		if time.Now().After(deadline) {
			t.Fatalf("alice never saw her marker: %v", seen)
		}
		resp := syncOnce(t, alice, since, 5000)
		since = resp.NextBatch
		if jr, ok := resp.Rooms.Join[room.RoomID]; ok {
			for _, e := range jr.Timeline.Events {
				if e.Type == event.StateTopic || e.Type == event.StateMember && e.GetStateKey() == string(userID("carol")) {
					t.Fatalf("alice received a shadow-banned event %s", e.Type.Type)
				}
			}
			seen = append(seen, bodies(jr.Timeline.Events)...)
		}
	}
	for _, b := range seen {
		if b == "hidden" {
			t.Fatal("alice received the shadow-banned message")
		}
	}
	if invites := syncOnce(t, alice, "", 0).Rooms.Invite; len(invites) != 0 {
		t.Fatalf("alice was invited by a shadow-banned user: %v", invites)
	}
	_, err = alice.GetEvent(ctx, room.RoomID, hidden.EventID)
	wantErr(t, err, mautrix.MNotFound.WithStatus(http.StatusNotFound))
	var topic event.TopicEventContent
	if err := alice.StateEvent(ctx, room.RoomID, event.StateTopic, "", &topic); err == nil && topic.Topic == "hidden topic" {
		t.Fatal("the shadow-banned topic was set")
	}

	st, body = srv.Do(t, "DELETE", path, adm.Client.AccessToken, nil)
	wantStatus(t, "lift the shadow ban", st, body, http.StatusOK, "")
	if _, err := bob.SendText(ctx, room.RoomID, "visible"); err != nil {
		t.Fatal(err)
	}
	if _, n := waitForBody(t, alice, room.RoomID, since, "visible"); n != 1 {
		t.Fatalf("alice saw bob's message %d times", n)
	}
}

// TestAdminAccountData: GET /_synapse/admin/v1/users/{userId}/accountdata
// lists a user's global and per-room account data.
func TestAdminAccountData(t *testing.T) {
	srv := startOpen(t)
	adm := adminClient(t, srv)
	ctx := t.Context()
	_, bob, room := aliceAndBobInPublicRoom(t, srv)
	if err := bob.SetAccountData(ctx, "com.example.settings", map[string]any{"colour": "green"}); err != nil {
		t.Fatal(err)
	}
	if err := bob.SetRoomAccountData(ctx, room.RoomID, "com.example.room", map[string]any{"pinned": true}); err != nil {
		t.Fatal(err)
	}
	path := "/_synapse/admin/v1/users/" + url.PathEscape(string(bob.UserID)) + "/accountdata"
	st, body := srv.Do(t, "GET", path, bob.AccessToken, nil)
	wantStatus(t, "a non-admin", st, body, http.StatusForbidden, "M_FORBIDDEN")
	st, body = srv.Do(t, "GET", path, adm.Client.AccessToken, nil)
	wantStatus(t, "bob's account data", st, body, http.StatusOK, "")
	data, _ := body["account_data"].(map[string]any)
	global, _ := data["global"].(map[string]any)
	if s, _ := global["com.example.settings"].(map[string]any); s["colour"] != "green" {
		t.Fatalf("global account data: %v", global)
	}
	rooms, _ := data["rooms"].(map[string]any)
	perRoom, _ := rooms[string(room.RoomID)].(map[string]any)
	if r, _ := perRoom["com.example.room"].(map[string]any); r["pinned"] != true {
		t.Fatalf("room account data: %v", rooms)
	}
	st, body = srv.Do(t, "GET", "/_synapse/admin/v1/users/@nobody:localhost/accountdata", adm.Client.AccessToken, nil)
	wantStatus(t, "an unknown user", st, body, http.StatusNotFound, "M_NOT_FOUND")
	st, body = srv.Do(t, "GET", "/_synapse/admin/v1/users/nobody/accountdata", adm.Client.AccessToken, nil)
	wantStatus(t, "not a user ID", st, body, http.StatusBadRequest, "M_INVALID_PARAM")
}
