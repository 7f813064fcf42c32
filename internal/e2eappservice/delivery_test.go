package e2eappservice

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"maunium.net/go/mautrix"

	"github.com/tributary-hs/tributary/internal/testserver"
)

// fakeAS records the transactions it gets; while failing it answers 500.
type fakeAS struct {
	mu       sync.Mutex
	failing  bool
	attempts []string // txn IDs, in order of arrival
	failed   []string // txn IDs answered with 500
	acked    []string // txn IDs acknowledged
	bodies   []string // message bodies of acknowledged transactions, in order
	auth     []string
	got      chan struct{}
}

func (f *fakeAS) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/_matrix/app/v1/ping" && r.Method == http.MethodPost {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{}`))
		return
	}
	txn, ok := strings.CutPrefix(r.URL.Path, "/_matrix/app/v1/transactions/")
	if !ok || r.Method != http.MethodPut {
		http.Error(w, `{"errcode":"M_UNRECOGNIZED"}`, 404)
		return
	}
	var body struct {
		Events []struct {
			Type    string         `json:"type"`
			Content map[string]any `json:"content"`
		} `json:"events"`
	}
	_ = json.NewDecoder(r.Body).Decode(&body)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.attempts = append(f.attempts, txn)
	f.auth = append(f.auth, r.Header.Get("Authorization"))
	defer func() {
		select {
		case f.got <- struct{}{}:
		default:
		}
	}()
	if f.failing {
		f.failed = append(f.failed, txn)
		http.Error(w, `{}`, 500)
		return
	}
	f.acked = append(f.acked, txn)
	for _, e := range body.Events {
		if e.Type == "m.room.message" {
			f.bodies = append(f.bodies, fmt.Sprint(e.Content["body"]))
		}
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write([]byte(`{}`))
}

func (f *fakeAS) snapshot() ([]string, []string, []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string{}, f.attempts...), append([]string{}, f.bodies...), append([]string{}, f.auth...)
}

// waitFor waits for the fake appservice's state to satisfy cond, woken by
// each transaction it receives.
func (f *fakeAS) waitFor(t *testing.T, what string, cond func(attempts, bodies []string) bool) {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		a, b, _ := f.snapshot()
		if cond(a, b) {
			return
		}
		select {
		case <-f.got:
		case <-deadline:
			t.Fatalf("timed out waiting for %s: attempts %v, bodies %v", what, a, b)
		}
	}
}

func TestTransactionsInOrderAcrossFailuresAndRestart(t *testing.T) {
	fake := &fakeAS{got: make(chan struct{}, 1)}
	asSrv := httptest.NewServer(fake)
	defer asSrv.Close()
	reg := writeFile(t, strings.Replace(registration("bridge", asToken, hsToken, "@_bridge_.*:localhost"),
		"url: null", "url: "+asSrv.URL, 1))
	srv := testserver.Start(t, testserver.Options{Args: []string{"--appservice", reg, "--disable-rate-limits"}})
	ctx := context.Background()

	code, body := do(t, srv, "POST", "/_matrix/client/v3/register", asToken, map[string]any{
		"type": "m.login.application_service", "username": "_bridge_alice", "inhibit_login": true})
	if code != 200 {
		t.Fatalf("ghost: %d %v", code, body)
	}
	human := loginHuman(t, srv)
	room, err := human.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat"})
	if err != nil {
		t.Fatal(err)
	}
	// The ghost joins: from then on the room's events concern the appservice.
	code, body = do(t, srv, "POST", "/_matrix/client/v3/rooms/"+string(room.RoomID)+"/join?user_id=%40_bridge_alice%3Alocalhost", asToken, map[string]any{})
	if code != 200 {
		t.Fatalf("ghost join: %d %v", code, body)
	}
	send := func(text string) {
		t.Helper()
		if _, err := human.SendText(ctx, room.RoomID, text); err != nil {
			t.Fatal(err)
		}
	}
	send("one")
	send("two")
	fake.waitFor(t, "the first messages", func(_, b []string) bool { return len(b) >= 2 })

	// The appservice fails: retries carry the same transaction ID.
	fake.mu.Lock()
	fake.failing = true
	fake.mu.Unlock()
	send("three")
	fake.waitFor(t, "a failed attempt", func(_, _ []string) bool {
		fake.mu.Lock()
		defer fake.mu.Unlock()
		return len(fake.failed) > 0
	})
	fake.mu.Lock()
	failedTxn := fake.failed[0]
	fake.mu.Unlock()

	// The homeserver dies with the transaction unacknowledged; events keep coming after restart.
	srv2 := srv.Restart(true)
	human2 := srv2.Client(t)
	human2.UserID, human2.AccessToken = human.UserID, human.AccessToken
	if _, err := human2.SendText(ctx, room.RoomID, "four"); err != nil {
		t.Fatal(err)
	}
	fake.mu.Lock()
	fake.failing = false
	fake.mu.Unlock()
	fake.waitFor(t, "every message", func(_, b []string) bool { return len(b) >= 4 })
	attempts, bodies, auth := fake.snapshot()
	if fmt.Sprint(bodies) != "[one two three four]" {
		t.Fatalf("delivered %v, want each message once, in order", bodies)
	}
	// The failed transaction was acknowledged later under the same ID
	// (after the restart), and no ID was acknowledged twice.
	fake.mu.Lock()
	acked := append([]string{}, fake.acked...)
	fake.mu.Unlock()
	if indexOf(acked, failedTxn) < 0 {
		t.Fatalf("transaction %s was not retried with its ID: attempts %v, acked %v", failedTxn, attempts, acked)
	}
	seen := map[string]bool{}
	for _, a := range acked {
		if seen[a] {
			t.Fatalf("transaction %s acknowledged twice: %v", a, acked)
		}
		seen[a] = true
	}
	for _, h := range auth {
		if h != "Bearer "+hsToken {
			t.Fatalf("Authorization %q", h)
		}
	}
}

