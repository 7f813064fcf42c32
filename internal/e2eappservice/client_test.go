// Package e2eappservice drives the application service API of the real binary.
package e2eappservice

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/internal/testserver"
)

const (
	asToken = "as-token-for-tests-0123456789"
	hsToken = "hs-token-for-tests-0123456789"
)

func registration(id, asTok, hsTok, userRegex string) string {
	return fmt.Sprintf(`id: %s
url: null
as_token: %s
hs_token: %s
sender_localpart: %sbot
rate_limited: false
namespaces:
  users:
    - regex: '%s'
      exclusive: true
  aliases:
    - regex: '#_bridge_.*:localhost'
      exclusive: true
  rooms: []
`, id, asTok, hsTok, id, userRegex)
}

func writeFile(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "registration.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func do(t *testing.T, srv *testserver.Server, method, path, token string, body any) (int, map[string]any) {
	t.Helper()
	return srv.Do(t, method, path, token, body)
}

// loginHuman creates the user @human:localhost with the CLI and logs them in.
func loginHuman(t *testing.T, srv *testserver.Server) *mautrix.Client {
	t.Helper()
	if out, err := srv.Run(t, "", "user", "add", "human", "--password", "human-password"); err != nil {
		t.Fatalf("user add: %v %s", err, out)
	}
	cli := srv.Client(t)
	if _, err := cli.Login(t.Context(), &mautrix.ReqLogin{Type: mautrix.AuthTypePassword, Password: "human-password",
		Identifier: mautrix.UserIdentifier{Type: mautrix.IdentifierTypeUser, User: "human"}, StoreCredentials: true}); err != nil {
		t.Fatal(err)
	}
	return cli
}

