package e2e

import (
	"encoding/json"
	"io"
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
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/internal/pgtest"
	"github.com/tributary-hs/tributary/internal/testserver"
)

const v3 = "/_matrix/client/v3"

// fakePushGateway is a push gateway (push gateway API /notify) on loopback
// that records what it is sent and can fail or reject pushkeys on demand.
type fakePushGateway struct {
	srv *httptest.Server

	mu       sync.Mutex
	got      []pushRequest
	failLeft int             // answer 503 to this many requests
	failures int             // 503s answered so far
	reject   map[string]bool // pushkeys answered as rejected
	changed  chan struct{}   // signalled on every request
}

type pushRequest struct {
	method, path string
	body         map[string]any
}

// notification is the request's notification object.
func (r pushRequest) notification() map[string]any {
	n, _ := r.body["notification"].(map[string]any)
	return n
}

// device is the notification's only device.
func (r pushRequest) device() map[string]any {
	devs, _ := r.notification()["devices"].([]any)
	if len(devs) != 1 {
		return nil
	}
	d, _ := devs[0].(map[string]any)
	return d
}

func newFakePushGateway(t *testing.T) *fakePushGateway {
	g := &fakePushGateway{reject: map[string]bool{}, changed: make(chan struct{}, 1)}
	g.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, _ := io.ReadAll(r.Body)
		g.mu.Lock()
		defer func() {
			g.mu.Unlock()
			select {
			case g.changed <- struct{}{}:
			default:
			}
		}()
		if g.failLeft > 0 {
			g.failLeft--
			g.failures++
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		req := pushRequest{method: r.Method, path: r.URL.Path, body: map[string]any{}}
		if err := json.Unmarshal(raw, &req.body); err != nil {
			t.Errorf("push gateway: body %q is not JSON", raw)
		}
		g.got = append(g.got, req)
		rejected := []string{}
		if pk, _ := req.device()["pushkey"].(string); g.reject[pk] {
			rejected = append(rejected, pk)
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"rejected": rejected})
	}))
	t.Cleanup(g.srv.Close)
	return g
}

func (g *fakePushGateway) url() string { return g.srv.URL + "/_matrix/push/v1/notify" }

// waitFor waits until cond holds of the gateway's state (under its lock).
func (g *fakePushGateway) waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		g.mu.Lock()
		ok := cond()
		g.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-g.changed:
		case <-deadline:
			t.Fatalf("push gateway: timed out waiting for %s", what)
		}
	}
}

// find returns the notification of eventID sent to pushkey (nil if none yet).
func (g *fakePushGateway) find(eventID id.EventID, pushkey string) *pushRequest {
	for i := range g.got {
		r := &g.got[i]
		if r.notification()["event_id"] == string(eventID) && r.device()["pushkey"] == pushkey {
			return r
		}
	}
	return nil
}

// waitPush waits for the notification of eventID to pushkey.
func (g *fakePushGateway) waitPush(t *testing.T, eventID id.EventID, pushkey string) pushRequest {
	t.Helper()
	var got *pushRequest
	g.waitFor(t, "the notification of "+string(eventID)+" to "+pushkey, func() bool {
		got = g.find(eventID, pushkey)
		return got != nil
	})
	return *got
}

// httpPusher is a valid POST /pushers/set body.
func httpPusher(appID, pushkey, url string, data map[string]any) map[string]any {
	d := map[string]any{"url": url}
	for k, v := range data {
		d[k] = v
	}
	return map[string]any{"kind": "http", "app_id": appID, "pushkey": pushkey, "app_display_name": "Push App",
		"device_display_name": "Phone", "profile_tag": "tag1", "lang": "en", "data": d}
}

func setPusher(t *testing.T, srv *testserver.Server, token string, body map[string]any) {
	t.Helper()
	if code, resp := srv.Do(t, "POST", v3+"/pushers/set", token, body); code != http.StatusOK {
		t.Fatalf("pushers/set %v: %d %v", body, code, resp)
	}
}

