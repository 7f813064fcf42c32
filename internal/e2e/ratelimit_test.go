package e2e

import (
	"io"
	"net/http"
	"net/url"
	"strconv"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/internal/testserver"
)

// TestRateLimits runs a server with the default limits (bursts of 3). Each
// scenario sends from its own loopback address, so per-address buckets do
// not mix.
func TestRateLimits(t *testing.T) {
	srv := testserver.Start(t, testserver.Options{Args: []string{"--enable-registration"}})
	for _, u := range []string{"victim", "bystander"} {
		if out, err := srv.Run(t, "", "user", "add", u, "--password", defaultPassword); err != nil {
			t.Fatalf("user add %s: %v\n%s", u, err, out)
		}
	}
	send := func(t *testing.T, ip, method, path string, body any) (*http.Response, map[string]any) {
		t.Helper()
		var hdr http.Header
		var rd io.Reader
		if body != nil {
			hdr, rd = jsonHeader, jsonBody(t, body)
		}
		client := clientFrom(ip)
		defer client.CloseIdleConnections()
		resp, raw := rawRequest(t, client, method, srv.URL+path, hdr, rd)
		return resp, decode(t, raw)
	}
	loginFrom := func(t *testing.T, ip, user, password string) (*http.Response, map[string]any) {
		t.Helper()
		return send(t, ip, "POST", "/_matrix/client/v3/login", map[string]any{"type": "m.login.password",
			"identifier": map[string]any{"type": "m.id.user", "user": user}, "password": password})
	}
	wantLimited := func(t *testing.T, what string, resp *http.Response, body map[string]any) {
		t.Helper()
		wantStatus(t, what, resp.StatusCode, body, http.StatusTooManyRequests, "M_LIMIT_EXCEEDED")
		ms, ok := body["retry_after_ms"].(float64)
		if !ok || ms <= 0 {
			t.Fatalf("%s: retry_after_ms %v, want > 0", what, body["retry_after_ms"])
		}
		secs, err := strconv.Atoi(resp.Header.Get("Retry-After"))
		if err != nil || secs < 1 || int64(secs) != (int64(ms)+999)/1000 {
			t.Fatalf("%s: Retry-After %q for retry_after_ms %v", what, resp.Header.Get("Retry-After"), ms)
		}
	}

	t.Run("logins per address", func(t *testing.T) {
		for i := range 3 {
			resp, body := loginFrom(t, "127.0.0.2", "bystander", defaultPassword)
			wantStatus(t, "login "+strconv.Itoa(i+1), resp.StatusCode, body, http.StatusOK, "")
		}
		resp, body := loginFrom(t, "127.0.0.2", "bystander", defaultPassword)
		wantLimited(t, "4th login", resp, body)
		// Another address has its own bucket.
		resp, body = loginFrom(t, "127.0.0.3", "bystander", defaultPassword)
		wantStatus(t, "login from another address", resp.StatusCode, body, http.StatusOK, "")
	})

	t.Run("failed logins per account", func(t *testing.T) {
		for i := range 3 {
			resp, body := loginFrom(t, "127.0.0.4", "victim", "wrong password")
			wantStatus(t, "wrong password "+strconv.Itoa(i+1), resp.StatusCode, body, http.StatusForbidden, "M_FORBIDDEN")
		}
		// From a fresh address, the right password is refused for this
		// account only.
		resp, body := loginFrom(t, "127.0.0.5", "victim", defaultPassword)
		wantLimited(t, "right password after 3 failures", resp, body)
		resp, body = loginFrom(t, "127.0.0.5", "@victim:localhost", defaultPassword)
		wantLimited(t, "same account by full user ID", resp, body)
		resp, body = loginFrom(t, "127.0.0.5", "bystander", defaultPassword)
		wantStatus(t, "another account", resp.StatusCode, body, http.StatusOK, "")
	})

	t.Run("successful logins do not count as failures", func(t *testing.T) {
		// bystander has logged in five times above without being limited
		// per account; one more from a fresh address still works.
		resp, body := loginFrom(t, "127.0.0.6", "bystander", defaultPassword)
		wantStatus(t, "login", resp.StatusCode, body, http.StatusOK, "")
	})

	t.Run("registration per address", func(t *testing.T) {
		for i := range 3 {
			resp, body := send(t, "127.0.0.7", "GET", "/_matrix/client/v3/register/available?username=free"+strconv.Itoa(i), nil)
			wantStatus(t, "available "+strconv.Itoa(i+1), resp.StatusCode, body, http.StatusOK, "")
		}
		resp, body := send(t, "127.0.0.7", "GET", "/_matrix/client/v3/register/available?username=free", nil)
		wantLimited(t, "4th availability check", resp, body)
		resp, body = send(t, "127.0.0.7", "POST", "/_matrix/client/v3/register", map[string]any{
			"username": "newbie", "password": defaultPassword, "auth": map[string]any{"type": "m.login.dummy"}})
		wantLimited(t, "register after 3 checks", resp, body)
		resp, body = send(t, "127.0.0.8", "POST", "/_matrix/client/v3/register", map[string]any{
			"username": "newbie", "password": defaultPassword, "auth": map[string]any{"type": "m.login.dummy"}})
		wantStatus(t, "register from another address", resp.StatusCode, body, http.StatusOK, "")
	})

	t.Run("sends per user", func(t *testing.T) {
		token := func(ip, user string) *mautrix.Client {
			resp, body := loginFrom(t, ip, user, defaultPassword)
			wantStatus(t, "login "+user, resp.StatusCode, body, http.StatusOK, "")
			return clientFor(t, srv, id.UserID(str(t, body, "user_id")), id.DeviceID(str(t, body, "device_id")),
				str(t, body, "access_token"))
		}
		for _, u := range []string{"chatty", "quiet"} {
			if out, err := srv.Run(t, "", "user", "add", u, "--password", defaultPassword); err != nil {
				t.Fatalf("user add %s: %v\n%s", u, err, out)
			}
		}
		victim, bystander := token("127.0.0.9", "chatty"), token("127.0.0.10", "quiet")
		room, err := victim.CreateRoom(t.Context(), &mautrix.ReqCreateRoom{Preset: "public_chat"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := bystander.JoinRoomByID(t.Context(), room.RoomID); err != nil {
			t.Fatal(err)
		}
		base := "/_matrix/client/v3/rooms/" + url.PathEscape(room.RoomID.String())
		sendAs := func(cli *mautrix.Client, path string) (*http.Response, map[string]any) {
			hdr := jsonHeader.Clone()
			hdr.Set("Authorization", "Bearer "+cli.AccessToken)
			resp, raw := rawRequest(t, nil, "PUT", srv.URL+base+path, hdr, jsonBody(t, map[string]any{"msgtype": "m.text", "body": "hi"}))
			return resp, decode(t, raw)
		}
		// The default burst is 10 events: messages, state and redactions alike.
		var last string
		for i := range 10 {
			path := "/send/m.room.message/burst" + strconv.Itoa(i)
			if i == 9 {
				path = "/state/m.room.topic"
			}
			resp, body := sendAs(victim, path)
			wantStatus(t, "send "+strconv.Itoa(i+1), resp.StatusCode, body, http.StatusOK, "")
			if id, _ := body["event_id"].(string); id != "" {
				last = id
			}
		}
		resp, body := sendAs(victim, "/send/m.room.message/burst10")
		wantLimited(t, "11th send", resp, body)
		resp, body = sendAs(victim, "/redact/"+url.PathEscape(last)+"/r1")
		wantLimited(t, "redaction after the burst", resp, body)
		// Others keep sending.
		resp, body = sendAs(bystander, "/send/m.room.message/other")
		wantStatus(t, "another user's send", resp.StatusCode, body, http.StatusOK, "")
	})
}

// TestRateLimitsDisabled: with --disable-rate-limits, bursts and failures
// are never limited.
func TestRateLimitsDisabled(t *testing.T) {
	srv := startOpen(t)
	register(t, srv, "busy", defaultPassword)
	for i := range 5 {
		st, body := srv.Do(t, "POST", "/_matrix/client/v3/login", "", map[string]any{"type": "m.login.password",
			"user": "busy", "password": "wrong password"})
		wantStatus(t, "wrong password "+strconv.Itoa(i+1), st, body, http.StatusForbidden, "M_FORBIDDEN")
	}
	login(t, srv, passwordLogin("busy", defaultPassword))
	for i := range 5 {
		st, body := srv.Do(t, "GET", "/_matrix/client/v3/register/available?username=x"+strconv.Itoa(i), "", nil)
		wantStatus(t, "available", st, body, http.StatusOK, "")
	}
}
