package e2e

import (
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"maunium.net/go/mautrix"

	"github.com/tributary-hs/tributary/internal/testserver"
)

// TestThreePIDAnswers: the server binds no email addresses or phone
// numbers and trusts no identity server; every 3PID endpoint says so the way
// the spec provides, after checking its input.
func TestThreePIDAnswers(t *testing.T) {
	srv := startOpen(t)
	alice := register(t, srv, "alice3p", defaultPassword)
	const v3 = "/_matrix/client/v3"
	email := map[string]any{"client_secret": "s", "email": "a@example.org", "send_attempt": 1}
	phone := map[string]any{"client_secret": "s", "country": "GB", "phone_number": "07700900000", "send_attempt": 1}
	for _, tc := range []struct {
		method, path string
		token        string
		body         any
		status       int
		code         string
	}{
		{"GET", "/account/3pid", alice.AccessToken, nil, 200, ""},
		{"POST", "/account/3pid/email/requestToken", "", email, 400, "M_THREEPID_MEDIUM_NOT_SUPPORTED"},
		{"POST", "/account/3pid/msisdn/requestToken", "", phone, 400, "M_THREEPID_MEDIUM_NOT_SUPPORTED"},
		{"POST", "/register/email/requestToken", "", email, 403, "M_THREEPID_DENIED"},
		{"POST", "/register/msisdn/requestToken", "", phone, 403, "M_THREEPID_DENIED"},
		{"POST", "/account/password/email/requestToken", "", email, 400, "M_THREEPID_NOT_FOUND"},
		{"POST", "/account/password/msisdn/requestToken", "", phone, 400, "M_THREEPID_NOT_FOUND"},
		{"POST", "/register/email/requestToken", "", map[string]any{"email": "a@example.org"}, 400, "M_MISSING_PARAM"},
		{"POST", "/account/3pid/add", alice.AccessToken, map[string]any{"client_secret": "s", "sid": "1"}, 400, "M_THREEPID_AUTH_FAILED"},
		{"POST", "/account/3pid", alice.AccessToken, map[string]any{"three_pid_creds": map[string]any{}}, 403, "M_THREEPID_AUTH_FAILED"},
		{"POST", "/account/3pid/bind", alice.AccessToken, map[string]any{"client_secret": "s", "id_server": "id.example.org", "sid": "1"}, 400, "M_SERVER_NOT_TRUSTED"},
		{"POST", "/account/3pid/delete", alice.AccessToken, map[string]any{"medium": "email", "address": "a@example.org"}, 200, ""},
		{"POST", "/account/3pid/unbind", alice.AccessToken, map[string]any{"medium": "email", "address": "a@example.org"}, 200, ""},
		{"POST", "/account/3pid/unbind", alice.AccessToken, map[string]any{}, 400, "M_MISSING_PARAM"},
		{"POST", "/account/3pid/delete", "", map[string]any{"medium": "email", "address": "a@example.org"}, 401, "M_MISSING_TOKEN"},
	} {
		code, body := srv.Do(t, tc.method, v3+tc.path, tc.token, tc.body)
		if code != tc.status || (tc.code != "" && body["errcode"] != tc.code) {
			t.Errorf("%s %s: %d %v, want %d %s", tc.method, tc.path, code, body, tc.status, tc.code)
		}
	}
	code, body := srv.Do(t, "GET", v3+"/account/3pid", alice.AccessToken, nil)
	if list, ok := body["threepids"].([]any); code != 200 || !ok || len(list) != 0 {
		t.Errorf("3pid list: %d %v", code, body)
	}
	if code, body := srv.Do(t, "POST", v3+"/account/3pid/unbind", alice.AccessToken,
		map[string]any{"medium": "email", "address": "a@example.org"}); code != 200 || body["id_server_unbind_result"] != "no-support" {
		t.Errorf("unbind: %d %v", code, body)
	}
	// Inviting by email address needs an identity server.
	room, err := alice.CreateRoom(t.Context(), &mautrix.ReqCreateRoom{})
	if err != nil {
		t.Fatal(err)
	}
	code, body = srv.Do(t, "POST", v3+"/rooms/"+string(room.RoomID)+"/invite", alice.AccessToken,
		map[string]any{"id_server": "id.example.org", "id_access_token": "x", "medium": "email", "address": "b@example.org"})
	if code != 400 || body["errcode"] != "M_SERVER_NOT_TRUSTED" {
		t.Errorf("3pid invite: %d %v", code, body)
	}
}

