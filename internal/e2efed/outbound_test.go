package e2efed

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tidwall/gjson"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/crypto/canonicaljson"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/federation"
	"maunium.net/go/mautrix/federation/pdu"
	"maunium.net/go/mautrix/federation/signutil"
	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/internal/pgtest"
	"github.com/tributary-hs/tributary/internal/testserver"
)

// receivedTxn is a transaction a server sent C.
type receivedTxn struct {
	ID     string
	Origin string
	PDUs   []json.RawMessage
	EDUs   []receivedEDU
}

type receivedEDU struct {
	Type    string          `json:"edu_type"`
	Content json.RawMessage `json:"content"`
}

// inbox is C's PUT /send/{txnId}: it checks the X-Matrix signature of
// each request (fetching the origin's key from it), answers 500 while told
// to fail, and records every attempt and the transactions it accepted.
type inbox struct {
	mu       sync.Mutex
	accepted []receivedTxn
	attempts []string // transaction IDs, failed attempts too
	fail     int      // attempts still to answer 500 (-1: all)
	badAuth  []string
	keys     map[string]map[id.KeyID]id.SigningKey
	// changed is closed (and replaced) at every attempt.
	changed chan struct{}
}

func newInbox() *inbox {
	return &inbox{changed: make(chan struct{}), keys: map[string]map[id.KeyID]id.SigningKey{}}
}

func (b *inbox) serve(t *testing.T, f *fakeServer, w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var txn struct {
		Origin string            `json:"origin"`
		PDUs   []json.RawMessage `json:"pdus"`
		EDUs   []receivedEDU     `json:"edus"`
	}
	if err := json.Unmarshal(body, &txn); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	authErr := b.checkAuth(f, r, body)
	b.mu.Lock()
	defer b.mu.Unlock()
	defer func() {
		close(b.changed)
		b.changed = make(chan struct{})
	}()
	txnID := r.URL.Path[len("/_matrix/federation/v1/send/"):]
	b.attempts = append(b.attempts, txnID)
	if authErr != nil {
		b.badAuth = append(b.badAuth, authErr.Error())
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = w.Write([]byte(`{"errcode":"M_UNAUTHORIZED","error":"bad signature"}`))
		return
	}
	if b.fail != 0 {
		if b.fail > 0 {
			b.fail--
		}
		w.WriteHeader(http.StatusInternalServerError)
		_, _ = w.Write([]byte(`{"errcode":"M_UNKNOWN","error":"C is down"}`))
		return
	}
	b.accepted = append(b.accepted, receivedTxn{ID: txnID, Origin: txn.Origin, PDUs: txn.PDUs, EDUs: txn.EDUs})
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write([]byte(`{"pdus":{}}`))
}

// checkAuth verifies the request's X-Matrix signature with the origin's
// key, which it asks the origin for once.
func (b *inbox) checkAuth(f *fakeServer, r *http.Request, body []byte) error {
	auth := federation.ParseXMatrixAuth(r.Header.Get("Authorization"))
	if auth.Origin == "" || auth.Destination != f.name {
		return fmt.Errorf("X-Matrix header %q", r.Header.Get("Authorization"))
	}
	b.mu.Lock()
	keys := b.keys[auth.Origin]
	b.mu.Unlock()
	if keys == nil {
		resp, err := insecure.Get("https://" + auth.Origin + "/_matrix/key/v2/server")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		var skr federation.ServerKeyResponse
		if err := json.NewDecoder(resp.Body).Decode(&skr); err != nil {
			return err
		}
		keys = map[id.KeyID]id.SigningKey{}
		for kid, k := range skr.VerifyKeys {
			keys[kid] = k.Key
		}
		b.mu.Lock()
		b.keys[auth.Origin] = keys
		b.mu.Unlock()
	}
	msg, err := canonicaljson.Marshal(map[string]any{"method": r.Method, "uri": r.URL.RequestURI(), "origin": auth.Origin,
		"destination": auth.Destination, "content": json.RawMessage(body)})
	if err != nil {
		return err
	}
	return signutil.VerifyJSONCanonical(keys[auth.KeyID], auth.Signature, msg)
}

func (b *inbox) setFail(n int) {
	b.mu.Lock()
	b.fail = n
	b.mu.Unlock()
}

// snapshot copies what C has received.
func (b *inbox) snapshot() (accepted []receivedTxn, attempts []string, badAuth []string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.accepted), slices.Clone(b.attempts), slices.Clone(b.badAuth)
}

// waitFor waits until done says what C has received is enough.
func (b *inbox) waitFor(t *testing.T, what string, done func(accepted []receivedTxn, attempts []string) bool) {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		b.mu.Lock()
		ok := done(b.accepted, b.attempts)
		ch := b.changed
		bad := slices.Clone(b.badAuth)
		b.mu.Unlock()
		if len(bad) > 0 {
			t.Fatalf("requests with a bad X-Matrix signature: %v", bad)
		}
		if ok {
			return
		}
		select {
		case <-ch:
		case <-deadline:
			acc, att, _ := b.snapshot()
			t.Fatalf("C waited 30s for %s; attempts %v, accepted %s", what, att, describeTxns(acc))
		}
	}
}

