// Package e2e holds end-to-end tests: each starts the real tributary binary
// (internal/testserver) and talks to it over HTTP, with the mautrix client
// where it has the endpoint and with raw requests where it does not.
package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/internal/pgtest"
	"github.com/tributary-hs/tributary/internal/testserver"
)

func TestMain(m *testing.M) {
	code := m.Run()
	pgtest.StopShared()
	os.Exit(code)
}

// openArgs start a server anyone may register on, without rate limits.
var openArgs = []string{"--enable-registration", "--disable-rate-limits"}

// Error codes the mautrix package has no value for. StatusCode is what
// Tributary answers with; wantErr checks both.
var (
	mWeakPassword      = mautrix.RespError{ErrCode: "M_WEAK_PASSWORD", StatusCode: http.StatusBadRequest}
	mMissingParam      = mautrix.RespError{ErrCode: "M_MISSING_PARAM", StatusCode: http.StatusBadRequest}
	mGuestForbidden    = mautrix.RespError{ErrCode: "M_GUEST_ACCESS_FORBIDDEN", StatusCode: http.StatusForbidden}
	mUserDeactivated   = mautrix.MUserDeactivated.WithStatus(http.StatusForbidden)
	mMethodNotAllowed  = mautrix.MUnrecognized.WithStatus(http.StatusMethodNotAllowed)
	mUnknownBadRequest = mautrix.RespError{ErrCode: "M_UNKNOWN", StatusCode: http.StatusBadRequest}
)

const defaultPassword = "correct horse battery"

// startOpen starts a server with open registration and no rate limits.
func startOpen(t *testing.T, extra ...string) *testserver.Server {
	t.Helper()
	return testserver.Start(t, testserver.Options{Args: append(slices.Clone(openArgs), extra...)})
}

// startClosed starts a server without open registration and without rate limits.
func startClosed(t *testing.T, extra ...string) *testserver.Server {
	t.Helper()
	return testserver.Start(t, testserver.Options{Args: append([]string{"--disable-rate-limits"}, extra...)})
}

// userID is the full user ID of a localpart on a server named localhost.
func userID(local string) id.UserID { return id.UserID("@" + local + ":localhost") }

// clientFor is a mautrix client for srv using token.
func clientFor(t testing.TB, srv *testserver.Server, user id.UserID, device id.DeviceID, token string) *mautrix.Client {
	t.Helper()
	cli := srv.Client(t)
	cli.UserID, cli.DeviceID, cli.AccessToken = user, device, token
	return cli
}

// register creates a user through m.login.dummy registration and returns a
// client logged in as it.
func register(t testing.TB, srv *testserver.Server, local, password string) *mautrix.Client {
	t.Helper()
	res, err := srv.Client(t).RegisterDummy(t.Context(), &mautrix.ReqRegister[any]{Username: local, Password: password,
		InitialDeviceDisplayName: "registration device"})
	if err != nil {
		t.Fatalf("register %s: %v", local, err)
	}
	if res.UserID != userID(local) || res.AccessToken == "" || res.DeviceID == "" {
		t.Fatalf("register %s: unexpected answer %+v", local, res)
	}
	return clientFor(t, srv, res.UserID, res.DeviceID, res.AccessToken)
}

// passwordLogin is the body of an m.login.password login as local.
func passwordLogin(local, password string) *mautrix.ReqLogin {
	return &mautrix.ReqLogin{Type: mautrix.AuthTypePassword, Password: password,
		Identifier: mautrix.UserIdentifier{Type: mautrix.IdentifierTypeUser, User: local}}
}

// login logs local in with a password (on a new device unless req sets one)
// and returns a client using the new access token.
func login(t testing.TB, srv *testserver.Server, req *mautrix.ReqLogin) *mautrix.Client {
	t.Helper()
	res, err := srv.Client(t).Login(t.Context(), req)
	if err != nil {
		t.Fatalf("login %s: %v", req.Identifier.User, err)
	}
	if res.AccessToken == "" || res.DeviceID == "" || res.UserID == "" {
		t.Fatalf("login %s: unexpected answer %+v", req.Identifier.User, res)
	}
	return clientFor(t, srv, res.UserID, res.DeviceID, res.AccessToken)
}

// wantErr checks that err is the Matrix error want: same errcode (through
// errors.Is, except for M_UNKNOWN whose errors.Is compares messages) and
// same HTTP status. It returns the error body's fields.
func wantErr(t testing.TB, err error, want mautrix.RespError) map[string]any {
	t.Helper()
	if err == nil {
		t.Fatalf("request succeeded, want %d %s", want.StatusCode, want.ErrCode)
	}
	var he mautrix.HTTPError
	if !errors.As(err, &he) || he.Response == nil {
		t.Fatalf("error %v is not an HTTP answer, want %d %s", err, want.StatusCode, want.ErrCode)
	}
	if he.RespError == nil {
		t.Fatalf("HTTP %d without errcode, want %d %s", he.Response.StatusCode, want.StatusCode, want.ErrCode)
	}
	if want.ErrCode == "M_UNKNOWN" {
		if he.RespError.ErrCode != "M_UNKNOWN" {
			t.Fatalf("got %v, want %d M_UNKNOWN", err, want.StatusCode)
		}
	} else if !errors.Is(err, want) {
		t.Fatalf("got %v, want %d %s", err, want.StatusCode, want.ErrCode)
	}
	if he.Response.StatusCode != want.StatusCode {
		t.Fatalf("got %v, want HTTP %d", err, want.StatusCode)
	}
	return he.RespError.ExtraData
}