func TestAppServiceAsClient(t *testing.T) {
	reg := writeFile(t, registration("bridge", asToken, hsToken, "@_bridge_.*:localhost"))
	// Rate limits stay on: appservices are exempt.
	srv := testserver.Start(t, testserver.Options{Args: []string{"--appservice", reg, "--enable-registration"}})
	ctx := context.Background()

	code, body := do(t, srv, "GET", "/_matrix/client/v3/account/whoami", asToken, nil)
	if code != 200 || body["user_id"] != "@bridgebot:localhost" {
		t.Fatalf("whoami as the appservice: %d %v", code, body)
	}
	// Ghosts register without password or UIA, past the per-IP limit.
	for i := range 5 {
		code, body := do(t, srv, "POST", "/_matrix/client/v3/register", asToken, map[string]any{
			"type": "m.login.application_service", "username": fmt.Sprintf("_bridge_ghost%d", i), "inhibit_login": true})
		if code != 200 || body["user_id"] != fmt.Sprintf("@_bridge_ghost%d:localhost", i) || body["access_token"] != nil {
			t.Fatalf("ghost %d: %d %v", i, code, body)
		}
	}
	code, body = do(t, srv, "POST", "/_matrix/client/v3/register", asToken, map[string]any{
		"type": "m.login.application_service", "username": "outsider"})
	if code != 400 || body["errcode"] != "M_EXCLUSIVE" {
		t.Fatalf("ghost outside the namespace: %d %v", code, body)
	}
	code, body = do(t, srv, "POST", "/_matrix/client/v3/register", "", map[string]any{
		"type": "m.login.application_service", "username": "_bridge_x"})
	if code != 401 {
		t.Fatalf("appservice registration without a token: %d %v", code, body)
	}
	// Exclusive namespaces keep everyone else out.
	code, body = do(t, srv, "POST", "/_matrix/client/v3/register", "", map[string]any{
		"username": "_bridge_squatter", "password": "squatter-password", "auth": map[string]any{"type": "m.login.dummy"}})
	if code != 400 || body["errcode"] != "M_EXCLUSIVE" {
		t.Fatalf("user registration in an exclusive namespace: %d %v", code, body)
	}
	code, body = do(t, srv, "GET", "/_matrix/client/v3/register/available?username=_bridge_free", "", nil)
	if code != 400 || body["errcode"] != "M_EXCLUSIVE" {
		t.Fatalf("availability in an exclusive namespace: %d %v", code, body)
	}

	// Masquerading.
	ghost := "@_bridge_ghost0:localhost"
	code, body = do(t, srv, "GET", "/_matrix/client/v3/account/whoami?user_id="+url.QueryEscape(ghost), asToken, nil)
	if code != 200 || body["user_id"] != ghost {
		t.Fatalf("masquerade: %d %v", code, body)
	}
	code, body = do(t, srv, "GET", "/_matrix/client/v3/account/whoami?user_id="+url.QueryEscape("@someone:localhost"), asToken, nil)
	if code != 403 || body["errcode"] != "M_FORBIDDEN" {
		t.Fatalf("masquerade outside the namespace: %d %v", code, body)
	}
	code, body = do(t, srv, "GET", "/_matrix/client/v3/account/whoami?user_id="+url.QueryEscape("@_bridge_unregistered:localhost"), asToken, nil)
	if code != 403 {
		t.Fatalf("masquerade as an unregistered ghost: %d %v", code, body)
	}

	// A ghost sends into a room with a massaged timestamp.
	asCli, err := mautrix.NewClient(srv.URL, id.UserID(ghost), asToken)
	if err != nil {
		t.Fatal(err)
	}
	asCli.SetAppServiceUserID = true
	room, err := asCli.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat"})
	if err != nil {
		t.Fatalf("ghost createRoom: %v", err)
	}
	const ts = int64(1_500_000_000_000)
	path := fmt.Sprintf("/_matrix/client/v3/rooms/%s/send/m.room.message/t1?user_id=%s&ts=%d",
		url.PathEscape(string(room.RoomID)), url.QueryEscape(ghost), ts)
	code, body = do(t, srv, "PUT", path, asToken, map[string]any{"msgtype": "m.text", "body": "from the past"})
	if code != 200 {
		t.Fatalf("send with ts: %d %v", code, body)
	}
	ev, err := asCli.GetEvent(ctx, room.RoomID, id.EventID(body["event_id"].(string)))
	if err != nil || ev.Timestamp != ts || ev.Sender != id.UserID(ghost) {
		t.Fatalf("massaged event: %v %+v", err, ev)
	}
	// ts from a normal user is ignored.
	user := loginHuman(t, srv)
	if _, err := user.JoinRoomByID(ctx, room.RoomID); err != nil {
		t.Fatal(err)
	}
	code, body = do(t, srv, "PUT", fmt.Sprintf("/_matrix/client/v3/rooms/%s/send/m.room.message/t2?ts=%d",
		url.PathEscape(string(room.RoomID)), ts), user.AccessToken, map[string]any{"msgtype": "m.text", "body": "now"})
	if code != 200 {
		t.Fatalf("user send: %d %v", code, body)
	}
	ev, err = user.GetEvent(ctx, room.RoomID, id.EventID(body["event_id"].(string)))
	if err != nil || ev.Timestamp == ts {
		t.Fatalf("a user set origin_server_ts: %v %+v", err, ev)
	}

	// Ghost login.
	code, body = do(t, srv, "POST", "/_matrix/client/v3/login", asToken, map[string]any{
		"type": "m.login.application_service", "identifier": map[string]any{"type": "m.id.user", "user": "_bridge_ghost1"}})
	if code != 200 || body["user_id"] != "@_bridge_ghost1:localhost" {
		t.Fatalf("ghost login: %d %v", code, body)
	}
	code, who := do(t, srv, "GET", "/_matrix/client/v3/account/whoami", body["access_token"].(string), nil)
	if code != 200 || who["user_id"] != "@_bridge_ghost1:localhost" {
		t.Fatalf("ghost token: %d %v", code, who)
	}
	code, body = do(t, srv, "POST", "/_matrix/client/v3/login", asToken, map[string]any{
		"type": "m.login.application_service", "identifier": map[string]any{"type": "m.id.user", "user": "human"}})
	if code != 403 {
		t.Fatalf("appservice login of a user outside its namespace: %d %v", code, body)
	}
	// Media with the appservice token.
	req, _ := http.NewRequest("POST", srv.URL+"/_matrix/media/v3/upload?user_id="+url.QueryEscape(ghost), strings.NewReader("avatar"))
	req.Header.Set("Authorization", "Bearer "+asToken)
	req.Header.Set("Content-Type", "text/plain")
	r, err := http.DefaultClient.Do(req)
	if err != nil || r.StatusCode != 200 {
		t.Fatalf("appservice upload: %v %v", err, r)
	}
	r.Body.Close()
}

func TestBadRegistrationsStopStartup(t *testing.T) {
	good := writeFile(t, registration("one", "tok-a", "tok-b", "@_one_.*:localhost"))
	for name, files := range map[string][]string{
		"bad regex":       {writeFile(t, registration("two", "tok-c", "tok-d", "@_two_(.*:localhost"))},
		"duplicate token": {good, writeFile(t, registration("three", "tok-a", "tok-e", "@_three_.*:localhost"))},
		"duplicate id":    {good, writeFile(t, registration("one", "tok-f", "tok-g", "@_x_.*:localhost"))},
		"missing tokens":  {writeFile(t, "id: four\nsender_localpart: four\nnamespaces: {}\n")},
	} {
		t.Run(name, func(t *testing.T) {
			args := []string{"serve", "--data-dir", t.TempDir(), "--listen", "127.0.0.1:0"}
			for _, f := range files {
				args = append(args, "--appservice", f)
			}
			out, err := exec.Command(testserver.Binary(t), args...).CombinedOutput()
			if err == nil {
				t.Fatalf("started with %s", name)
			}
			lines := strings.Split(strings.TrimSpace(string(out)), "\n")
			last := lines[len(lines)-1]
			if !strings.HasPrefix(last, "tributary: appservice ") {
				t.Fatalf("error %q", out)
			}
		})
	}
}

