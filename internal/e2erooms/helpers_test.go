// Package e2erooms holds end-to-end tests of the rooms API: each test starts
// the real tributary binary (internal/testserver) and drives it with the
// mautrix client where it has the endpoint and with raw requests where it
// does not. No test uses /sync (not built yet) or sleeps to synchronise.
package e2erooms

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/internal/testserver"
)

// openArgs start a server anyone may register on, without rate limits.
var openArgs = []string{"--enable-registration", "--disable-rate-limits"}

const password = "correct horse battery staple"

// env is one server shared by the subtests of a test.
type env struct {
	srv *testserver.Server
	n   atomic.Int64
}

func newEnv(t *testing.T) *env {
	t.Helper()
	return &env{srv: startServer(t)}
}

// startServer starts tributary with openArgs and extra arguments.
func startServer(t *testing.T, extra ...string) *testserver.Server {
	t.Helper()
	srv := testserver.Start(t, testserver.Options{Args: append(slices.Clone(openArgs), extra...)})
	// Runs before the server's own cleanup stops it (cleanups run last in, first out).
	t.Cleanup(closeIdleConnections)
	return srv
}

// closeIdleConnections closes the clients' idle keep-alive connections. The
// HTTP transport sometimes dials a connection that it never sends a request
// on; net/http's graceful Shutdown counts such a connection as busy for its
// first 5 seconds, so the server's SIGTERM shutdown would wait for it.
func closeIdleConnections() {
	if tr, ok := http.DefaultTransport.(*http.Transport); ok {
		tr.CloseIdleConnections()
	}
}

// restart stops the server (kill -9 when kill is set), starts it again on the
// same data and points the given clients at the new address.
func (e *env) restart(t *testing.T, kill bool, clients ...*mautrix.Client) {
	t.Helper()
	closeIdleConnections()
	e.srv = e.srv.Restart(kill)
	t.Cleanup(closeIdleConnections)
	u, err := url.Parse(e.srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range clients {
		c.HomeserverURL = u
	}
}

// user registers a new user whose localpart starts with name and returns a
// client logged in as them.
func (e *env) user(t testing.TB, name string) *mautrix.Client {
	t.Helper()
	local := fmt.Sprintf("%s%d", name, e.n.Add(1))
	return e.srv.Register(t, &mautrix.ReqRegister[any]{Username: local, Password: password})
}

// login opens a second session (a new device) for the user of cli.
func (e *env) login(t testing.TB, cli *mautrix.Client) *mautrix.Client {
	t.Helper()
	res, err := e.srv.Client(t).Login(ctx(t), &mautrix.ReqLogin{Type: mautrix.AuthTypePassword, Password: password,
		Identifier: mautrix.UserIdentifier{Type: mautrix.IdentifierTypeUser, User: cli.UserID.Localpart()}})
	if err != nil {
		t.Fatalf("login %s: %v", cli.UserID, err)
	}
	other := e.srv.Client(t)
	other.UserID, other.AccessToken, other.DeviceID = res.UserID, res.AccessToken, res.DeviceID
	if other.DeviceID == cli.DeviceID {
		t.Fatalf("login gave the same device %s", other.DeviceID)
	}
	return other
}

func ctx(t testing.TB) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return c
}

// do sends a raw request as cli (nil: without a token) and decodes a JSON
// object answer into out when out is not nil. It returns the status and the
// answer as a map.
func (e *env) do(t testing.TB, cli *mautrix.Client, method, path string, body any) (int, map[string]any) {
	t.Helper()
	status, raw := e.doRaw(t, cli, method, path, body)
	out := map[string]any{}
	if len(raw) > 0 && raw[0] == '{' {
		if err := json.Unmarshal(raw, &out); err != nil {
			t.Fatalf("%s %s: invalid JSON %q", method, path, raw)
		}
	}
	return status, out
}

// doInto is do decoding a 200 answer into out; other statuses fail the test.
func (e *env) doInto(t testing.TB, cli *mautrix.Client, method, path string, body, out any) {
	t.Helper()
	status, raw := e.doRaw(t, cli, method, path, body)
	if status != http.StatusOK {
		t.Fatalf("%s %s: HTTP %d %s", method, path, status, raw)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("%s %s: decode %q: %v", method, path, raw, err)
		}
	}
}