// TestWhoisEventByIDAndTurn: /admin/whois for oneself and for admins only,
// /events/{eventId} with the room's visibility, and TURN credentials.
func TestWhoisEventByIDAndTurn(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "turn.yaml")
	if err := os.WriteFile(cfg, []byte("voip:\n  turn_uris: [\"turn:turn.example.org:3478?transport=udp\"]\n"+
		"  turn_shared_secret: \"turn-secret\"\n  turn_user_lifetime: 1h\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	srv := startOpen(t, "--config", cfg)
	ctx := t.Context()
	const v3 = "/_matrix/client/v3"
	alice := register(t, srv, "alicew", defaultPassword)
	bob := register(t, srv, "bobw", defaultPassword)
	if out, err := srv.Run(t, "", "user", "add", "boss", "--password", "boss password", "--admin"); err != nil {
		t.Fatalf("user add: %v %s", err, out)
	}
	boss := login(t, srv, passwordLogin("boss", "boss password"))

	// whois
	if code, body := srv.Do(t, "GET", v3+"/admin/whois/"+string(alice.UserID), alice.AccessToken, nil); code != 200 ||
		body["user_id"] != string(alice.UserID) || body["devices"].(map[string]any)[string(alice.DeviceID)] == nil {
		t.Errorf("whois self: %d %v", code, body)
	}
	if code, body := srv.Do(t, "GET", v3+"/admin/whois/"+string(alice.UserID), bob.AccessToken, nil); code != 403 {
		t.Errorf("whois by another user: %d %v", code, body)
	}
	code, body := srv.Do(t, "GET", v3+"/admin/whois/"+string(alice.UserID), boss.AccessToken, nil)
	if code != 200 {
		t.Fatalf("whois by an admin: %d %v", code, body)
	}
	sessions := body["devices"].(map[string]any)[string(alice.DeviceID)].(map[string]any)["sessions"].([]any)
	conns := sessions[0].(map[string]any)["connections"].([]any)
	if len(conns) != 1 || conns[0].(map[string]any)["ip"] != "127.0.0.1" {
		t.Errorf("whois connections: %v", conns)
	}
	if code, _ := srv.Do(t, "GET", v3+"/admin/whois/@nobody:localhost", boss.AccessToken, nil); code != 404 {
		t.Errorf("whois of nobody: %d", code)
	}

	// /events/{eventId}
	room, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "private_chat"})
	if err != nil {
		t.Fatal(err)
	}
	sent, err := alice.SendText(ctx, room.RoomID, "by id alone")
	if err != nil {
		t.Fatal(err)
	}
	code, body = srv.Do(t, "GET", v3+"/events/"+string(sent.EventID), alice.AccessToken, nil)
	if code != 200 || body["room_id"] != string(room.RoomID) || body["content"].(map[string]any)["body"] != "by id alone" {
		t.Errorf("event by id: %d %v", code, body)
	}
	if code, body := srv.Do(t, "GET", v3+"/events/"+string(sent.EventID), bob.AccessToken, nil); code != 404 {
		t.Errorf("event of a room bob is not in: %d %v", code, body)
	}
	if code, body := srv.Do(t, "GET", v3+"/events/$missing", alice.AccessToken, nil); code != 404 || body["errcode"] != "M_NOT_FOUND" {
		t.Errorf("missing event: %d %v", code, body)
	}

	// TURN credentials in the shared-secret scheme.
	code, body = srv.Do(t, "GET", v3+"/voip/turnServer", alice.AccessToken, nil)
	if code != 200 || body["ttl"] != float64(3600) || len(body["uris"].([]any)) != 1 {
		t.Fatalf("turnServer: %d %v", code, body)
	}
	user, _ := body["username"].(string)
	mac := hmac.New(sha1.New, []byte("turn-secret"))
	mac.Write([]byte(user))
	if !strings.HasSuffix(user, ":"+string(alice.UserID)) || body["password"] != base64.StdEncoding.EncodeToString(mac.Sum(nil)) {
		t.Errorf("turn credentials %v", body)
	}
	// Without a TURN server: an empty answer.
	plain := testserver.Start(t, testserver.Options{Args: openArgs})
	carol := register(t, plain, "carolw", defaultPassword)
	if code, body := plain.Do(t, "GET", v3+"/voip/turnServer", carol.AccessToken, nil); code != 200 || len(body) != 0 {
		t.Errorf("turnServer without TURN: %d %v", code, body)
	}
}

