// Package e2esliding holds end-to-end tests of simplified sliding sync
// (MSC4186): each test starts the real tributary binary (internal/testserver)
// and drives the endpoint with raw HTTP (mautrix has no sliding sync client),
// using the mautrix client for everything else. No test sleeps to
// synchronise.
package e2esliding

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/internal/pgtest"
	"github.com/tributary-hs/tributary/internal/testserver"
)

func TestMain(m *testing.M) {
	code := m.Run()
	pgtest.StopShared()
	os.Exit(code)
}

const (
	password    = "correct horse battery staple"
	slidingPath = "/_matrix/client/unstable/org.matrix.simplified_msc3575/sync"
)

type env struct {
	srv *testserver.Server
	n   atomic.Int64
}

func newEnv(t *testing.T, extra ...string) *env {
	t.Helper()
	args := append([]string{"--enable-registration", "--disable-rate-limits"}, extra...)
	return &env{srv: testserver.Start(t, testserver.Options{Args: args})}
}

func ctx(t testing.TB) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return c
}

// user registers a new user whose localpart starts with name.
func (e *env) user(t testing.TB, name string) *mautrix.Client {
	t.Helper()
	local := fmt.Sprintf("%s%d", name, e.n.Add(1))
	return e.srv.Register(t, &mautrix.ReqRegister[any]{Username: local, Password: password})
}

// raw sends a request as cli and returns the status and body.
func (e *env) raw(t testing.TB, cli *mautrix.Client, method, path string, body any) (int, []byte) {
	t.Helper()
	token := ""
	if cli != nil {
		token = cli.AccessToken
	}
	return e.srv.DoRaw(t, method, path, token, body)
}

// ssPath is the sliding sync path with pos and timeout (ms, <0: none).
func ssPath(pos string, timeout int) string {
	v := url.Values{}
	if pos != "" {
		v.Set("pos", pos)
	}
	if timeout >= 0 {
		v.Set("timeout", fmt.Sprint(timeout))
	}
	if len(v) == 0 {
		return slidingPath
	}
	return slidingPath + "?" + v.Encode()
}

// ss runs one sliding sync request that must succeed.
func (e *env) ss(t testing.TB, cli *mautrix.Client, pos string, timeout int, body any) *ssResp {
	t.Helper()
	status, raw := e.raw(t, cli, http.MethodPost, ssPath(pos, timeout), body)
	if status != http.StatusOK {
		t.Fatalf("sliding sync (pos %q): HTTP %d %s", pos, status, raw)
	}
	var out ssResp
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("decode %s: %v", raw, err)
	}
	if out.Pos == "" || out.Rooms == nil || out.Extensions == nil {
		t.Fatalf("answer lacks pos, rooms or extensions: %s", raw)
	}
	out.raw = raw
	return &out
}

// ssAsync starts a sliding sync request (a long-poll) and returns a
// function that waits for its answer, which must succeed.
func (e *env) ssAsync(t testing.TB, cli *mautrix.Client, pos string, timeout int, body any) func(testing.TB) *ssResp {
	t.Helper()
	js, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequestWithContext(ctx(t), http.MethodPost, e.srv.URL+ssPath(pos, timeout), bytes.NewReader(js))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+cli.AccessToken)
	type result struct {
		status int
		raw    []byte
		err    error
	}
	ch := make(chan result, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			ch <- result{err: err}
			return
		}
		defer resp.Body.Close()
		raw, err := io.ReadAll(resp.Body)
		ch <- result{status: resp.StatusCode, raw: raw, err: err}
	}()
	return func(t testing.TB) *ssResp {
		t.Helper()
		r := <-ch
		if r.err != nil || r.status != http.StatusOK {
			t.Fatalf("long-poll: HTTP %d %s %v", r.status, r.raw, r.err)
		}
		var out ssResp
		if err := json.Unmarshal(r.raw, &out); err != nil {
			t.Fatalf("decode %s: %v", r.raw, err)
		}
		out.raw = r.raw
		return &out
	}
}

// ssErr runs a sliding sync request that must fail with status and errcode.
func (e *env) ssErr(t testing.TB, cli *mautrix.Client, pos string, body any, status int, code string) {
	t.Helper()
	got, raw := e.raw(t, cli, http.MethodPost, ssPath(pos, 0), body)
	var eb struct {
		ErrCode string `json:"errcode"`
	}
	_ = json.Unmarshal(raw, &eb)
	if got != status || eb.ErrCode != code {
		t.Fatalf("pos %q body %v: HTTP %d %s, want %d %s", pos, body, got, raw, status, code)
	}
}

type ssResp struct {
	Pos   string `json:"pos"`
	Lists map[string]struct {
		Count int `json:"count"`
	} `json:"lists"`
	Rooms      map[id.RoomID]*ssRoom      `json:"rooms"`
	Extensions map[string]json.RawMessage `json:"extensions"`
	raw        []byte
}