func describeTxns(txns []receivedTxn) string {
	var out []string
	for _, tx := range txns {
		var parts []string
		for _, p := range tx.PDUs {
			parts = append(parts, gjson.GetBytes(p, "type").Str)
		}
		for _, e := range tx.EDUs {
			parts = append(parts, e.Type)
		}
		out = append(out, fmt.Sprintf("txn %s %v", tx.ID, parts))
	}
	return fmt.Sprint(out)
}

// pdus lists the PDUs C accepted, in the order received.
func pdus(txns []receivedTxn) []json.RawMessage {
	var out []json.RawMessage
	for _, tx := range txns {
		out = append(out, tx.PDUs...)
	}
	return out
}

// eventIDs names the PDUs (room version 10+ event IDs: reference hashes).
func eventIDs(t *testing.T, rv id.RoomVersion, raws []json.RawMessage) []id.EventID {
	t.Helper()
	var out []id.EventID
	for _, raw := range raws {
		var p pdu.PDU
		if err := json.Unmarshal(raw, &p); err != nil {
			t.Fatalf("PDU %s: %v", raw, err)
		}
		eid, err := p.GetEventID(rv)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, eid)
	}
	return out
}

// hasEventsInOrder: want appear among got, in this order.
func hasEventsInOrder(got, want []id.EventID) bool {
	i := 0
	for _, g := range got {
		if i < len(want) && g == want[i] {
			i++
		}
	}
	return i == len(want)
}

// edus lists the EDUs of a type C accepted.
func edus(txns []receivedTxn, typ string) []json.RawMessage {
	var out []json.RawMessage
	for _, tx := range txns {
		for _, e := range tx.EDUs {
			if e.Type == typ {
				out = append(out, e.Content)
			}
		}
	}
	return out
}

func anyEDU(txns []receivedTxn, typ string, match func(gjson.Result) bool) bool {
	for _, c := range edus(txns, typ) {
		if match(gjson.ParseBytes(c)) {
			return true
		}
	}
	return false
}

// startWithConfig starts a federating server with a YAML config.
func startWithConfig(t *testing.T, yaml string, args ...string) *testserver.Server {
	t.Helper()
	cfg := filepath.Join(t.TempDir(), "tributary.yaml")
	if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return start(t, append([]string{"--config", cfg}, args...)...)
}

// fastRetries makes failed transactions retried within a second.
const fastRetries = "federation:\n  retry_backoff: 100ms\n  max_retry_backoff: 1s\n"

// setupRoom: alice on A creates a public room and C's carol joins it.
func setupRoom(t *testing.T, a *testserver.Server) (*mautrix.Client, *fakeServer, *remoteRoom, id.UserID) {
	t.Helper()
	alice := register(t, a, "alice")
	created, err := alice.CreateRoom(t.Context(), &mautrix.ReqCreateRoom{Preset: "public_chat", Name: "Outbound"})
	if err != nil {
		t.Fatal(err)
	}
	c := newFakeServer(t)
	carol := id.NewUserID("carol", c.name)
	r := c.join(t, a, created.RoomID, carol)
	waitForEvent(t, alice, created.RoomID, r.last)
	return alice, c, r, carol
}

// A local user's message and state change, typing, a receipt, presence and
// a to-device message reach C in signed transactions, the events in the
// order they were sent; C's own message is not sent back to it.
func TestOutboundReachesRemoteServer(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) { outboundReachesRemoteServer(t, start(t)) })
	t.Run("postgres", func(t *testing.T) { outboundReachesRemoteServer(t, start(t, "--database-url", pgtest.URL(t))) })
}