// wantStatus checks a raw answer: its status and, unless code is "", its errcode.
func wantStatus(t testing.TB, what string, gotStatus int, body map[string]any, status int, code string) {
	t.Helper()
	if gotStatus != status {
		t.Fatalf("%s: HTTP %d %v, want %d %s", what, gotStatus, body, status, code)
	}
	if got, _ := body["errcode"].(string); got != code {
		t.Fatalf("%s: errcode %q (body %v), want %q", what, got, body, code)
	}
}

// flows turns the "flows" of a UIA answer into lists of stage names.
func flows(t testing.TB, body map[string]any) [][]string {
	t.Helper()
	raw, ok := body["flows"].([]any)
	if !ok {
		t.Fatalf("answer has no flows: %v", body)
	}
	var out [][]string
	for _, f := range raw {
		stages, _ := f.(map[string]any)["stages"].([]any)
		var names []string
		for _, s := range stages {
			names = append(names, s.(string))
		}
		out = append(out, names)
	}
	return out
}

// wantUIA checks a 401 user-interactive-auth answer offering exactly the
// one-stage flow stage, with errcode code ("" for a first step), and returns
// its session.
func wantUIA(t testing.TB, what string, status int, body map[string]any, stage, code string) string {
	t.Helper()
	wantStatus(t, what, status, body, http.StatusUnauthorized, code)
	if got := flows(t, body); len(got) != 1 || !slices.Equal(got[0], []string{stage}) {
		t.Fatalf("%s: flows %v, want [[%s]]", what, got, stage)
	}
	sess, _ := body["session"].(string)
	if sess == "" {
		t.Fatalf("%s: UIA answer without session: %v", what, body)
	}
	return sess
}

// passwordAuth is a UIA m.login.password stage for user.
func passwordAuth(user, password, session string) map[string]any {
	a := map[string]any{"type": "m.login.password", "password": password,
		"identifier": map[string]any{"type": "m.id.user", "user": user}}
	if session != "" {
		a["session"] = session
	}
	return a
}

// str reads a string field of a raw answer.
func str(t testing.TB, body map[string]any, key string) string {
	t.Helper()
	s, ok := body[key].(string)
	if !ok || s == "" {
		t.Fatalf("answer has no string %q: %v", key, body)
	}
	return s
}

// rawRequest sends a request with full control over headers and body and
// returns the response (body already read) and its body.
func rawRequest(t testing.TB, client *http.Client, method, url string, header http.Header, body io.Reader) (*http.Response, []byte) {
	t.Helper()
	if client == nil {
		client = http.DefaultClient
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading the answer: %v", method, url, err)
	}
	return resp, raw
}

// decode parses a JSON object answer.
func decode(t testing.TB, raw []byte) map[string]any {
	t.Helper()
	out := map[string]any{}
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("answer %q is not a JSON object: %v", raw, err)
	}
	return out
}

// clientFrom is an HTTP client whose connections come from the loopback
// address ip (127.0.0.x): the server sees each as a different client
// address, which lets rate-limit tests keep their per-IP buckets apart.
func clientFrom(ip string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 10 * time.Second}
	return &http.Client{Transport: &http.Transport{DialContext: d.DialContext}, Timeout: 30 * time.Second}
}

// jsonBody is a reader of v encoded as JSON.
func jsonBody(t testing.TB, v any) io.Reader {
	t.Helper()
	raw, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.NewReader(raw)
}

var jsonHeader = http.Header{"Content-Type": {"application/json"}}

// lines splits command output into its non-empty lines.
func lines(out string) []string {
	var ls []string
	for l := range strings.SplitSeq(out, "\n") {
		if strings.TrimSpace(l) != "" {
			ls = append(ls, l)
		}
	}
	return ls
}

// aliceAndBobInPublicRoom registers alice and bob and puts both in a public
// room alice creates.
func aliceAndBobInPublicRoom(t *testing.T, srv *testserver.Server) (alice, bob *mautrix.Client, room *mautrix.RespCreateRoom) {
	t.Helper()
	alice, bob = register(t, srv, "alice", defaultPassword), register(t, srv, "bob", defaultPassword)
	room, err := alice.CreateRoom(t.Context(), &mautrix.ReqCreateRoom{Preset: "public_chat"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bob.JoinRoomByID(t.Context(), room.RoomID); err != nil {
		t.Fatal(err)
	}
	return alice, bob, room
}