func (e *env) doRaw(t testing.TB, cli *mautrix.Client, method, path string, body any) (int, []byte) {
	t.Helper()
	token := ""
	if cli != nil {
		token = cli.AccessToken
	}
	return e.srv.DoRaw(t, method, path, token, body)
}

// p builds a client API path from segments, escaping each.
func p(segments ...any) string {
	var b strings.Builder
	b.WriteString("/_matrix/client")
	for _, s := range segments {
		b.WriteByte('/')
		b.WriteString(url.PathEscape(fmt.Sprint(s)))
	}
	return b.String()
}

// q appends a query string.
func q(path string, kv ...string) string {
	v := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		v.Add(kv[i], kv[i+1])
	}
	return path + "?" + v.Encode()
}

// wantErr checks that err is a Matrix error with this status and errcode.
func wantErr(t testing.TB, err error, status int, code string) {
	t.Helper()
	if err == nil {
		t.Fatalf("request succeeded, want %d %s", status, code)
	}
	var he mautrix.HTTPError
	if !errors.As(err, &he) || he.Response == nil {
		t.Fatalf("error %v is not an HTTP answer, want %d %s", err, status, code)
	}
	got := ""
	if he.RespError != nil {
		got = he.RespError.ErrCode
	}
	if he.Response.StatusCode != status || got != code {
		t.Fatalf("got HTTP %d %s (%v), want %d %s", he.Response.StatusCode, got, err, status, code)
	}
}

// wantStatus checks a raw answer's status and errcode ("" for none).
func wantStatus(t testing.TB, what string, status int, body map[string]any, wantStatus int, code string) {
	t.Helper()
	got, _ := body["errcode"].(string)
	if status != wantStatus || got != code {
		t.Fatalf("%s: HTTP %d %v, want %d %s", what, status, body, wantStatus, code)
	}
}

// must(call()).of(t) is the result of call, failing the test on an error.
func must[T any](v T, err error) result[T] { return result[T]{v, err} }

type result[T any] struct {
	v   T
	err error
}

func (r result[T]) of(t testing.TB) T {
	t.Helper()
	if r.err != nil {
		t.Fatal(r.err)
	}
	return r.v
}

// createRoom creates a room and returns its ID.
func createRoom(t testing.TB, cli *mautrix.Client, req *mautrix.ReqCreateRoom) id.RoomID {
	t.Helper()
	if req == nil {
		req = &mautrix.ReqCreateRoom{}
	}
	res, err := cli.CreateRoom(ctx(t), req)
	if err != nil {
		t.Fatalf("createRoom as %s: %v", cli.UserID, err)
	}
	return res.RoomID
}

// publicRoom creates a public_chat room with the given version ("" default).
func publicRoom(t testing.TB, cli *mautrix.Client, version id.RoomVersion) id.RoomID {
	t.Helper()
	return createRoom(t, cli, &mautrix.ReqCreateRoom{Preset: "public_chat", RoomVersion: version})
}

func sendText(t testing.TB, cli *mautrix.Client, room id.RoomID, body string) id.EventID {
	t.Helper()
	res, err := cli.SendText(ctx(t), room, body)
	if err != nil {
		t.Fatalf("send %q as %s: %v", body, cli.UserID, err)
	}
	return res.EventID
}

func sendEvent(t testing.TB, cli *mautrix.Client, room id.RoomID, evType string, content any) id.EventID {
	t.Helper()
	res, err := cli.SendMessageEvent(ctx(t), room, event.Type{Type: evType, Class: event.MessageEventType}, content)
	if err != nil {
		t.Fatalf("send %s as %s: %v", evType, cli.UserID, err)
	}
	return res.EventID
}

func sendState(t testing.TB, cli *mautrix.Client, room id.RoomID, evType, key string, content any) id.EventID {
	t.Helper()
	res, err := cli.SendStateEvent(ctx(t), room, event.Type{Type: evType, Class: event.StateEventType}, key, content)
	if err != nil {
		t.Fatalf("state %s/%s as %s: %v", evType, key, cli.UserID, err)
	}
	return res.EventID
}

func join(t testing.TB, cli *mautrix.Client, room id.RoomID) {
	t.Helper()
	if _, err := cli.JoinRoomByID(ctx(t), room); err != nil {
		t.Fatalf("%s joins %s: %v", cli.UserID, room, err)
	}
}