func outboundReachesRemoteServer(t *testing.T, a *testserver.Server) {
	ctx := t.Context()
	alice, c, r, carol := setupRoom(t, a)
	roomID := r.roomID

	// D joins through A's send_join: A, the resident server, passes the
	// join on to C.
	d := newFakeServer(t)
	rd := d.join(t, a, roomID, id.NewUserID("dave", d.name))
	// D's news starts with its join: alice's typing right after it reaches
	// D, though A may not have got round to D's joining yet (a cursor
	// started when A did lost it).
	if _, err := alice.UserTyping(ctx, roomID, true, time.Minute); err != nil {
		t.Fatal(err)
	}
	d.inbox.waitFor(t, "typing right after D joined", func(acc []receivedTxn, _ []string) bool {
		return anyEDU(acc, "m.typing", func(e gjson.Result) bool {
			return e.Get("user_id").Str == string(alice.UserID) && e.Get("typing").Bool()
		})
	})
	c.inbox.waitFor(t, "D's join, passed on by A", func(acc []receivedTxn, _ []string) bool {
		return slices.Contains(eventIDs(t, r.rv, pdus(acc)), rd.last)
	})
	if _, err := alice.UserTyping(ctx, roomID, false, 0); err != nil {
		t.Fatal(err)
	}
	r.state = rd.state // C's view of the room: D's join is in it now
	r.state[pdu.StateKey{Type: "m.room.member", StateKey: string(carol)}] = r.last

	// C's own message, in a transaction of its own: not sent back to C, nor
	// on to D (it is C's to send).
	own, raw := c.build(t, r, c.key, carol, "m.room.message", nil, map[string]any{"msgtype": "m.text", "body": "from C"},
		rd.last, rd.depth+1)
	if res := c.sendTxn(t, a, raw); res[own].Error != "" {
		t.Fatalf("C's message: %+v", res)
	}
	waitForEvent(t, alice, roomID, own)

	msg, err := alice.SendText(ctx, roomID, "hello C")
	if err != nil {
		t.Fatal(err)
	}
	topic, err := alice.SendStateEvent(ctx, roomID, event.StateTopic, "", &event.TopicEventContent{Topic: "federated"})
	if err != nil {
		t.Fatal(err)
	}
	c.inbox.waitFor(t, "alice's message and topic", func(acc []receivedTxn, _ []string) bool {
		return hasEventsInOrder(eventIDs(t, r.rv, pdus(acc)), []id.EventID{msg.EventID, topic.EventID})
	})
	acc, _, _ := c.inbox.snapshot()
	got := eventIDs(t, r.rv, pdus(acc))
	if slices.Contains(got, own) {
		t.Fatalf("C's own event was sent back to it: %v", got)
	}
	d.inbox.waitFor(t, "alice's message and topic at D", func(acc []receivedTxn, _ []string) bool {
		return hasEventsInOrder(eventIDs(t, r.rv, pdus(acc)), []id.EventID{msg.EventID, topic.EventID})
	})
	accD, _, _ := d.inbox.snapshot()
	if gotD := eventIDs(t, r.rv, pdus(accD)); slices.Contains(gotD, own) {
		t.Fatalf("C's event was passed on to D: %v", gotD)
	}
	for _, tx := range acc {
		if tx.Origin != a.Opts.ServerName {
			t.Fatalf("transaction origin %q, want %q", tx.Origin, a.Opts.ServerName)
		}
	}
	for _, p := range pdus(acc) {
		if id.UserID(gjson.GetBytes(p, "sender").Str).Homeserver() == a.Opts.ServerName &&
			!gjson.GetBytes(p, "signatures."+gjsonKey(a.Opts.ServerName)).Exists() {
			t.Fatalf("A's PDU not signed by A: %s", p)
		}
	}
	// The message is the event alice sent, as A signed it.
	for _, p := range pdus(acc) {
		if gjson.GetBytes(p, "content.body").Str == "hello C" && gjson.GetBytes(p, "sender").Str != string(alice.UserID) {
			t.Fatalf("message PDU: %s", p)
		}
	}

	// Typing, a receipt, presence, a to-device message.
	if _, err := alice.UserTyping(ctx, roomID, true, 20*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := alice.MarkRead(ctx, roomID, msg.EventID); err != nil {
		t.Fatal(err)
	}
	if err := alice.SetPresence(ctx, mautrix.ReqPresence{Presence: event.PresenceOnline, StatusMsg: "federating"}); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.SendToDevice(ctx, event.NewEventType("org.example.ping"), &mautrix.ReqSendToDevice{
		Messages: map[id.UserID]map[id.DeviceID]*event.Content{carol: {"CDEV": {Raw: map[string]any{"n": 1}}}}}); err != nil {
		t.Fatal(err)
	}
	c.inbox.waitFor(t, "typing, receipt, presence and to-device EDUs", func(acc []receivedTxn, _ []string) bool {
		typing := anyEDU(acc, "m.typing", func(e gjson.Result) bool {
			return e.Get("room_id").Str == string(roomID) && e.Get("user_id").Str == string(alice.UserID) && e.Get("typing").Bool()
		})
		receipt := anyEDU(acc, "m.receipt", func(e gjson.Result) bool {
			r := e.Get(gjsonKey(string(roomID)) + ".m\\.read." + gjsonKey(string(alice.UserID)))
			return r.Get("event_ids.0").Str == string(msg.EventID) && r.Get("data.ts").Int() > 0
		})
		presence := anyEDU(acc, "m.presence", func(e gjson.Result) bool {
			for _, p := range e.Get("push").Array() {
				if p.Get("user_id").Str == string(alice.UserID) && p.Get("presence").Str == "online" &&
					p.Get("status_msg").Str == "federating" {
					return true
				}
			}
			return false
		})
		toDevice := anyEDU(acc, "m.direct_to_device", func(e gjson.Result) bool {
			return e.Get("sender").Str == string(alice.UserID) && e.Get("type").Str == "org.example.ping" &&
				e.Get("message_id").Str != "" && e.Get("messages."+gjsonKey(string(carol))+".CDEV.n").Int() == 1
		})
		return typing && receipt && presence && toDevice
	})
	// A presence change alone wakes C's queue (nothing else is sent with it).
	if err := alice.SetPresence(ctx, mautrix.ReqPresence{Presence: event.PresenceUnavailable, StatusMsg: "away"}); err != nil {
		t.Fatal(err)
	}
	c.inbox.waitFor(t, "a presence change on its own", func(acc []receivedTxn, _ []string) bool {
		return anyEDU(acc, "m.presence", func(e gjson.Result) bool {
			for _, p := range e.Get("push").Array() {
				if p.Get("user_id").Str == string(alice.UserID) && p.Get("presence").Str == "unavailable" {
					return true
				}
			}
			return false
		})
	})
	// Private receipts stay on A.
	if err := alice.SetReadMarkers(ctx, roomID, &mautrix.ReqSetReadMarkers{ReadPrivate: topic.EventID}); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.UserTyping(ctx, roomID, false, 0); err != nil {
		t.Fatal(err)
	}
	c.inbox.waitFor(t, "typing stopped", func(acc []receivedTxn, _ []string) bool {
		return anyEDU(acc, "m.typing", func(e gjson.Result) bool {
			return e.Get("user_id").Str == string(alice.UserID) && !e.Get("typing").Bool()
		})
	})
	acc, _, _ = c.inbox.snapshot()
	for _, e := range edus(acc, "m.receipt") {
		if strings.Contains(string(e), "m.read.private") || strings.Contains(string(e), string(topic.EventID)) {
			t.Fatalf("a private receipt left A: %s", e)
		}
	}
}

// gjsonKey escapes a key for a gjson path.
func gjsonKey(k string) string {
	out := make([]byte, 0, len(k))
	for i := 0; i < len(k); i++ {
		switch k[i] {
		case '.', '*', '?', '|', '#', '@', '\\', ':', '!', '=', '<', '>', '%':
			out = append(out, '\\')
		}
		out = append(out, k[i])
	}
	return string(out)
}

// While C answers 500, A retries the same transaction with backoff and
// delivers every event later, in order; the admin API shows C failing,
// to admins only.
func TestOutboundRetriesWithBackoff(t *testing.T) {
	a := startWithConfig(t, fastRetries)
	alice, c, r, _ := setupRoom(t, a)
	c.inbox.setFail(3)
	acc0, attempts0, _ := c.inbox.snapshot()
	var sent []id.EventID
	for i := range 3 {
		resp, err := alice.SendText(t.Context(), r.roomID, fmt.Sprintf("message %d", i))
		if err != nil {
			t.Fatal(err)
		}
		sent = append(sent, resp.EventID)
	}
	c.inbox.waitFor(t, "the messages after three failures", func(acc []receivedTxn, _ []string) bool {
		return hasEventsInOrder(eventIDs(t, r.rv, pdus(acc)), sent)
	})
	acc, attempts, _ := c.inbox.snapshot()
	var ours []id.EventID
	for _, eid := range eventIDs(t, r.rv, pdus(acc)) {
		if slices.Contains(sent, eid) {
			ours = append(ours, eid)
		}
	}
	if !slices.Equal(ours, sent) {
		t.Fatalf("delivered %v, want each once in order %v", ours, sent)
	}
	// The three failed attempts were one transaction, retried with its ID
	// until C took it.
	failed := attempts[len(attempts0) : len(attempts0)+3]
	if failed[0] != failed[1] || failed[1] != failed[2] || acc[len(acc0)].ID != failed[0] {
		t.Fatalf("attempts %v, accepted %s: the retries of a failed transaction must carry its ID", attempts[len(attempts0):],
			describeTxns(acc[len(acc0):]))
	}
}

// adminGet calls the admin API.
func adminCall(t *testing.T, s *testserver.Server, method, path, token string) (int, map[string]any) {
	t.Helper()
	return s.Do(t, method, "/_synapse/admin/v1/federation/destinations"+path, token, nil)
}

// With a backoff of an hour, a failing destination is retried at once by
// the admin API's reset_connection, and again when it makes a request to
// A; the admin API lists it while it fails, to admins only.
func TestOutboundResetAndContact(t *testing.T) {
	a := startWithConfig(t, "federation:\n  retry_backoff: 1h\n  max_retry_backoff: 1h\n", "--metrics-listen", "127.0.0.1:0")
	alice, c, r, _ := setupRoom(t, a)
	if out, err := a.Run(t, "", "user", "add", "root", "--password", "root-password", "--admin"); err != nil {
		t.Fatalf("user add: %v %s", err, out)
	}
	root := a.Client(t)
	if _, err := root.Login(t.Context(), &mautrix.ReqLogin{Type: mautrix.AuthTypePassword,
		Identifier: mautrix.UserIdentifier{Type: mautrix.IdentifierTypeUser, User: "root"}, Password: "root-password",
		StoreCredentials: true}); err != nil {
		t.Fatal(err)
	}

	c.inbox.setFail(-1)
	m1, err := alice.SendText(t.Context(), r.roomID, "while C is down")
	if err != nil {
		t.Fatal(err)
	}
	c.inbox.waitFor(t, "a failed attempt", func(_ []receivedTxn, attempts []string) bool { return len(attempts) > 0 })
	dest := waitDestination(t, a, root.AccessToken, c.name, "failing", func(d map[string]any) bool { return d["failure_ts"] != nil })
	if dest["destination"] != c.name || dest["retry_interval"].(float64) != float64(time.Hour.Milliseconds()) ||
		dest["retry_last_ts"].(float64) <= 0 {
		t.Fatalf("failing destination: %v", dest)
	}
	// The metrics name the failing destination.
	resp, err := http.Get(a.MetricsURL() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		"tributary_federation_destinations_failing 1\n",
		`tributary_federation_destination_failures{destination="` + c.name + `"} 1` + "\n",
		`tributary_federation_destination_queue_depth{destination="` + c.name + `"} 1` + "\n",
		"tributary_federation_queue_depth_total 1\n",
		`tributary_federation_transactions_total{result="failed"} 1` + "\n",
	} {
		if !strings.Contains(string(metrics), want) {
			t.Fatalf("metrics lack %q:\n%s", want, grepLines(string(metrics), "tributary_federation"))
		}
	}
	code, list := adminCall(t, a, http.MethodGet, "?destination="+url.QueryEscape(c.name)+"&order_by=failure_ts&dir=b", root.AccessToken)
	if ds, _ := list["destinations"].([]any); code != http.StatusOK || list["total"].(float64) != 1 || len(ds) != 1 {
		t.Fatalf("list: %d %v", code, list)
	}
	for _, bad := range []string{"?from=-1", "?limit=x", "?order_by=nope", "?dir=sideways"} {
		code, body := adminCall(t, a, http.MethodGet, bad, root.AccessToken)
		if code != http.StatusBadRequest || body["errcode"] != "M_INVALID_PARAM" {
			t.Fatalf("list%s: %d %v", bad, code, body)
		}
	}
	code, body := adminCall(t, a, http.MethodGet, "", alice.AccessToken)
	if code != http.StatusForbidden || body["errcode"] != "M_FORBIDDEN" {
		t.Fatalf("list as a non-admin: %d %v", code, body)
	}
	code, body = adminCall(t, a, http.MethodPost, "/"+url.PathEscape(c.name)+"/reset_connection", alice.AccessToken)
	if code != http.StatusForbidden || body["errcode"] != "M_FORBIDDEN" {
		t.Fatalf("reset as a non-admin: %d %v", code, body)
	}
	code, body = adminCall(t, a, http.MethodGet, "/unknown.example", root.AccessToken)
	if code != http.StatusNotFound || body["errcode"] != "M_NOT_FOUND" {
		t.Fatalf("unknown destination: %d %v", code, body)
	}

	// C is back: reset_connection retries now, not in an hour.
	c.inbox.setFail(0)
	code, body = adminCall(t, a, http.MethodPost, "/"+url.PathEscape(c.name)+"/reset_connection", root.AccessToken)
	if code != http.StatusOK {
		t.Fatalf("reset_connection: %d %v", code, body)
	}
	c.inbox.waitFor(t, "the message after reset_connection", func(acc []receivedTxn, _ []string) bool {
		return slices.Contains(eventIDs(t, r.rv, pdus(acc)), m1.EventID)
	})
	waitDestination(t, a, root.AccessToken, c.name, "caught up", func(d map[string]any) bool {
		return d["retry_last_ts"].(float64) == 0
	})
	code, body = adminCall(t, a, http.MethodPost, "/"+url.PathEscape(c.name)+"/reset_connection", root.AccessToken)
	if code != http.StatusBadRequest {
		t.Fatalf("reset_connection of a destination not backed off: %d %v", code, body)
	}

	// Down again; a request from C to A brings it back at once.
	c.inbox.setFail(-1)
	_, attemptsBefore, _ := c.inbox.snapshot()
	m2, err := alice.SendText(t.Context(), r.roomID, "down again")
	if err != nil {
		t.Fatal(err)
	}
	c.inbox.waitFor(t, "a failed attempt", func(_ []receivedTxn, attempts []string) bool {
		return len(attempts) > len(attemptsBefore)
	})
	// A knows C is failing once it has recorded the failure.
	waitDestination(t, a, root.AccessToken, c.name, "failing again", func(d map[string]any) bool { return d["failure_ts"] != nil })
	c.inbox.setFail(0)
	if _, err := c.client().QueryProfile(t.Context(), alice.UserID); err != nil {
		t.Fatal(err)
	}
	c.inbox.waitFor(t, "the message after C made a request", func(acc []receivedTxn, _ []string) bool {
		return slices.Contains(eventIDs(t, r.rv, pdus(acc)), m2.EventID)
	})
	waitDestination(t, a, root.AccessToken, c.name, "caught up", func(d map[string]any) bool {
		return d["failure_ts"] == nil && d["retry_last_ts"].(float64) == 0 && d["retry_interval"].(float64) == 0 &&
			d["last_successful_stream_ordering"] != nil
	})
}

// waitDestination polls the admin API until the destination is as ok
// says: A records a transaction's outcome once the answer reached it,
// after C has seen the request.
func waitDestination(t *testing.T, a *testserver.Server, token, name, what string, ok func(map[string]any) bool) map[string]any {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		code, body := adminCall(t, a, http.MethodGet, "/"+url.PathEscape(name), token)
		if code == http.StatusOK && ok(body) {
			return body
		}
		if time.Now().After(deadline) {
			t.Fatalf("destination never %s: %d %v", what, code, body)
		}
		<-tick.C
	}
}

