package main

import (
	"encoding/json"
	"fmt"
	"math"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"testing"
	"time"

	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/core/bridging"
	"github.com/tributary-hs/tributary/core/config"
	"github.com/tributary-hs/tributary/core/rooms"
	"github.com/tributary-hs/tributary/core/types"
	"github.com/tributary-hs/tributary/core/users"
	"github.com/tributary-hs/tributary/internal/testserver"
)

// TestAppServiceContract runs the same appservice operations through HTTP
// against the real binary and through direct calls of core/bridging on
// services built by buildCore (as `tributary import` and the plugin host
// will), and compares what each answered and what each left in its
// database — read back the same way from both.
func TestAppServiceContract(t *testing.T) {
	start := time.Now().UnixMilli()
	reg := filepath.Join(t.TempDir(), "bridge.yaml")
	if err := os.WriteFile(reg, []byte(`id: bridge
url: null
as_token: contract-as-token
hs_token: contract-hs-token
sender_localpart: bridgebot
rate_limited: false
namespaces:
  users:
    - regex: '@_bridge_.*:localhost'
      exclusive: true
`), 0o600); err != nil {
		t.Fatal(err)
	}

	srv := testserver.Start(t, testserver.Options{Args: []string{"--appservice", reg}})
	overHTTP := setupHTTP(t, srv)
	httpOut := runContract(t, overHTTP)
	srv.Stop()
	httpRead := readBack(t, reg, srv.DataDir, overHTTP.room, httpOut, start)

	dir := t.TempDir()
	core := openCore(t, reg, dir)
	inProcess := setupInProcess(t, core)
	procOut := runContract(t, inProcess)
	core.stop()
	procRead := readBack(t, reg, dir, inProcess.room, procOut, start)

	for i, op := range contractOps {
		h, p := httpOut[i], procOut[i]
		if h.Status != p.Status || h.Code != p.Code || len(h.IDs) != len(p.IDs) {
			t.Errorf("%s: over HTTP %d %s (%d events), in process %d %s (%d events)", op.name, h.Status, h.Code,
				len(h.IDs), p.Status, p.Code, len(p.IDs))
		}
		if h.Status != op.status || h.Code != op.code {
			t.Errorf("%s: %d %s, want %d %s", op.name, h.Status, h.Code, op.status, op.code)
		}
	}
	if !reflect.DeepEqual(httpRead, procRead) {
		t.Errorf("the databases differ:\nover HTTP:  %+v\nin process: %+v", httpRead, procRead)
	}
	// What the operations should have left, whichever way they came.
	want := []timelineEvent{ // newest first, as /messages pages backward
		{Body: "h1", Sender: "@human:localhost", TS: -1, Returned: "human's own invalid ts is ignored too#0"},
		{Body: "h0", Sender: "@human:localhost", TS: -1, Returned: "human's own ts is ignored#0"},
		{Body: "s2", Sender: "@bridgebot:localhost", TS: 7000, Returned: "the appservice itself with ts#0"},
		{Body: "s1", Sender: "@_bridge_alice:localhost", TS: 6000, Returned: "a ghost's device with ts#0"},
		{Body: "s0", Sender: "@_bridge_alice:localhost", TS: 5000, Returned: "a ghost with ts#0"},
		{Body: "f3", Sender: "@_bridge_alice:localhost", TS: 4000, Returned: "forward, notifying#0"},
		{Body: "f2", Sender: "@_bridge_alice:localhost", TS: 3000, Returned: "backfill into the empty room#2"},
		{Body: "f1", Sender: "@_bridge_bob:localhost", TS: 2000, ReplyTo: "f0", Returned: "backfill into the empty room#1"},
		{Body: "f0", Sender: "@_bridge_alice:localhost", TS: 1000, Returned: "backfill into the empty room#0"},
		{Body: "b1", Sender: "@_bridge_alice:localhost", TS: 200, ReplyTo: "f2", Returned: "older history#1"},
		{Body: "b0", Sender: "@_bridge_bob:localhost", TS: 100, Returned: "older history#0"},
	}
	if !reflect.DeepEqual(procRead.Timeline, want) {
		t.Errorf("timeline %+v\nwant %+v", procRead.Timeline, want)
	}
	if r := procRead.Receipts["f2"]["m.read"]; len(r) != 1 || r[0] != "@human:localhost" {
		t.Errorf("mark_read_by left receipts %v, want @human:localhost's on f2", procRead.Receipts)
	}
}