// TestDeliveryResumesWhenTheAppServiceIsBack: after failed deliveries
// the queue waits out its retry backoff — an hour here, longer than the
// test — unless the appservice shows it is back: a successful ping, or
// any request it makes, sends what waits at once.
func TestDeliveryResumesWhenTheAppServiceIsBack(t *testing.T) {
	fake := &fakeAS{got: make(chan struct{}, 1)}
	asSrv := httptest.NewServer(fake)
	defer asSrv.Close()
	reg := writeFile(t, strings.Replace(registration("bridge", asToken, hsToken, "@_bridge_.*:localhost"),
		"url: null", "url: "+asSrv.URL, 1))
	dataDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dataDir, "tributary.yaml"),
		[]byte("app_services:\n  retry_backoff: 1h\n  max_retry_backoff: 1h\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	srv := testserver.Start(t, testserver.Options{DataDir: dataDir, Args: []string{"--appservice", reg, "--disable-rate-limits"}})
	ctx := context.Background()
	if code, body := do(t, srv, "POST", "/_matrix/client/v3/register", asToken, map[string]any{
		"type": "m.login.application_service", "username": "_bridge_alice", "inhibit_login": true}); code != 200 {
		t.Fatalf("ghost: %d %v", code, body)
	}
	human := loginHuman(t, srv)
	room, err := human.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat"})
	if err != nil {
		t.Fatal(err)
	}
	if code, body := do(t, srv, "POST", "/_matrix/client/v3/rooms/"+string(room.RoomID)+"/join?user_id=%40_bridge_alice%3Alocalhost",
		asToken, map[string]any{}); code != 200 {
		t.Fatalf("ghost join: %d %v", code, body)
	}
	setFailing := func(b bool) {
		fake.mu.Lock()
		fake.failing = b
		fake.mu.Unlock()
	}
	failures := func() int {
		fake.mu.Lock()
		defer fake.mu.Unlock()
		return len(fake.failed)
	}
	// failAndRecover sends a message while the appservice fails, waits
	// until the server has recorded the failure (its log line comes after
	// it told the notifier), and lets the appservice answer again.
	failAndRecover := func(text string) {
		t.Helper()
		setFailing(true)
		before, logged := failures(), strings.Count(srv.Logs(), `"msg":"delivery failed"`)
		if _, err := human.SendText(ctx, room.RoomID, text); err != nil {
			t.Fatal(err)
		}
		fake.waitFor(t, "a failed attempt", func(_, _ []string) bool { return failures() > before })
		waitLog(t, srv, `"msg":"delivery failed"`, logged+1)
		setFailing(false)
	}

	failAndRecover("one")
	code, body := do(t, srv, "POST", "/_matrix/client/v1/appservice/bridge/ping", asToken, map[string]any{})
	if code != 200 {
		t.Fatalf("ping: %d %v", code, body)
	}
	fake.waitFor(t, `"one" after the ping`, func(_, b []string) bool { return slices.Contains(b, "one") })

	failAndRecover("two")
	if code, body := do(t, srv, "GET", "/_matrix/client/v3/account/whoami", asToken, nil); code != 200 {
		t.Fatalf("whoami: %d %v", code, body)
	}
	fake.waitFor(t, `"two" after a request of the appservice`, func(_, b []string) bool { return slices.Contains(b, "two") })
	if _, b, _ := fake.snapshot(); fmt.Sprint(b) != "[one two]" {
		t.Fatalf("delivered %v, want each message once, in order", b)
	}
}