func invite(t testing.TB, cli *mautrix.Client, room id.RoomID, user id.UserID) {
	t.Helper()
	if _, err := cli.InviteUser(ctx(t), room, &mautrix.ReqInviteUser{UserID: user}); err != nil {
		t.Fatalf("%s invites %s: %v", cli.UserID, user, err)
	}
}

func leave(t testing.TB, cli *mautrix.Client, room id.RoomID) {
	t.Helper()
	if _, err := cli.LeaveRoom(ctx(t), room); err != nil {
		t.Fatalf("%s leaves %s: %v", cli.UserID, room, err)
	}
}

// stateOf returns the content of a state event.
func stateOf(t testing.TB, cli *mautrix.Client, room id.RoomID, evType, key string) map[string]any {
	t.Helper()
	out := map[string]any{}
	if err := cli.StateEvent(ctx(t), room, event.Type{Type: evType, Class: event.StateEventType}, key, &out); err != nil {
		t.Fatalf("get state %s/%q: %v", evType, key, err)
	}
	return out
}

// page is one page of /messages.
func page(t testing.TB, cli *mautrix.Client, room id.RoomID, from, to string, dir mautrix.Direction, limit int,
	filter *mautrix.FilterPart) *mautrix.RespMessages {
	t.Helper()
	res, err := cli.Messages(ctx(t), room, from, to, dir, filter, limit)
	if err != nil {
		t.Fatalf("messages of %s as %s: %v", room, cli.UserID, err)
	}
	return res
}

// timeline pages through the whole room in dir with pages of limit events,
// checking that no event repeats and that the pages chain.
func timeline(t testing.TB, cli *mautrix.Client, room id.RoomID, dir mautrix.Direction, limit int) []*event.Event {
	t.Helper()
	var all []*event.Event
	seen := map[id.EventID]bool{}
	from := ""
	for i := 0; ; i++ {
		if i > 10000 {
			t.Fatal("pagination does not end")
		}
		res := page(t, cli, room, from, "", dir, limit, nil)
		if len(res.Chunk) > limit {
			t.Fatalf("page of %d events, limit %d", len(res.Chunk), limit)
		}
		for _, ev := range res.Chunk {
			if seen[ev.ID] {
				t.Fatalf("event %s (%s) repeated across pages", ev.ID, ev.Type.Type)
			}
			seen[ev.ID] = true
			all = append(all, ev)
		}
		if res.End == "" || len(res.Chunk) == 0 {
			return all
		}
		from = res.End
	}
}

// bodies are the bodies of the m.room.message events of evs, in order.
func bodies(evs []*event.Event) []string {
	var out []string
	for _, ev := range evs {
		if ev.Type.Type == "m.room.message" {
			if b, ok := ev.Content.Raw["body"].(string); ok {
				out = append(out, b)
			}
		}
	}
	return out
}

func ids(evs []*event.Event) []id.EventID {
	out := make([]id.EventID, len(evs))
	for i, ev := range evs {
		out[i] = ev.ID
	}
	return out
}

func reversed[T any](s []T) []T {
	out := slices.Clone(s)
	slices.Reverse(out)
	return out
}

func equal[T comparable](t testing.TB, what string, got, want []T) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Fatalf("%s:\n got  %v\n want %v", what, got, want)
	}
}

// rawEvent fetches an event as JSON (to read fields mautrix does not parse).
func (e *env) rawEvent(t testing.TB, cli *mautrix.Client, room id.RoomID, eventID id.EventID) map[string]any {
	t.Helper()
	var out map[string]any
	e.doInto(t, cli, http.MethodGet, p("v3", "rooms", room, "event", eventID), nil, &out)
	return out
}

// path reads a nested field of a decoded JSON object ("a.b.c").
func path(v any, keys ...string) any {
	for _, k := range keys {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}

// members returns user → membership from /members as cli.
func members(t testing.TB, cli *mautrix.Client, room id.RoomID, req mautrix.ReqMembers) map[id.UserID]string {
	t.Helper()
	res, err := cli.Members(ctx(t), room, req)
	if err != nil {
		t.Fatalf("members of %s: %v", room, err)
	}
	out := map[id.UserID]string{}
	for _, ev := range res.Chunk {
		out[id.UserID(*ev.StateKey)] = string(ev.Content.AsMember().Membership)
	}
	return out
}

func unixMilli(ms int64) time.Time { return time.UnixMilli(ms) }