// contractSide is one way into the appservice contract.
type contractSide interface {
	batchSend(t *testing.T, req *bridging.BatchRequest) outcome
	send(t *testing.T, op sendOp, txnID string) outcome
}

// sendOp is PUT /rooms/{roomId}/send/m.room.message/{txnId}.
type sendOp struct {
	human  bool        // with the human's own token instead of the appservice's
	user   id.UserID   // ?user_id=
	device id.DeviceID // ?device_id=
	ts     string      // ?ts=, as sent
	body   string
}

// outcome is what an operation answered: the status and errcode (200 and
// "" when it succeeded) and the event IDs it returned.
type outcome struct {
	Status int
	Code   string
	IDs    []id.EventID
}

type contractOp struct {
	name   string
	batch  *bridging.BatchRequest
	send   *sendOp
	status int
	code   string
}

const (
	alice       = id.UserID("@_bridge_alice:localhost")
	bob         = id.UserID("@_bridge_bob:localhost")
	carol       = id.UserID("@_bridge_carol:localhost") // suspended
	dave        = id.UserID("@_bridge_dave:localhost")  // locked
	human       = id.UserID("@human:localhost")
	ghostDevice = "GHOSTDEV"
)

func batchMsg(alias id.EventID, sender id.UserID, ts int64, body string, replyTo id.EventID) *bridging.BatchEvent {
	content := map[string]any{"msgtype": "m.text", "body": body}
	if replyTo != "" {
		content["m.relates_to"] = map[string]any{"m.in_reply_to": map[string]any{"event_id": replyTo}}
	}
	raw, _ := json.Marshal(content)
	return &bridging.BatchEvent{EventID: alias, Type: "m.room.message", Sender: sender, Content: raw, OriginServerTS: ts}
}

var contractOps = []contractOp{
	{name: "backfill into the empty room", status: 200, batch: &bridging.BatchRequest{ForwardIfNoMessages: true,
		MarkReadBy: human, Events: []*bridging.BatchEvent{batchMsg("$f0", alice, 1000, "f0", ""),
			batchMsg("", bob, 2000, "f1", "$f0"), batchMsg("$f2", alice, 3000, "f2", "")}}},
	{name: "older history", status: 200, batch: &bridging.BatchRequest{ForwardIfNoMessages: true,
		Events: []*bridging.BatchEvent{batchMsg("$b0", bob, 100, "b0", ""), batchMsg("", alice, 200, "b1", "$f2")}}},
	{name: "forward, notifying", status: 200, batch: &bridging.BatchRequest{Forward: true, SendNotification: true,
		Events: []*bridging.BatchEvent{batchMsg("", alice, 4000, "f3", "")}}},
	{name: "an alias already taken", status: 409, code: "M_INVALID_PARAM", batch: &bridging.BatchRequest{Forward: true,
		Events: []*bridging.BatchEvent{batchMsg("$f0", alice, 1, "x", "")}}},
	{name: "a sender outside the namespace", status: 403, code: "M_FORBIDDEN", batch: &bridging.BatchRequest{Forward: true,
		Events: []*bridging.BatchEvent{batchMsg("", alice, 1, "x", ""), batchMsg("", human, 2, "y", "")}}},
	{name: "mark_read_by a stranger", status: 403, code: "M_FORBIDDEN", batch: &bridging.BatchRequest{Forward: true,
		MarkReadBy: "@nobody:localhost", Events: []*bridging.BatchEvent{batchMsg("", alice, 1, "x", "")}}},
	{name: "a suspended sender", status: 403, code: "M_USER_SUSPENDED", batch: &bridging.BatchRequest{Forward: true,
		Events: []*bridging.BatchEvent{batchMsg("", alice, 1, "x", ""), batchMsg("", carol, 2, "y", "")}}},
	{name: "a locked sender", status: 403, code: "M_USER_LOCKED", batch: &bridging.BatchRequest{Forward: true,
		Events: []*bridging.BatchEvent{batchMsg("", dave, 1, "x", "")}}},
	{name: "state into history", status: 400, code: "M_INVALID_PARAM", batch: &bridging.BatchRequest{
		Events: []*bridging.BatchEvent{{Type: "m.room.topic", StateKey: new(string), Sender: alice,
			Content: []byte(`{"topic":"t"}`)}}}},
	{name: "a ghost with ts", status: 200, send: &sendOp{user: alice, ts: "5000", body: "s0"}},
	{name: "a ghost's device with ts", status: 200, send: &sendOp{user: alice, device: ghostDevice, ts: "6000", body: "s1"}},
	{name: "the appservice itself with ts", status: 200, send: &sendOp{ts: "7000", body: "s2"}},
	{name: "masquerading outside the namespace", status: 403, code: "M_FORBIDDEN", send: &sendOp{user: human, body: "x"}},
	{name: "masquerading as an unregistered ghost", status: 403, code: "M_FORBIDDEN",
		send: &sendOp{user: "@_bridge_nobody:localhost", body: "x"}},
	{name: "an unknown device", status: 400, code: "M_UNKNOWN_DEVICE", send: &sendOp{user: alice, device: "NOPE", body: "x"}},
	{name: "ts not a number", status: 400, code: "M_INVALID_PARAM", send: &sendOp{user: alice, ts: "soon", body: "x"}},
	{name: "ts zero", status: 400, code: "M_INVALID_PARAM", send: &sendOp{user: alice, ts: "0", body: "x"}},
	{name: "human's own ts is ignored", status: 200, send: &sendOp{human: true, ts: "8000", body: "h0"}},
	{name: "human's own invalid ts is ignored too", status: 200, send: &sendOp{human: true, ts: "soon", body: "h1"}},
	{name: "as a suspended ghost", status: 403, code: "M_USER_SUSPENDED", send: &sendOp{user: carol, body: "x"}},
	{name: "as a locked ghost", status: 401, code: "M_USER_LOCKED", send: &sendOp{user: dave, body: "x"}},
}