// waitLog waits until the server's logs hold the text n times.
func waitLog(t *testing.T, srv *testserver.Server, text string, n int) {
	t.Helper()
	deadline := time.After(30 * time.Second)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for strings.Count(srv.Logs(), text) < n {
		select {
		case <-tick.C:
		case <-deadline:
			t.Fatalf("the server did not log %s %d times", text, n)
		}
	}
}

func indexOf(xs []string, x string) int {
	for i, v := range xs {
		if v == x {
			return i
		}
	}
	return -1
}

func TestPing(t *testing.T) {
	var got struct {
		TxnID string `json:"transaction_id"`
	}
	var auth string
	asSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/_matrix/app/v1/ping" {
			http.Error(w, "{}", 404)
			return
		}
		auth = r.Header.Get("Authorization")
		_ = json.NewDecoder(r.Body).Decode(&got)
		_, _ = w.Write([]byte(`{}`))
	}))
	defer asSrv.Close()
	withURL := writeFile(t, strings.Replace(registration("bridge", asToken, hsToken, "@_bridge_.*:localhost"), "url: null", "url: "+asSrv.URL, 1))
	noURL := writeFile(t, registration("other", "other-as-token", "other-hs-token", "@_other_.*:localhost"))
	srv := testserver.Start(t, testserver.Options{Args: []string{"--appservice", withURL, "--appservice", noURL}})

	code, body := do(t, srv, "POST", "/_matrix/client/v1/appservice/bridge/ping", asToken, map[string]any{"transaction_id": "ping-1"})
	if code != 200 || body["duration_ms"] == nil || got.TxnID != "ping-1" || auth != "Bearer "+hsToken {
		t.Fatalf("ping: %d %v (appservice saw %q, %q)", code, body, got.TxnID, auth)
	}
	code, body = do(t, srv, "POST", "/_matrix/client/v1/appservice/bridge/ping", "other-as-token", map[string]any{})
	if code != 403 {
		t.Fatalf("ping of another appservice: %d %v", code, body)
	}
	code, body = do(t, srv, "POST", "/_matrix/client/v1/appservice/other/ping", "other-as-token", map[string]any{})
	if code != 400 || body["errcode"] != "M_URL_NOT_SET" {
		t.Fatalf("ping without a URL: %d %v", code, body)
	}
	asSrv.Close()
	code, body = do(t, srv, "POST", "/_matrix/client/v1/appservice/bridge/ping", asToken, map[string]any{})
	if code != 502 || body["errcode"] != "M_CONNECTION_FAILED" {
		t.Fatalf("ping of an appservice that is down: %d %v", code, body)
	}
}