// pushkeys lists "app_id/pushkey" of the user's pushers.
func pushkeys(t *testing.T, srv *testserver.Server, token string) []string {
	t.Helper()
	code, body := srv.Do(t, "GET", v3+"/pushers", token, nil)
	ps, ok := body["pushers"].([]any)
	if code != http.StatusOK || !ok {
		t.Fatalf("GET /pushers: %d %v", code, body)
	}
	out := []string{}
	for _, p := range ps {
		m := p.(map[string]any)
		out = append(out, m["app_id"].(string)+"/"+m["pushkey"].(string))
	}
	slices.Sort(out)
	return out
}

func wantPushkeys(t *testing.T, srv *testserver.Server, token string, want ...string) {
	t.Helper()
	if want == nil {
		want = []string{}
	}
	if got := pushkeys(t, srv, token); !slices.Equal(got, want) {
		t.Fatalf("pushers %v, want %v", got, want)
	}
}

// startPushServer starts a server whose push gateways may be on loopback.
func startPushServer(t *testing.T, extra ...string) *testserver.Server {
	t.Helper()
	cfg := filepath.Join(t.TempDir(), "push.yaml")
	if err := os.WriteFile(cfg, []byte("push:\n  allowed_ranges: [\"127.0.0.0/8\"]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return startOpen(t, append([]string{"--config", cfg}, extra...)...)
}

// sharedRoom makes a room of alice that bob joined, named name.
func sharedRoom(t *testing.T, alice, bob *mautrix.Client, name string) id.RoomID {
	t.Helper()
	room, err := alice.CreateRoom(t.Context(), &mautrix.ReqCreateRoom{Preset: "private_chat", Name: name,
		Invite: []id.UserID{bob.UserID}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bob.JoinRoomByID(t.Context(), room.RoomID); err != nil {
		t.Fatal(err)
	}
	return room.RoomID
}

// TestPushersSetListDelete: POST /pushers/set validates every field,
// creates, replaces and deletes; append decides whether other users keep
// a pushkey; logging a device out deletes its pushers; a gateway on a
// private address is not contacted unless allow-listed.
func TestPushersSetListDelete(t *testing.T) {
	srv := startOpen(t)
	alice := register(t, srv, "alicepu", defaultPassword)
	bob := register(t, srv, "bobpu", defaultPassword)
	carol := register(t, srv, "carolpu", defaultPassword)
	const url = "https://push.example.org/_matrix/push/v1/notify"

	wantPushkeys(t, srv, alice.AccessToken)
	setPusher(t, srv, alice.AccessToken, httpPusher("org.example.app", "key-1", url,
		map[string]any{"format": "event_id_only", "custom": map[string]any{"x": 1}}))
	code, body := srv.Do(t, "GET", v3+"/pushers", alice.AccessToken, nil)
	ps, _ := body["pushers"].([]any)
	if code != 200 || len(ps) != 1 {
		t.Fatalf("GET /pushers: %d %v", code, body)
	}
	got, _ := json.Marshal(ps[0])
	want := `{"app_display_name":"Push App","app_id":"org.example.app","data":{"custom":{"x":1},` +
		`"format":"event_id_only","url":"https://push.example.org/_matrix/push/v1/notify"},` +
		`"device_display_name":"Phone","kind":"http","lang":"en","profile_tag":"tag1","pushkey":"key-1"}`
	if string(got) != want {
		t.Fatalf("pusher\n got %s\nwant %s", got, want)
	}
	// The same (app_id, pushkey) again replaces the pusher.
	upd := httpPusher("org.example.app", "key-1", url, nil)
	upd["lang"] = "de"
	setPusher(t, srv, alice.AccessToken, upd)
	_, body = srv.Do(t, "GET", "/_matrix/client/r0/pushers", alice.AccessToken, nil)
	if ps, _ := body["pushers"].([]any); len(ps) != 1 || ps[0].(map[string]any)["lang"] != "de" {
		t.Fatalf("after replacing: %v", body)
	}

	// Bad bodies are Matrix errors, and change nothing.
	with := func(mod func(b map[string]any)) map[string]any {
		b := httpPusher("org.example.app", "key-2", url, nil)
		mod(b)
		return b
	}
	withData := func(data any) map[string]any {
		return with(func(b map[string]any) { b["data"] = data })
	}
	for name, tc := range map[string]struct {
		body   any
		status int
		code   string
	}{
		"not JSON":              {"{", 400, "M_NOT_JSON"},
		"no kind":               {with(func(b map[string]any) { delete(b, "kind") }), 400, "M_MISSING_PARAM"},
		"no app_id":             {with(func(b map[string]any) { delete(b, "app_id") }), 400, "M_MISSING_PARAM"},
		"no pushkey":            {with(func(b map[string]any) { delete(b, "pushkey") }), 400, "M_MISSING_PARAM"},
		"empty pushkey":         {with(func(b map[string]any) { b["pushkey"] = "" }), 400, "M_INVALID_PARAM"},
		"pushkey too long":      {with(func(b map[string]any) { b["pushkey"] = strings.Repeat("k", 513) }), 400, "M_INVALID_PARAM"},
		"app_id too long":       {with(func(b map[string]any) { b["app_id"] = strings.Repeat("a", 65) }), 400, "M_INVALID_PARAM"},
		"pushkey not a string":  {with(func(b map[string]any) { b["pushkey"] = 7 }), 400, "M_BAD_JSON"},
		"kind not a string":     {with(func(b map[string]any) { b["kind"] = 7 }), 400, "M_BAD_JSON"},
		"email kind":            {with(func(b map[string]any) { b["kind"], b["app_id"] = "email", "m.email" }), 400, "M_INVALID_PARAM"},
		"unknown kind":          {with(func(b map[string]any) { b["kind"] = "sms" }), 400, "M_INVALID_PARAM"},
		"no lang":               {with(func(b map[string]any) { delete(b, "lang") }), 400, "M_MISSING_PARAM"},
		"no app_display_name":   {with(func(b map[string]any) { delete(b, "app_display_name") }), 400, "M_MISSING_PARAM"},
		"no data":               {with(func(b map[string]any) { delete(b, "data") }), 400, "M_MISSING_PARAM"},
		"data not an object":    {withData("x"), 400, "M_BAD_JSON"},
		"no url":                {withData(map[string]any{}), 400, "M_MISSING_PARAM"},
		"url not a string":      {withData(map[string]any{"url": 1}), 400, "M_BAD_JSON"},
		"url with another path": {withData(map[string]any{"url": "https://push.example.org/notify"}), 400, "M_INVALID_PARAM"},
		"url not http":          {withData(map[string]any{"url": "ftp://push.example.org/_matrix/push/v1/notify"}), 400, "M_INVALID_PARAM"},
		"relative url":          {withData(map[string]any{"url": "/_matrix/push/v1/notify"}), 400, "M_INVALID_PARAM"},
		"unknown format":        {withData(map[string]any{"url": url, "format": "full"}), 400, "M_INVALID_PARAM"},
		"append not a bool":     {with(func(b map[string]any) { b["append"] = "yes" }), 400, "M_BAD_JSON"},
	} {
		code, body := srv.Do(t, "POST", v3+"/pushers/set", alice.AccessToken, tc.body)
		wantStatus(t, name, code, body, tc.status, tc.code)
	}
	code, body = srv.Do(t, "POST", v3+"/pushers/set", "", httpPusher("org.example.app", "key-2", url, nil))
	wantStatus(t, "without a token", code, body, 401, "M_MISSING_TOKEN")
	wantPushkeys(t, srv, alice.AccessToken, "org.example.app/key-1")

	// append: true lets another user share the pushkey; without it the
	// last user to set it takes it from the others.
	shared := httpPusher("org.example.app", "shared", url, nil)
	setPusher(t, srv, alice.AccessToken, shared)
	shared["append"] = true
	setPusher(t, srv, bob.AccessToken, shared)
	wantPushkeys(t, srv, alice.AccessToken, "org.example.app/key-1", "org.example.app/shared")
	wantPushkeys(t, srv, bob.AccessToken, "org.example.app/shared")
	delete(shared, "append")
	setPusher(t, srv, carol.AccessToken, shared)
	wantPushkeys(t, srv, alice.AccessToken, "org.example.app/key-1")
	wantPushkeys(t, srv, bob.AccessToken)
	wantPushkeys(t, srv, carol.AccessToken, "org.example.app/shared")

	// kind null deletes (and deleting what is not there is no error).
	setPusher(t, srv, carol.AccessToken, map[string]any{"kind": nil, "app_id": "org.example.app", "pushkey": "shared"})
	setPusher(t, srv, carol.AccessToken, map[string]any{"kind": nil, "app_id": "org.example.app", "pushkey": "shared"})
	wantPushkeys(t, srv, carol.AccessToken)

	// Logging a device out deletes the pushers it set, not the others'.
	phone := login(t, srv, passwordLogin("alicepu", defaultPassword))
	setPusher(t, srv, phone.AccessToken, httpPusher("org.example.app", "phone", url, nil))
	wantPushkeys(t, srv, alice.AccessToken, "org.example.app/key-1", "org.example.app/phone")
	if _, err := phone.Logout(t.Context()); err != nil {
		t.Fatal(err)
	}
	wantPushkeys(t, srv, alice.AccessToken, "org.example.app/key-1")
	tablet := login(t, srv, passwordLogin("alicepu", defaultPassword))
	setPusher(t, srv, tablet.AccessToken, httpPusher("org.example.app", "tablet", url, nil))
	if code, body := srv.Do(t, "POST", v3+"/logout/all", alice.AccessToken, map[string]any{}); code != 200 {
		t.Fatalf("logout/all: %d %v", code, body)
	}
	alice = login(t, srv, passwordLogin("alicepu", defaultPassword))
	wantPushkeys(t, srv, alice.AccessToken)

	// A gateway on a private or loopback address is refused when it is
	// set, unless push.allowed_ranges has it (delivery checks again, after
	// DNS, for names that resolve there later).
	for _, gw := range []string{"http://127.0.0.1:9/_matrix/push/v1/notify", "http://[::1]/_matrix/push/v1/notify",
		"http://10.1.2.3/_matrix/push/v1/notify", "http://169.254.169.254/_matrix/push/v1/notify",
		"http://localhost:9/_matrix/push/v1/notify"} {
		code, body := srv.Do(t, "POST", v3+"/pushers/set", bob.AccessToken, httpPusher("org.example.app", "private", gw, nil))
		wantStatus(t, "gateway "+gw, code, body, 400, "M_INVALID_PARAM")
	}
	wantPushkeys(t, srv, bob.AccessToken)
}

// TestPushGatewayDelivery: a message notifies the push gateway of each of
// the recipient's pushers (the full format and event_id_only), retries a
// failing gateway, keeps what it queued across kill -9, and deletes a
// pusher whose pushkey the gateway rejects. On SQLite and PostgreSQL.
func TestPushGatewayDelivery(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) { testPushGatewayDelivery(t, startPushServer(t)) })
	t.Run("postgres", func(t *testing.T) {
		testPushGatewayDelivery(t, startPushServer(t, "--database-url", pgtest.URL(t)))
	})
}

func testPushGatewayDelivery(t *testing.T, srv *testserver.Server) {
	ctx := t.Context()
	gw := newFakePushGateway(t)
	alice := register(t, srv, "alicegw", defaultPassword)
	bob := register(t, srv, "bobgw", defaultPassword)
	if err := alice.SetDisplayName(ctx, "Alice Sender"); err != nil {
		t.Fatal(err)
	}
	room := sharedRoom(t, alice, bob, "Mission Control")
	setPusher(t, srv, bob.AccessToken, httpPusher("org.example.full", "full-key", gw.url(), map[string]any{"custom": "c"}))
	setPusher(t, srv, bob.AccessToken, httpPusher("org.example.lean", "lean-key", gw.url(),
		map[string]any{"format": "event_id_only"}))
	before := time.Now().Unix()

	msg, err := alice.SendText(ctx, room, "I'm floating in a most peculiar way")
	if err != nil {
		t.Fatal(err)
	}
	full := gw.waitPush(t, msg.EventID, "full-key")
	if full.method != "POST" || full.path != "/_matrix/push/v1/notify" {
		t.Fatalf("request %s %s", full.method, full.path)
	}
	n := full.notification()
	content, _ := n["content"].(map[string]any)
	counts, _ := n["counts"].(map[string]any)
	if n["room_id"] != string(room) || n["type"] != "m.room.message" || n["sender"] != string(alice.UserID) ||
		n["sender_display_name"] != "Alice Sender" || n["room_name"] != "Mission Control" ||
		content["body"] != "I'm floating in a most peculiar way" || counts["unread"] != float64(1) {
		t.Fatalf("notification %v", n)
	}
	if n["prio"] != "high" { // a two-member room: the one-to-one rule plays a sound
		t.Fatalf("prio %v", n["prio"])
	}
	dev := full.device()
	data, _ := dev["data"].(map[string]any)
	tweaks, _ := dev["tweaks"].(map[string]any)
	ts, _ := dev["pushkey_ts"].(float64)
	if dev["app_id"] != "org.example.full" || data["custom"] != "c" || data["url"] != nil || len(data) != 1 ||
		tweaks["sound"] != "default" || int64(ts) < before-5 || int64(ts) > time.Now().Unix()+5 {
		t.Fatalf("device %v", dev)
	}
	lean := gw.waitPush(t, msg.EventID, "lean-key").notification()
	counts, _ = lean["counts"].(map[string]any)
	if lean["room_id"] != string(room) || counts["unread"] != float64(1) || lean["content"] != nil ||
		lean["sender"] != nil || lean["type"] != nil || lean["room_name"] != nil {
		t.Fatalf("event_id_only notification %v", lean)
	}
	if data := (pushRequest{body: map[string]any{"notification": lean}}).device()["data"]; !jsonEqual(data, map[string]any{"format": "event_id_only"}) {
		t.Fatalf("event_id_only data %v", data)
	}
	// The sender's own message notifies nobody of theirs.
	setPusher(t, srv, alice.AccessToken, httpPusher("org.example.full", "alice-key", gw.url(), nil))

	// A gateway that fails is retried until it answers.
	gw.mu.Lock()
	gw.failLeft = 2
	gw.mu.Unlock()
	msg2, err := alice.SendText(ctx, room, "second")
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"full-key", "lean-key"} {
		r := gw.waitPush(t, msg2.EventID, key)
		if c, _ := r.notification()["counts"].(map[string]any); c["unread"] != float64(2) {
			t.Fatalf("second notification's counts %v", c)
		}
	}
	gw.mu.Lock()
	if gw.failures != 2 {
		t.Fatalf("%d failed requests, want 2", gw.failures)
	}
	if gw.find(msg2.EventID, "alice-key") != nil || gw.find(msg.EventID, "alice-key") != nil {
		t.Fatal("the sender was notified of their own message")
	}
	// A gateway that is down when the server is killed gets the
	// notification from the restarted server.
	gw.failLeft = 1 << 30
	gw.mu.Unlock()
	msg3, err := alice.SendText(ctx, room, "third")
	if err != nil {
		t.Fatal(err)
	}
	gw.waitFor(t, "a failed attempt", func() bool { return gw.failures > 2 })
	srv = srv.Restart(true)
	alice = clientFor(t, srv, alice.UserID, alice.DeviceID, alice.AccessToken)
	gw.mu.Lock()
	gw.failLeft = 0
	gw.mu.Unlock()
	gw.waitPush(t, msg3.EventID, "full-key")
	gw.waitPush(t, msg3.EventID, "lean-key")

	// A rejected pushkey's pusher is deleted: nothing more is sent to it.
	gw.mu.Lock()
	gw.reject["lean-key"] = true
	gw.mu.Unlock()
	msg4, err := alice.SendText(ctx, room, "fourth")
	if err != nil {
		t.Fatal(err)
	}
	gw.waitPush(t, msg4.EventID, "lean-key")
	// The delivery loop is past reading msg4's queue: msg5 comes in a
	// later round, after the rejection was dealt with.
	msg5, err := alice.SendText(ctx, room, "fifth")
	if err != nil {
		t.Fatal(err)
	}
	gw.waitPush(t, msg4.EventID, "full-key")
	gw.waitPush(t, msg5.EventID, "full-key")
	wantPushkeys(t, srv, bob.AccessToken, "org.example.full/full-key")
	gw.mu.Lock()
	defer gw.mu.Unlock()
	if gw.find(msg5.EventID, "lean-key") != nil {
		t.Fatal("a rejected pushkey was sent another notification")
	}
}

func jsonEqual(a, b any) bool {
	ra, _ := json.Marshal(a)
	rb, _ := json.Marshal(b)
	return string(ra) == string(rb)
}

// TestNotificationsList: GET /notifications lists what notified the user,
// newest first, with read flags from their receipts, in pages, and only
// the highlights when asked.
func TestNotificationsList(t *testing.T) {
	srv := startOpen(t)
	ctx := t.Context()
	alice := register(t, srv, "alicent", defaultPassword)
	bob := register(t, srv, "bobnt", defaultPassword)
	room := sharedRoom(t, alice, bob, "Notes")
	send := func(content map[string]any) id.EventID {
		t.Helper()
		resp, err := alice.SendMessageEvent(ctx, room, event.EventMessage, content)
		if err != nil {
			t.Fatal(err)
		}
		return resp.EventID
	}
	m1 := send(map[string]any{"msgtype": "m.text", "body": "one"})
	m2 := send(map[string]any{"msgtype": "m.text", "body": "hey bob",
		"m.mentions": map[string]any{"user_ids": []id.UserID{bob.UserID}}})
	if _, err := alice.SendNotice(ctx, room, "a notice notifies nobody"); err != nil {
		t.Fatal(err)
	}
	m3 := send(map[string]any{"msgtype": "m.text", "body": "three"})

	type entry struct {
		eventID   string
		read      bool
		highlight bool
	}
	list := func(query string) ([]entry, string) {
		t.Helper()
		code, body := srv.Do(t, "GET", v3+"/notifications"+query, bob.AccessToken, nil)
		ns, ok := body["notifications"].([]any)
		if code != 200 || !ok {
			t.Fatalf("GET /notifications%s: %d %v", query, code, body)
		}
		var out []entry
		for _, raw := range ns {
			n := raw.(map[string]any)
			ev, _ := n["event"].(map[string]any)
			actions, _ := n["actions"].([]any)
			ts, _ := n["ts"].(float64)
			if n["room_id"] != string(room) || ev["room_id"] != string(room) || ev["sender"] != string(alice.UserID) ||
				ts != ev["origin_server_ts"] || ts == 0 || len(actions) == 0 || actions[0] != "notify" {
				t.Fatalf("notification %v", n)
			}
			hl := slices.ContainsFunc(actions, func(a any) bool {
				m, ok := a.(map[string]any)
				return ok && m["set_tweak"] == "highlight"
			})
			out = append(out, entry{eventID: ev["event_id"].(string), read: n["read"].(bool), highlight: hl})
		}
		next, _ := body["next_token"].(string)
		return out, next
	}
	all, next := list("")
	want := []entry{{string(m3), false, false}, {string(m2), false, true}, {string(m1), false, false}}
	if !slices.Equal(all, want) || next != "" {
		t.Fatalf("notifications %v (next %q), want %v", all, next, want)
	}
	page, next := list("?limit=2")
	if !slices.Equal(page, want[:2]) || next == "" {
		t.Fatalf("first page %v (next %q)", page, next)
	}
	page, next = list("?limit=2&from=" + next)
	if !slices.Equal(page, want[2:]) || next != "" {
		t.Fatalf("second page %v (next %q)", page, next)
	}
	if page, _ := list("?only=highlight"); !slices.Equal(page, want[1:2]) {
		t.Fatalf("highlights %v", page)
	}
	// A read receipt marks what it covers read.
	if err := bob.SendReceipt(ctx, room, m2, event.ReceiptTypeRead, nil); err != nil {
		t.Fatal(err)
	}
	all, _ = list("")
	want = []entry{{string(m3), false, false}, {string(m2), true, true}, {string(m1), true, false}}
	if !slices.Equal(all, want) {
		t.Fatalf("after reading m2: %v, want %v", all, want)
	}
	// The sender has no notification of their own messages.
	code, body := srv.Do(t, "GET", v3+"/notifications", alice.AccessToken, nil)
	if ns, _ := body["notifications"].([]any); code != 200 || len(ns) != 0 {
		t.Fatalf("alice's notifications: %d %v", code, body)
	}
	for _, q := range []string{"?from=nope", "?limit=-1", "?limit=x"} {
		code, body := srv.Do(t, "GET", v3+"/notifications"+q, bob.AccessToken, nil)
		wantStatus(t, q, code, body, 400, "M_INVALID_PARAM")
	}
}