func runContract(t *testing.T, side contractSide) []outcome {
	out := make([]outcome, len(contractOps))
	for i, op := range contractOps {
		if op.batch != nil {
			out[i] = side.batchSend(t, op.batch)
		} else {
			out[i] = side.send(t, *op.send, "txn"+strconv.Itoa(i))
		}
	}
	return out
}

func sendContent(body string) []byte {
	raw, _ := json.Marshal(map[string]any{"msgtype": "m.text", "body": body})
	return raw
}

// httpSide drives the real binary.
type httpSide struct {
	srv        *testserver.Server
	asToken    string
	humanToken string
	room       id.RoomID
}

func setupHTTP(t *testing.T, srv *testserver.Server) *httpSide {
	h := &httpSide{srv: srv, asToken: "contract-as-token"}
	must := func(what string, code int, body map[string]any) map[string]any {
		t.Helper()
		if code != 200 {
			t.Fatalf("%s: %d %v", what, code, body)
		}
		return body
	}
	for _, g := range []id.UserID{alice, bob, carol, dave} {
		req := map[string]any{"type": "m.login.application_service", "username": g.Localpart(), "inhibit_login": true}
		if g == alice {
			req["inhibit_login"], req["device_id"] = false, ghostDevice
		}
		code, body := srv.Do(t, "POST", "/_matrix/client/v3/register", h.asToken, req)
		must("register "+string(g), code, body)
	}
	for _, u := range []string{"human", "admin"} {
		args := []string{"user", "add", u, "--password", u + "-password"}
		if u == "admin" {
			args = append(args, "--admin")
		}
		if out, err := srv.Run(t, "", args...); err != nil {
			t.Fatalf("user add %s: %v %s", u, err, out)
		}
	}
	login := func(u string) string {
		code, body := srv.Do(t, "POST", "/_matrix/client/v3/login", "", map[string]any{"type": "m.login.password",
			"identifier": map[string]any{"type": "m.id.user", "user": u}, "password": u + "-password"})
		return must("login "+u, code, body)["access_token"].(string)
	}
	h.humanToken = login("human")
	adminToken := login("admin")
	code, body := srv.Do(t, "POST", "/_matrix/client/v3/createRoom", h.asToken, map[string]any{"preset": "public_chat"})
	h.room = id.RoomID(must("createRoom", code, body)["room_id"].(string))
	joinPath := "/_matrix/client/v3/rooms/" + url.PathEscape(string(h.room)) + "/join"
	for _, g := range []id.UserID{alice, bob, carol, dave} {
		code, body := srv.Do(t, "POST", joinPath+"?user_id="+url.QueryEscape(string(g)), h.asToken, map[string]any{})
		must("join "+string(g), code, body)
	}
	code, body = srv.Do(t, "POST", joinPath, h.humanToken, map[string]any{})
	must("join human", code, body)
	code, body = srv.Do(t, "PUT", "/_matrix/client/v1/admin/suspend/"+string(carol), adminToken, map[string]any{"suspended": true})
	must("suspend", code, body)
	code, body = srv.Do(t, "PUT", "/_matrix/client/v1/admin/lock/"+string(dave), adminToken, map[string]any{"locked": true})
	must("lock", code, body)
	return h
}