type ssEvent struct {
	Type     string         `json:"type"`
	StateKey *string        `json:"state_key"`
	Sender   id.UserID      `json:"sender"`
	EventID  id.EventID     `json:"event_id"`
	Content  map[string]any `json:"content"`
}

type ssRoom struct {
	Name   string `json:"name"`
	Avatar string `json:"avatar"`
	Heroes []struct {
		UserID      id.UserID `json:"user_id"`
		DisplayName string    `json:"displayname"`
	} `json:"heroes"`
	Initial           bool       `json:"initial"`
	Expanded          bool       `json:"unstable_expanded_timeline"`
	IsDM              bool       `json:"is_dm"`
	RequiredState     []*ssEvent `json:"required_state"`
	Timeline          []*ssEvent `json:"timeline"`
	PrevBatch         string     `json:"prev_batch"`
	Limited           *bool      `json:"limited"`
	NumLive           *int       `json:"num_live"`
	JoinedCount       *int       `json:"joined_count"`
	InvitedCount      *int       `json:"invited_count"`
	NotificationCount *int64     `json:"notification_count"`
	HighlightCount    *int64     `json:"highlight_count"`
	BumpStamp         *int64     `json:"bump_stamp"`
	InviteState       []*ssEvent `json:"invite_state"`
}

// ext decodes one extension of the answer.
func (r *ssResp) ext(t testing.TB, name string, out any) bool {
	t.Helper()
	raw, ok := r.Extensions[name]
	if !ok {
		return false
	}
	if err := json.Unmarshal(raw, out); err != nil {
		t.Fatalf("extension %s: %v (%s)", name, err, raw)
	}
	return true
}

func (r *ssResp) roomIDs() []id.RoomID {
	out := make([]id.RoomID, 0, len(r.Rooms))
	for rid := range r.Rooms {
		out = append(out, rid)
	}
	slices.Sort(out)
	return out
}

// room returns a room of the answer, failing if it is missing.
func (r *ssResp) room(t testing.TB, rid id.RoomID) *ssRoom {
	t.Helper()
	room := r.Rooms[rid]
	if room == nil {
		t.Fatalf("room %s missing from the answer: %s", rid, r.raw)
	}
	return room
}

// bodies are the bodies of the timeline's messages.
func (r *ssRoom) bodies() []string {
	var out []string
	for _, e := range r.Timeline {
		if e.Type == "m.room.message" {
			out = append(out, fmt.Sprint(e.Content["body"]))
		}
	}
	return out
}

// state lists "type|state_key" of the required state, sorted.
func (r *ssRoom) state() []string {
	var out []string
	for _, e := range r.RequiredState {
		k := ""
		if e.StateKey != nil {
			k = *e.StateKey
		}
		out = append(out, e.Type+"|"+k)
	}
	slices.Sort(out)
	return out
}

// list is a sliding sync list request.
func list(ranges [][2]int, timeline int, required ...[2]string) map[string]any {
	rs := make([][]string, 0, len(required))
	for _, r := range required {
		rs = append(rs, []string{r[0], r[1]})
	}
	rg := make([][]int, 0, len(ranges))
	for _, r := range ranges {
		rg = append(rg, []int{r[0], r[1]})
	}
	return map[string]any{"ranges": rg, "timeline_limit": timeline, "required_state": rs}
}

func lists(named ...any) map[string]any {
	out := map[string]any{}
	for i := 0; i+1 < len(named); i += 2 {
		out[named[i].(string)] = named[i+1]
	}
	return map[string]any{"lists": out}
}

func createRoom(t testing.TB, cli *mautrix.Client, req *mautrix.ReqCreateRoom) id.RoomID {
	t.Helper()
	if req == nil {
		req = &mautrix.ReqCreateRoom{}
	}
	res, err := cli.CreateRoom(ctx(t), req)
	if err != nil {
		t.Fatalf("create room as %s: %v", cli.UserID, err)
	}
	return res.RoomID
}

func sendText(t testing.TB, cli *mautrix.Client, room id.RoomID, body string) id.EventID {
	t.Helper()
	res, err := cli.SendText(ctx(t), room, body)
	if err != nil {
		t.Fatalf("send %q: %v", body, err)
	}
	return res.EventID
}

func sendState(t testing.TB, cli *mautrix.Client, room id.RoomID, evType, key string, content any) {
	t.Helper()
	if _, err := cli.SendStateEvent(ctx(t), room, event.Type{Type: evType, Class: event.StateEventType}, key, content); err != nil {
		t.Fatalf("state %s/%s: %v", evType, key, err)
	}
}

func join(t testing.TB, cli *mautrix.Client, room id.RoomID) {
	t.Helper()
	if _, err := cli.JoinRoomByID(ctx(t), room); err != nil {
		t.Fatalf("%s joins %s: %v", cli.UserID, room, err)
	}
}

func equal[T comparable](t testing.TB, what string, got, want []T) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Fatalf("%s:\n got  %v\n want %v", what, got, want)
	}
}