// Events queued for C when A is killed (kill -9) are delivered, in order,
// after A restarts.
func TestOutboundSurvivesKill(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) { outboundSurvivesKill(t, startWithConfig(t, fastRetries)) })
	t.Run("postgres", func(t *testing.T) {
		outboundSurvivesKill(t, startWithConfig(t, fastRetries, "--database-url", pgtest.URL(t)))
	})
}

func outboundSurvivesKill(t *testing.T, a *testserver.Server) {
	alice, c, r, _ := setupRoom(t, a)
	c.inbox.setFail(-1)
	var sent []id.EventID
	for i := range 5 {
		resp, err := alice.SendText(t.Context(), r.roomID, fmt.Sprintf("queued %d", i))
		if err != nil {
			t.Fatal(err)
		}
		sent = append(sent, resp.EventID)
	}
	c.inbox.waitFor(t, "a failed attempt", func(_ []receivedTxn, attempts []string) bool { return len(attempts) > 0 })
	a = a.Restart(true)
	c.inbox.setFail(0)
	c.inbox.waitFor(t, "the queued messages after the restart", func(acc []receivedTxn, _ []string) bool {
		return hasEventsInOrder(eventIDs(t, r.rv, pdus(acc)), sent)
	})

	// Only a to-device message waits for C (no event): it is not lost
	// either.
	c.inbox.setFail(-1)
	_, before, _ := c.inbox.snapshot()
	alice = a.Client(t)
	alice.UserID = id.NewUserID("alice", a.Opts.ServerName)
	if _, err := alice.Login(t.Context(), &mautrix.ReqLogin{Type: mautrix.AuthTypePassword,
		Identifier: mautrix.UserIdentifier{Type: mautrix.IdentifierTypeUser, User: "alice"}, Password: "correct horse battery",
		StoreCredentials: true}); err != nil {
		t.Fatal(err)
	}
	carol := id.NewUserID("carol", c.name)
	if _, err := alice.SendToDevice(t.Context(), event.NewEventType("org.example.ping"), &mautrix.ReqSendToDevice{
		Messages: map[id.UserID]map[id.DeviceID]*event.Content{carol: {"*": {Raw: map[string]any{"n": 2}}}}}); err != nil {
		t.Fatal(err)
	}
	c.inbox.waitFor(t, "a failed attempt with the to-device message", func(_ []receivedTxn, attempts []string) bool {
		return len(attempts) > len(before)
	})
	a.Restart(true)
	c.inbox.setFail(0)
	c.inbox.waitFor(t, "the to-device message after the restart", func(acc []receivedTxn, _ []string) bool {
		return anyEDU(acc, "m.direct_to_device", func(e gjson.Result) bool {
			return e.Get("messages."+gjsonKey(string(carol))+".\\*.n").Int() == 2
		})
	})
}