func httpOutcome(code int, body map[string]any) outcome {
	o := outcome{Status: code}
	if code != 200 {
		o.Code, _ = body["errcode"].(string)
		return o
	}
	if eid, ok := body["event_id"].(string); ok {
		o.IDs = []id.EventID{id.EventID(eid)}
	}
	ids, _ := body["event_ids"].([]any)
	for _, e := range ids {
		o.IDs = append(o.IDs, id.EventID(e.(string)))
	}
	return o
}

func (h *httpSide) batchSend(t *testing.T, req *bridging.BatchRequest) outcome {
	return httpOutcome(h.srv.Do(t, "POST", "/_matrix/client/unstable/com.beeper.backfill/rooms/"+
		url.PathEscape(string(h.room))+"/batch_send", h.asToken, req))
}

func (h *httpSide) send(t *testing.T, op sendOp, txnID string) outcome {
	q := url.Values{}
	for k, v := range map[string]string{"user_id": string(op.user), "device_id": string(op.device), "ts": op.ts} {
		if v != "" {
			q.Set(k, v)
		}
	}
	token := h.asToken
	if op.human {
		token = h.humanToken
	}
	return httpOutcome(h.srv.Do(t, "PUT", "/_matrix/client/v3/rooms/"+url.PathEscape(string(h.room))+
		"/send/m.room.message/"+txnID+"?"+q.Encode(), token, sendContent(op.body)))
}

// procSide calls the services in process.
type procSide struct {
	core  *coreServices
	human *types.Principal
	room  id.RoomID
}