// TestOpenID: a user's OpenID token tells a third party (through the
// federation userinfo endpoint) who they are, and nothing for others.
func TestOpenID(t *testing.T) {
	srv := startOpen(t)
	alice := register(t, srv, "aliceoid", defaultPassword)
	bob := register(t, srv, "boboid", defaultPassword)
	path := "/_matrix/client/v3/user/" + string(alice.UserID) + "/openid/request_token"
	code, body := srv.Do(t, "POST", path, alice.AccessToken, map[string]any{})
	if code != 200 || body["token_type"] != "Bearer" || body["matrix_server_name"] != "localhost" || body["expires_in"] != float64(3600) {
		t.Fatalf("request_token: %d %v", code, body)
	}
	tok, _ := body["access_token"].(string)
	if code, body := srv.Do(t, "POST", path, bob.AccessToken, map[string]any{}); code != 403 {
		t.Errorf("a token for someone else: %d %v", code, body)
	}
	code, body = srv.Do(t, "GET", "/_matrix/federation/v1/openid/userinfo?access_token="+tok, "", nil)
	if code != 200 || body["sub"] != string(alice.UserID) {
		t.Fatalf("userinfo: %d %v", code, body)
	}
	if code, body := srv.Do(t, "GET", "/_matrix/federation/v1/openid/userinfo?access_token=nope", "", nil); code != 401 || body["errcode"] != "M_UNKNOWN_TOKEN" {
		t.Errorf("userinfo with an unknown token: %d %v", code, body)
	}
	// An access token is not an OpenID token.
	if code, _ := srv.Do(t, "GET", "/_matrix/federation/v1/openid/userinfo?access_token="+alice.AccessToken, "", nil); code != 401 {
		t.Errorf("userinfo with an access token: %d", code)
	}
}

// TestReportUser: reports of users reach the admins' list for users that
// exist (or live elsewhere); reporting a local user who does not exist
// answers the same, telling nothing.
func TestReportUser(t *testing.T) {
	srv := startOpen(t)
	alice := register(t, srv, "alicerep", defaultPassword)
	bob := register(t, srv, "bobrep", defaultPassword)
	for _, tc := range []struct {
		user   string
		body   any
		status int
	}{
		{string(bob.UserID), map[string]any{"reason": "spam"}, 200},
		{"@ghost:localhost", map[string]any{"reason": "spam"}, 200},
		{"@someone:elsewhere.example", map[string]any{"reason": ""}, 200},
		{string(bob.UserID), map[string]any{}, 400},
		{"not-a-user", map[string]any{"reason": "x"}, 400},
	} {
		code, body := srv.Do(t, "POST", "/_matrix/client/v3/users/"+tc.user+"/report", alice.AccessToken, tc.body)
		if code != tc.status {
			t.Errorf("report %s %v: %d %v, want %d", tc.user, tc.body, code, body, tc.status)
		}
	}
	if code, _ := srv.Do(t, "POST", "/_matrix/client/v3/users/"+string(bob.UserID)+"/report", "", map[string]any{"reason": "x"}); code != 401 {
		t.Errorf("report without a token: %d", code)
	}
}