// History a bridge inserts backward (batch_send with forward false) never
// reaches C; the live message after it does.
func TestOutboundNoBackwardHistory(t *testing.T) {
	a := start(t, "--appservice", bridgeRegistration(t))
	alice, c, r, _ := setupRoom(t, a)
	ghost := id.NewUserID("_bridge_ghost", a.Opts.ServerName)
	if code, body := a.Do(t, http.MethodPost, "/_matrix/client/v3/register", "bridge-as-token", map[string]any{
		"type": "m.login.application_service", "username": ghost.Localpart(), "inhibit_login": true}); code != http.StatusOK {
		t.Fatalf("register the ghost: %d %v", code, body)
	}
	if code, body := a.Do(t, http.MethodPost, "/_matrix/client/v3/rooms/"+url.PathEscape(string(r.roomID))+"/join?user_id="+
		url.QueryEscape(string(ghost)), "bridge-as-token", map[string]any{}); code != http.StatusOK {
		t.Fatalf("ghost joins: %d %v", code, body)
	}
	code, body := a.Do(t, http.MethodPost, "/_matrix/client/unstable/com.beeper.backfill/rooms/"+url.PathEscape(string(r.roomID))+
		"/batch_send", "bridge-as-token", map[string]any{"forward": false, "events": []any{
		map[string]any{"type": "m.room.message", "sender": ghost, "origin_server_ts": 1000,
			"content": map[string]any{"msgtype": "m.text", "body": "old history 1"}},
		map[string]any{"type": "m.room.message", "sender": ghost, "origin_server_ts": 2000,
			"content": map[string]any{"msgtype": "m.text", "body": "old history 2"}},
	}})
	history, _ := body["event_ids"].([]any)
	if code != http.StatusOK || len(history) != 2 {
		t.Fatalf("backward batch: %d %v", code, body)
	}
	live, err := alice.SendText(t.Context(), r.roomID, "live after the history")
	if err != nil {
		t.Fatal(err)
	}
	c.inbox.waitFor(t, "the live message", func(acc []receivedTxn, _ []string) bool {
		return slices.Contains(eventIDs(t, r.rv, pdus(acc)), live.EventID)
	})
	acc, _, _ := c.inbox.snapshot()
	for _, p := range pdus(acc) {
		if body := gjson.GetBytes(p, "content.body").Str; body == "old history 1" || body == "old history 2" {
			t.Fatalf("history inserted backward reached C: %s", p)
		}
		for _, prev := range gjson.GetBytes(p, "prev_events").Array() {
			if slices.Contains(history, any(prev.Str)) {
				t.Fatalf("a PDU sent to C cites history inserted backward: %s", p)
			}
		}
	}
	// The ghost's join (a live event) did reach C.
	if !slices.ContainsFunc(pdus(acc), func(p json.RawMessage) bool {
		return gjson.GetBytes(p, "state_key").Str == string(ghost)
	}) {
		t.Fatalf("the ghost's join did not reach C: %s", describeTxns(acc))
	}
}