// openCore builds the services of a server on dataDir, as `tributary
// serve` and the CLI do.
func openCore(t *testing.T, reg, dataDir string) *coreServices {
	t.Helper()
	cfg := config.Default()
	cfg.DataDir = dataDir
	cfg.AppServiceConfigFiles = []string{reg}
	store, err := openStore(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	core, err := buildCore(t.Context(), cfg, store, newLogger(cfg), nil)
	if err != nil {
		t.Fatal(err)
	}
	return core
}

func setupInProcess(t *testing.T, core *coreServices) *procSide {
	ctx := t.Context()
	p := &procSide{core: core}
	must := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	for _, g := range []id.UserID{alice, bob, carol, dave} {
		inhibit, dr := true, users.DeviceRequest{}
		if g == alice {
			inhibit, dr = false, users.DeviceRequest{DeviceID: ghostDevice}
		}
		_, _, err := core.users.RegisterAppServiceUser(ctx, "bridge", g.Localpart(), inhibit, dr)
		must("register "+string(g), err)
	}
	for _, u := range []string{"human", "admin"} {
		_, err := core.users.CreateUser(ctx, u, u+"-password", u == "admin")
		must("user add "+u, err)
	}
	sess, err := core.users.Login(ctx, &users.LoginRequest{Type: "m.login.password",
		Identifier: &users.Identifier{Type: "m.id.user", User: "human"}, Password: "human-password"})
	must("login human", err)
	p.human, err = core.users.Authenticate(ctx, sess.AccessToken, "")
	must("authenticate human", err)
	bot, err := core.bridging.Masquerade(ctx, "bridge", "", "")
	must("the appservice", err)
	p.room, err = core.rooms.CreateRoom(ctx, &rooms.CreateRequest{Creator: bot.UserID, Preset: "public_chat"})
	must("createRoom", err)
	for _, u := range []id.UserID{alice, bob, carol, dave, human} {
		_, err := core.rooms.ChangeMembership(ctx, &rooms.MembershipRequest{RoomID: p.room, Sender: u, Target: u,
			Membership: "join"})
		must("join "+string(u), err)
	}
	must("suspend", core.users.Restrict(ctx, "@admin:localhost", carol, users.Suspension, true))
	must("lock", core.users.Restrict(ctx, "@admin:localhost", dave, users.Lock, true))
	return p
}

func procOutcome(ids []id.EventID, err error) outcome {
	if err == nil {
		return outcome{Status: 200, IDs: ids}
	}
	if me, ok := types.AsError(err); ok {
		return outcome{Status: me.Status, Code: me.Code}
	}
	return outcome{Status: 500, Code: err.Error()}
}

func (p *procSide) batchSend(t *testing.T, req *bridging.BatchRequest) outcome {
	return procOutcome(p.core.bridging.BatchSend(t.Context(), "bridge", p.room, req))
}

func (p *procSide) send(t *testing.T, op sendOp, txnID string) outcome {
	caller := p.human
	if !op.human {
		var err error
		if caller, err = p.core.bridging.Masquerade(t.Context(), "bridge", op.user, op.device); err != nil {
			return procOutcome(nil, err)
		}
	}
	// ?ts= as the client API parses it: absent, or not a positive integer.
	ts := int64(0)
	if op.ts != "" {
		if v, err := strconv.ParseInt(op.ts, 10, 64); err == nil && v > 0 {
			ts = v
		} else {
			ts = -1
		}
	}
	eid, err := p.core.bridging.Send(t.Context(), caller, bridging.SendRequest{RoomID: p.room, Type: "m.room.message",
		Content: sendContent(op.body), TxnID: txnID, Timestamp: ts})
	if err != nil {
		return procOutcome(nil, err)
	}
	return procOutcome([]id.EventID{eid}, nil)
}

// timelineEvent is a message as read back, with event IDs replaced by what
// they stand for (bodies, and which operation returned them).
type timelineEvent struct {
	Body     string
	Sender   id.UserID
	TS       int64  // -1: the time of sending (no ts counted)
	ReplyTo  string // the body of the event replied to
	Returned string // "operation#index" of the operation that returned the event's ID
}

type readBackResult struct {
	Timeline []timelineEvent
	Receipts map[string]map[string][]string // body → receipt type → users
}

// readBack reads the room of the database in dataDir as the human: every
// message, newest first, and the receipts.
func readBack(t *testing.T, reg, dataDir string, room id.RoomID, outs []outcome, start int64) readBackResult {
	t.Helper()
	ctx := t.Context()
	core := openCore(t, reg, dataDir)
	defer core.stop()
	returned := map[id.EventID]string{}
	for i, o := range outs {
		for j, eid := range o.IDs {
			returned[eid] = fmt.Sprintf("%s#%d", contractOps[i].name, j)
		}
	}
	var msgs []*rooms.ClientEvent
	from := ""
	for {
		page, err := core.rooms.Messages(ctx, &rooms.MessagesRequest{RoomID: room, User: human, From: from,
			Backwards: true, Limit: 100})
		if err != nil {
			t.Fatal(err)
		}
		for _, ev := range page.Chunk {
			if ev.Type == "m.room.message" {
				msgs = append(msgs, ev)
			}
		}
		if page.End == "" || len(page.Chunk) == 0 {
			break
		}
		from = page.End
	}
	type messageContent struct {
		Body      string `json:"body"`
		RelatesTo struct {
			InReplyTo struct {
				EventID id.EventID `json:"event_id"`
			} `json:"m.in_reply_to"`
		} `json:"m.relates_to"`
	}
	contents := make([]messageContent, len(msgs))
	bodies := map[id.EventID]string{}
	for i, ev := range msgs {
		if err := json.Unmarshal(ev.Content, &contents[i]); err != nil {
			t.Fatal(err)
		}
		bodies[ev.EventID] = contents[i].Body
	}
	var res readBackResult
	for i, ev := range msgs {
		te := timelineEvent{Body: contents[i].Body, Sender: ev.Sender, TS: ev.OriginServerTS, Returned: returned[ev.EventID]}
		if te.TS >= start {
			te.TS = -1
		}
		if r := contents[i].RelatesTo.InReplyTo.EventID; r != "" {
			te.ReplyTo = bodies[r]
			if te.ReplyTo == "" {
				te.ReplyTo = "unknown " + string(r) // an alias left unresolved
			}
		}
		res.Timeline = append(res.Timeline, te)
	}
	receipts, err := core.ephemeral.ReceiptsSince(ctx, human, []id.RoomID{room}, 0, math.MaxInt64)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := json.Marshal(receipts[room])
	if err != nil {
		t.Fatal(err)
	}
	var content map[id.EventID]map[string]map[string]any
	if err := json.Unmarshal(raw, &content); err != nil {
		t.Fatal(err)
	}
	res.Receipts = map[string]map[string][]string{}
	for eid, byType := range content {
		label := bodies[eid]
		if label == "" {
			label = "an event that is no message"
		}
		res.Receipts[label] = map[string][]string{}
		for typ, byUser := range byType {
			for u := range byUser {
				res.Receipts[label][typ] = append(res.Receipts[label][typ], u)
			}
		}
	}
	return res
}