// TestRoomSummary: public and world-readable rooms can be previewed by
// anyone, even without a token; private rooms only by their members (with
// their membership); everything else is not found.
func TestRoomSummary(t *testing.T) {
	srv := startOpen(t)
	ctx := t.Context()
	alice := register(t, srv, "alicesum", defaultPassword)
	bob := register(t, srv, "bobsum", defaultPassword)
	public, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat", Name: "Open", Topic: "all welcome",
		RoomAliasName: "opensum"})
	if err != nil {
		t.Fatal(err)
	}
	private, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "private_chat", Name: "Closed"})
	if err != nil {
		t.Fatal(err)
	}
	const base = "/_matrix/client/v1/room_summary/"
	code, body := srv.Do(t, "GET", base+"%23opensum:localhost", "", nil)
	if code != 200 || body["room_id"] != string(public.RoomID) || body["name"] != "Open" || body["join_rule"] != "public" ||
		body["room_version"] == nil || body["membership"] != nil || body["num_joined_members"] != float64(1) {
		t.Fatalf("public room, no token: %d %v", code, body)
	}
	if code, body := srv.Do(t, "GET", base+string(public.RoomID), alice.AccessToken, nil); code != 200 || body["membership"] != "join" {
		t.Errorf("public room as member: %d %v", code, body)
	}
	for _, tc := range []struct {
		token string
		want  int
	}{{"", 404}, {bob.AccessToken, 404}, {alice.AccessToken, 200}} {
		if code, body := srv.Do(t, "GET", base+string(private.RoomID), tc.token, nil); code != tc.want {
			t.Errorf("private room (token %t): %d %v, want %d", tc.token != "", code, body, tc.want)
		}
	}
	if _, err := alice.InviteUser(ctx, private.RoomID, &mautrix.ReqInviteUser{UserID: bob.UserID}); err != nil {
		t.Fatal(err)
	}
	if code, body := srv.Do(t, "GET", base+string(private.RoomID), bob.AccessToken, nil); code != 200 || body["membership"] != "invite" {
		t.Errorf("private room as invitee: %d %v", code, body)
	}
	if code, _ := srv.Do(t, "GET", base+"!unknown:localhost", "", nil); code != 404 {
		t.Errorf("unknown room: %d", code)
	}
	if code, _ := srv.Do(t, "GET", base+"nonsense", "", nil); code != 400 {
		t.Errorf("neither an ID nor an alias: %d", code)
	}
	if code, _ := srv.Do(t, "GET", base+string(public.RoomID), "bad-token", nil); code != 401 {
		t.Errorf("a bad token: %d", code)
	}
}

// TestSSORedirectWithoutSSO: single sign-on is not offered, and its
// redirect says there is no identity provider rather than sending anyone
// anywhere.
func TestSSORedirectWithoutSSO(t *testing.T) {
	srv := startOpen(t)
	for _, path := range []string{"/_matrix/client/v3/login/sso/redirect?redirectUrl=https%3A%2F%2Fapp.example",
		"/_matrix/client/v3/login/sso/redirect/oidc-github?redirectUrl=https%3A%2F%2Fapp.example"} {
		if code, body := srv.Do(t, "GET", path, "", nil); code != 404 || body["errcode"] != "M_NOT_FOUND" {
			t.Errorf("%s: %d %v", path, code, body)
		}
	}
	if code, body := srv.Do(t, "GET", "/_matrix/client/v3/login/sso/redirect", "", nil); code != 400 {
		t.Errorf("without redirectUrl: %d %v", code, body)
	}
	code, body := srv.Do(t, "GET", "/_matrix/client/v3/login", "", nil)
	if code != 200 || strings.Contains(fmt.Sprint(body), "m.login.sso") {
		t.Errorf("login flows offer SSO: %v", body)
	}
}

// TestMessagesFromSyncToken: a sync token given to /messages stands just
// after the last event it synced: backwards starts with that event,
// forwards with the next one.
func TestMessagesFromSyncToken(t *testing.T) {
	srv := startOpen(t)
	ctx := t.Context()
	alice := register(t, srv, "alicetok", defaultPassword)
	room, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{})
	if err != nil {
		t.Fatal(err)
	}
	last, err := alice.SendText(ctx, room.RoomID, "last before the token")
	if err != nil {
		t.Fatal(err)
	}
	tok := syncOnce(t, alice, "", 0).NextBatch
	next, err := alice.SendText(ctx, room.RoomID, "first after the token")
	if err != nil {
		t.Fatal(err)
	}
	back, err := alice.Messages(ctx, room.RoomID, tok, "", mautrix.DirectionBackward, nil, 1)
	if err != nil || len(back.Chunk) != 1 || back.Chunk[0].ID != last.EventID {
		t.Fatalf("backwards from a sync token: %v %+v", err, back)
	}
	fwd, err := alice.Messages(ctx, room.RoomID, tok, "", mautrix.DirectionForward, nil, 10)
	if err != nil || len(fwd.Chunk) != 1 || fwd.Chunk[0].ID != next.EventID {
		t.Fatalf("forwards from a sync token: %v %+v", err, fwd)
	}
}