// Server ACLs on the way out: a server the room's ACL denies still gets
// the room's events while it is in the room (spec: "servers should still
// send events to denied servers if they are still residents"), but a
// server that is not in the room is not sent the ban of its user when the
// ACL denies it — an allowed one is.
func TestOutboundServerACL(t *testing.T) {
	a := start(t)
	alice, c, r, _ := setupRoom(t, a)
	ctx := t.Context()
	d, e := newFakeServer(t), newFakeServer(t)
	// ACLs ignore ports: denying 127.0.0.1 denies C, D and E alike (and
	// A, which the ACL does not stop from sending).
	if _, err := alice.SendStateEvent(ctx, r.roomID, event.StateServerACL, "", map[string]any{
		"allow": []string{"*"}, "deny": []string{"127.0.0.1"}, "allow_ip_literals": true}); err != nil {
		t.Fatal(err)
	}
	other, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat"})
	if err != nil {
		t.Fatal(err)
	}
	dUser, eUser := id.NewUserID("dave", d.name), id.NewUserID("erin", e.name)
	if _, err := alice.BanUser(ctx, r.roomID, &mautrix.ReqBanUser{UserID: dUser, Reason: "denied server"}); err != nil {
		t.Fatal(err)
	}
	msg, err := alice.SendText(ctx, r.roomID, "C is denied but still a resident")
	if err != nil {
		t.Fatal(err)
	}
	c.inbox.waitFor(t, "the message to a denied resident", func(acc []receivedTxn, _ []string) bool {
		return slices.Contains(eventIDs(t, r.rv, pdus(acc)), msg.EventID)
	})
	// D is sent the ban of another of its users in a room without ACL; had
	// the first ban been queued for D, it would have come first.
	if _, err := alice.BanUser(ctx, other.RoomID, &mautrix.ReqBanUser{UserID: id.NewUserID("dan", d.name)}); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.BanUser(ctx, other.RoomID, &mautrix.ReqBanUser{UserID: eUser}); err != nil {
		t.Fatal(err)
	}
	isBanOf := func(u id.UserID) func(acc []receivedTxn, _ []string) bool {
		return func(acc []receivedTxn, _ []string) bool {
			return slices.ContainsFunc(pdus(acc), func(p json.RawMessage) bool {
				return gjson.GetBytes(p, "state_key").Str == string(u) && gjson.GetBytes(p, "content.membership").Str == "ban"
			})
		}
	}
	d.inbox.waitFor(t, "the ban of dan", isBanOf(id.NewUserID("dan", d.name)))
	e.inbox.waitFor(t, "the ban of erin", isBanOf(eUser))
	accD, _, _ := d.inbox.snapshot()
	if isBanOf(dUser)(accD, nil) {
		t.Fatalf("D, denied by the room's ACL and not in it, was sent the ban of its user: %s", describeTxns(accD))
	}
	for _, p := range pdus(accD) {
		if gjson.GetBytes(p, "room_id").Str == string(r.roomID) {
			t.Fatalf("D was sent an event of the room whose ACL denies it: %s", p)
		}
	}
}