// TestAppServiceRoomLists: an appservice publishes rooms in its networks'
// room lists; /publicRooms shows them by third_party_instance_id or with
// include_all_networks, and not in the server's own list.
func TestAppServiceRoomLists(t *testing.T) {
	reg := writeFile(t, registration("bridge", asToken, hsToken, "@_bridge_.*:localhost"))
	srv := testserver.Start(t, testserver.Options{Args: []string{"--appservice", reg, "--disable-rate-limits"}})
	human := loginHuman(t, srv)
	room, err := human.CreateRoom(t.Context(), &mautrix.ReqCreateRoom{Name: "bridged channel"})
	if err != nil {
		t.Fatal(err)
	}
	path := "/_matrix/client/v3/directory/list/appservice/irc/" + url.PathEscape(string(room.RoomID))
	if code, body := do(t, srv, "PUT", path, human.AccessToken, map[string]any{"visibility": "public"}); code != 401 {
		t.Fatalf("a user publishing in a network: %d %v", code, body)
	}
	if code, body := do(t, srv, "PUT", path, asToken, map[string]any{"visibility": "sideways"}); code != 400 {
		t.Fatalf("bad visibility: %d %v", code, body)
	}
	if code, body := do(t, srv, "PUT", "/_matrix/client/v3/directory/list/appservice/irc/!nope:localhost", asToken,
		map[string]any{"visibility": "public"}); code != 404 {
		t.Fatalf("unknown room: %d %v", code, body)
	}
	if code, body := do(t, srv, "PUT", path, asToken, map[string]any{"visibility": "public"}); code != 200 {
		t.Fatalf("publish: %d %v", code, body)
	}
	count := func(body map[string]any) int {
		chunk, _ := body["chunk"].([]any)
		return len(chunk)
	}
	for _, tc := range []struct {
		req  map[string]any
		want int
	}{
		{map[string]any{}, 0},
		{map[string]any{"third_party_instance_id": "bridge|irc"}, 1},
		{map[string]any{"third_party_instance_id": "bridge|slack"}, 0},
		{map[string]any{"include_all_networks": true}, 1},
	} {
		code, body := do(t, srv, "POST", "/_matrix/client/v3/publicRooms", human.AccessToken, tc.req)
		if code != 200 || count(body) != tc.want {
			t.Errorf("publicRooms %v: %d %v (want %d rooms)", tc.req, code, body, tc.want)
		}
	}
	if code, _ := do(t, srv, "POST", "/_matrix/client/v3/publicRooms", human.AccessToken,
		map[string]any{"include_all_networks": true, "third_party_instance_id": "bridge|irc"}); code != 400 {
		t.Errorf("both network parameters: %d", code)
	}
	if code, body := do(t, srv, "PUT", path, asToken, map[string]any{"visibility": "private"}); code != 200 {
		t.Fatalf("withdraw: %d %v", code, body)
	}
	if code, body := do(t, srv, "POST", "/_matrix/client/v3/publicRooms", human.AccessToken,
		map[string]any{"third_party_instance_id": "bridge|irc"}); code != 200 || count(body) != 0 {
		t.Errorf("after withdrawing: %d %v", code, body)
	}
}

// Aliases an appservice claims exclusively are refused to everyone else,
// as its user IDs are: through PUT /directory/room and createRoom's
// room_alias_name alike.
func TestExclusiveAliasNamespace(t *testing.T) {
	reg := writeFile(t, registration("bridge", asToken, hsToken, "@_bridge_.*:localhost"))
	srv := testserver.Start(t, testserver.Options{Args: []string{"--appservice", reg, "--disable-rate-limits"}})
	human := loginHuman(t, srv)
	room, err := human.CreateRoom(t.Context(), &mautrix.ReqCreateRoom{Preset: "public_chat"})
	if err != nil {
		t.Fatal(err)
	}
	path := "/_matrix/client/v3/directory/room/" + url.PathEscape("#_bridge_taken:localhost")
	code, body := do(t, srv, "PUT", path, human.AccessToken, map[string]any{"room_id": room.RoomID})
	if code != 400 || body["errcode"] != "M_EXCLUSIVE" {
		t.Fatalf("an ordinary user creating an alias of the namespace: %d %v", code, body)
	}
	code, body = do(t, srv, "POST", "/_matrix/client/v3/createRoom", human.AccessToken,
		map[string]any{"room_alias_name": "_bridge_room"})
	if code != 400 || body["errcode"] != "M_EXCLUSIVE" {
		t.Fatalf("createRoom with an alias of the namespace: %d %v", code, body)
	}
	code, body = do(t, srv, "GET", "/_matrix/client/v3/directory/room/"+url.PathEscape("#_bridge_room:localhost"), "", nil)
	if code != 404 {
		t.Fatalf("the refused createRoom left its alias behind: %d %v", code, body)
	}
	// The appservice itself may; others' aliases stay open to the user.
	if code, body := do(t, srv, "PUT", path, asToken, map[string]any{"room_id": room.RoomID}); code != 200 {
		t.Fatalf("the appservice creating an alias of its namespace: %d %v", code, body)
	}
	code, body = do(t, srv, "PUT", "/_matrix/client/v3/directory/room/"+url.PathEscape("#humans:localhost"),
		human.AccessToken, map[string]any{"room_id": room.RoomID})
	if code != 200 {
		t.Fatalf("an alias outside the namespace: %d %v", code, body)
	}
}