// Unknown users and aliases of a namespace are asked of the appservice,
// which creates them.
func TestUserAndAliasQueries(t *testing.T) {
	var srv *testserver.Server
	asSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+hsToken {
			http.Error(w, `{"errcode":"M_FORBIDDEN"}`, http.StatusForbidden)
			return
		}
		switch {
		case strings.HasPrefix(r.URL.Path, "/_matrix/app/v1/users/"):
			user := strings.TrimPrefix(r.URL.Path, "/_matrix/app/v1/users/")
			if user != "@_bridge_known:localhost" {
				http.Error(w, `{"errcode":"M_NOT_FOUND"}`, 404)
				return
			}
			code, _ := srv.Do(t, "POST", "/_matrix/client/v3/register", asToken, map[string]any{
				"type": "m.login.application_service", "username": "_bridge_known", "inhibit_login": true})
			w.WriteHeader(map[bool]int{true: 200, false: 500}[code == 200])
			_, _ = w.Write([]byte(`{}`))
		case strings.HasPrefix(r.URL.Path, "/_matrix/app/v1/rooms/"):
			code, _ := srv.Do(t, "POST", "/_matrix/client/v3/createRoom", asToken, map[string]any{
				"room_alias_name": "_bridge_lobby", "preset": "public_chat"})
			w.WriteHeader(map[bool]int{true: 200, false: 500}[code == 200])
			_, _ = w.Write([]byte(`{}`))
		default:
			_, _ = w.Write([]byte(`{}`))
		}
	}))
	defer asSrv.Close()
	reg := writeFile(t, strings.Replace(registration("bridge", asToken, hsToken, "@_bridge_.*:localhost"), "url: null", "url: "+asSrv.URL, 1))
	srv = testserver.Start(t, testserver.Options{Args: []string{"--appservice", reg, "--disable-rate-limits", "--enable-registration"}})
	user := srv.Client(t)
	if _, err := user.RegisterDummy(context.Background(), &mautrix.ReqRegister[any]{Username: "curious", Password: "curious-password"}); err != nil {
		t.Fatal(err)
	}
	code, body := do(t, srv, "GET", "/_matrix/client/v3/profile/@_bridge_known:localhost", "", nil)
	if code != 200 || body["displayname"] != "_bridge_known" {
		t.Fatalf("profile of a user the appservice creates: %d %v", code, body)
	}
	code, body = do(t, srv, "GET", "/_matrix/client/v3/profile/@_bridge_unknown:localhost", "", nil)
	if code != 404 {
		t.Fatalf("profile of a user the appservice does not know: %d %v", code, body)
	}
	code, body = do(t, srv, "GET", "/_matrix/client/v3/directory/room/%23_bridge_lobby:localhost", "", nil)
	if code != 200 || !strings.HasPrefix(fmt.Sprint(body["room_id"]), "!") {
		t.Fatalf("alias the appservice creates: %d %v", code, body)
	}
}

func TestThirdPartyLookups(t *testing.T) {
	asSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/_matrix/app/v1/thirdparty/protocol/irc":
			_, _ = w.Write([]byte(`{"user_fields":["network","nickname"],"location_fields":["network","channel"],"icon":"mxc://x/y","field_types":{},"instances":[]}`))
		case "/_matrix/app/v1/thirdparty/location/irc":
			_, _ = w.Write([]byte(`[{"alias":"#_bridge_irc_chat:localhost","protocol":"irc","fields":{"channel":"` + r.URL.Query().Get("channel") + `"}}]`))
		case "/_matrix/app/v1/thirdparty/user":
			_, _ = w.Write([]byte(`[{"userid":"` + r.URL.Query().Get("userid") + `","protocol":"irc","fields":{"nickname":"bob"}}]`))
		default:
			http.Error(w, `{"errcode":"M_NOT_FOUND"}`, 404)
		}
	}))
	defer asSrv.Close()
	body := strings.Replace(registration("bridge", asToken, hsToken, "@_bridge_.*:localhost"), "url: null", "url: "+asSrv.URL, 1)
	body += "protocols: [irc]\n"
	srv := testserver.Start(t, testserver.Options{Args: []string{"--appservice", writeFile(t, body), "--enable-registration", "--disable-rate-limits"}})
	user := srv.Client(t)
	resp, err := user.RegisterDummy(context.Background(), &mautrix.ReqRegister[any]{Username: "asker", Password: "asker-password"})
	if err != nil {
		t.Fatal(err)
	}
	tok := resp.AccessToken
	code, got := do(t, srv, "GET", "/_matrix/client/v3/thirdparty/protocols", tok, nil)
	if code != 200 || got["irc"] == nil {
		t.Fatalf("protocols: %d %v", code, got)
	}
	code, got = do(t, srv, "GET", "/_matrix/client/v3/thirdparty/protocol/xmpp", tok, nil)
	if code != 404 {
		t.Fatalf("unknown protocol: %d %v", code, got)
	}
	code, raw := srv.DoRaw(t, "GET", "/_matrix/client/v3/thirdparty/location/irc?channel=%23chat", tok, nil)
	if code != 200 || !strings.Contains(string(raw), `"channel":"#chat"`) {
		t.Fatalf("location: %d %s", code, raw)
	}
	code, raw = srv.DoRaw(t, "GET", "/_matrix/client/v3/thirdparty/user?userid=%40_bridge_bob%3Alocalhost", tok, nil)
	if code != 200 || !strings.Contains(string(raw), `"nickname":"bob"`) {
		t.Fatalf("user reverse lookup: %d %s", code, raw)
	}
	code, _ = do(t, srv, "GET", "/_matrix/client/v3/thirdparty/protocols", "", nil)
	if code != 401 {
		t.Fatalf("protocols without a token: %d", code)
	}
}