// signJSON adds the signature of obj (without signatures and unsigned) by
// user's key keyID.
func signJSON(t *testing.T, obj map[string]any, priv ed25519.PrivateKey, user id.UserID, keyID string) map[string]any {
	t.Helper()
	bare := map[string]any{}
	for k, v := range obj {
		if k != "signatures" && k != "unsigned" {
			bare[k] = v
		}
	}
	raw, err := canonicaljson.Marshal(bare)
	if err != nil {
		t.Fatal(err)
	}
	out := maps.Clone(bare)
	out["signatures"] = map[string]any{string(user): map[string]any{keyID: base64.RawStdEncoding.EncodeToString(ed25519.Sign(priv, raw))}}
	return out
}

func newKey(t *testing.T) (string, ed25519.PrivateKey) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return base64.RawStdEncoding.EncodeToString(pub), priv
}

// uploadDeviceKeys uploads signed identity keys for the client's device
// and returns the ed25519 key.
func uploadDeviceKeys(t *testing.T, a *testserver.Server, cli *mautrix.Client) string {
	t.Helper()
	pub, priv := newKey(t)
	dev := string(cli.DeviceID)
	keys := signJSON(t, map[string]any{"user_id": cli.UserID, "device_id": dev,
		"algorithms": []string{"m.olm.v1.curve25519-aes-sha2", "m.megolm.v1.aes-sha2"},
		"keys":       map[string]any{"ed25519:" + dev: pub, "curve25519:" + dev: "curve" + dev}}, priv, cli.UserID, "ed25519:"+dev)
	if code, body := a.Do(t, http.MethodPost, "/_matrix/client/v3/keys/upload", cli.AccessToken,
		map[string]any{"device_keys": keys}); code != http.StatusOK {
		t.Fatalf("keys/upload: %d %v", code, body)
	}
	return pub
}

// Device-list changes of a local user reach the servers sharing a room
// with them: a new device's keys and a deleted device (m.device_list_update,
// each citing the user's previous update), new cross-signing keys
// (m.signing_key_update).
func TestOutboundDeviceLists(t *testing.T) {
	a := start(t)
	alice, c, _, _ := setupRoom(t, a)
	deviceUpdate := func(dev id.DeviceID) func(gjson.Result) bool {
		return func(e gjson.Result) bool {
			return e.Get("user_id").Str == string(alice.UserID) && e.Get("device_id").Str == string(dev)
		}
	}
	pub1 := uploadDeviceKeys(t, a, alice)
	var first gjson.Result
	c.inbox.waitFor(t, "the first device's keys", func(acc []receivedTxn, _ []string) bool {
		return anyEDU(acc, "m.device_list_update", func(e gjson.Result) bool {
			first = e
			return deviceUpdate(alice.DeviceID)(e) && e.Get("keys.keys."+gjsonKey("ed25519:"+string(alice.DeviceID))).Str == pub1
		})
	})
	if first.Get("stream_id").Int() <= 0 || first.Get("deleted").Bool() {
		t.Fatalf("first device update: %s", first.Raw)
	}

	masterPub, masterPriv := newKey(t)
	selfPub, _ := newKey(t)
	master := map[string]any{"user_id": alice.UserID, "usage": []string{"master"},
		"keys": map[string]any{"ed25519:" + masterPub: masterPub}}
	self := signJSON(t, map[string]any{"user_id": alice.UserID, "usage": []string{"self_signing"},
		"keys": map[string]any{"ed25519:" + selfPub: selfPub}}, masterPriv, alice.UserID, "ed25519:"+masterPub)
	if code, body := a.Do(t, http.MethodPost, "/_matrix/client/v3/keys/device_signing/upload", alice.AccessToken,
		map[string]any{"master_key": master, "self_signing_key": self}); code != http.StatusOK {
		t.Fatalf("device_signing/upload: %d %v", code, body)
	}
	c.inbox.waitFor(t, "the cross-signing keys", func(acc []receivedTxn, _ []string) bool {
		return anyEDU(acc, "m.signing_key_update", func(e gjson.Result) bool {
			return e.Get("user_id").Str == string(alice.UserID) &&
				e.Get("master_key.keys."+gjsonKey("ed25519:"+masterPub)).Str == masterPub &&
				e.Get("self_signing_key.keys."+gjsonKey("ed25519:"+selfPub)).Str == selfPub
		})
	})

	// A second device, then its deletion.
	second := a.Client(t)
	if _, err := second.Login(t.Context(), &mautrix.ReqLogin{Type: mautrix.AuthTypePassword,
		Identifier: mautrix.UserIdentifier{Type: mautrix.IdentifierTypeUser, User: "alice"},
		Password:   "correct horse battery", StoreCredentials: true}); err != nil {
		t.Fatal(err)
	}
	uploadDeviceKeys(t, a, second)
	var added gjson.Result
	c.inbox.waitFor(t, "the second device's keys", func(acc []receivedTxn, _ []string) bool {
		return anyEDU(acc, "m.device_list_update", func(e gjson.Result) bool {
			added = e
			return deviceUpdate(second.DeviceID)(e) && e.Get("keys").Exists()
		})
	})
	if prev := added.Get("prev_id").Array(); len(prev) != 1 || prev[0].Int() != first.Get("stream_id").Int() {
		t.Fatalf("the second update's prev_id is not the first's stream_id %d: %s", first.Get("stream_id").Int(), added.Raw)
	}
	path := "/_matrix/client/v3/devices/" + url.PathEscape(string(second.DeviceID))
	code, body := a.Do(t, http.MethodDelete, path, alice.AccessToken, map[string]any{})
	session, _ := body["session"].(string)
	if code != http.StatusUnauthorized || session == "" {
		t.Fatalf("delete device without auth: %d %v", code, body)
	}
	if code, body := a.Do(t, http.MethodDelete, path, alice.AccessToken, map[string]any{"auth": map[string]any{
		"type": "m.login.password", "session": session, "password": "correct horse battery",
		"identifier": map[string]any{"type": "m.id.user", "user": "alice"}}}); code != http.StatusOK {
		t.Fatalf("delete device: %d %v", code, body)
	}
	c.inbox.waitFor(t, "the deleted device", func(acc []receivedTxn, _ []string) bool {
		return anyEDU(acc, "m.device_list_update", func(e gjson.Result) bool {
			return deviceUpdate(second.DeviceID)(e) && e.Get("deleted").Bool() && !e.Get("keys").Exists() &&
				len(e.Get("prev_id").Array()) == 1 && e.Get("prev_id.0").Int() == added.Get("stream_id").Int()
		})
	})
}

func grepLines(text, substr string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
