package e2efed

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tidwall/gjson"
	"go.mau.fi/util/exhttp"
	"go.mau.fi/util/jsontime"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/federation"
	"maunium.net/go/mautrix/federation/pdu"
	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/internal/pgtest"
	"github.com/tributary-hs/tributary/internal/testserver"
)

// client is mautrix's federation client signing as C.
func (f *fakeServer) client() *federation.Client {
	settings := exhttp.SensibleClientSettings
	settings.InsecureTLS = true
	cli := federation.NewClient(f.name, f.key, nil, settings)
	cli.AllowIP = func(net.IP) bool { return true }
	return cli
}

// remoteRoom is C's view of a room it joined on A: the room's state (as
// event IDs), its latest event and depth.
type remoteRoom struct {
	rv     id.RoomVersion
	roomID id.RoomID
	state  map[pdu.StateKey]id.EventID
	last   id.EventID
	depth  int64
}

// build makes an event of C's user in the room on top of prev, hashed and
// signed with key (C's own unless a test forges), with mautrix's pdu.
func (f *fakeServer) build(t *testing.T, r *remoteRoom, key *federation.SigningKey, sender id.UserID, typ string,
	stateKey *string, content any, prev id.EventID, depth int64) (id.EventID, json.RawMessage) {
	t.Helper()
	raw, err := json.Marshal(content)
	if err != nil {
		t.Fatal(err)
	}
	ev := &pdu.PDU{Type: typ, StateKey: stateKey, Sender: sender, RoomID: r.roomID, Content: raw,
		OriginServerTS: time.Now().UnixMilli(), Depth: depth, PrevEvents: []id.EventID{prev}, AuthEvents: []id.EventID{}}
	for _, k := range ev.AuthEventSelection(r.rv) {
		if eid := r.state[k]; eid != "" {
			ev.AuthEvents = append(ev.AuthEvents, eid)
		}
	}
	return f.sign(t, r.rv, ev, key)
}

func (f *fakeServer) sign(t *testing.T, rv id.RoomVersion, ev *pdu.PDU, key *federation.SigningKey) (id.EventID, json.RawMessage) {
	t.Helper()
	if err := ev.FillContentHash(); err != nil {
		t.Fatal(err)
	}
	if err := ev.Sign(rv, f.name, f.key.ID, key.Priv); err != nil {
		t.Fatal(err)
	}
	eid, err := ev.GetEventID(rv)
	if err != nil {
		t.Fatal(err)
	}
	out, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	return eid, out
}

// join makes C's user join the room on A with make_join and send_join.
func (f *fakeServer) join(t *testing.T, a *testserver.Server, roomID id.RoomID, user id.UserID) *remoteRoom {
	t.Helper()
	r, _ := f.joinVia(t, a, roomID, user, "v2")
	return r
}

// joinVia is join with send_join v2 ("v2"), v2 with omit_members
// ("omit") or v1 ("v1"); it returns send_join's answer too.
func (f *fakeServer) joinVia(t *testing.T, a *testserver.Server, roomID id.RoomID, user id.UserID,
	how string) (*remoteRoom, *federation.RespSendJoin) {
	t.Helper()
	ctx := t.Context()
	cli := f.client()
	mj, err := cli.MakeJoin(ctx, &federation.ReqMakeJoin{RoomID: roomID, UserID: user, Via: a.Opts.ServerName,
		SupportedVersions: []id.RoomVersion{id.RoomV10, id.RoomV11, id.RoomV12}})
	if err != nil {
		t.Fatalf("make_join: %v", err)
	}
	var tmpl pdu.PDU
	if err := json.Unmarshal(mj.Event, &tmpl); err != nil {
		t.Fatalf("template %s: %v", mj.Event, err)
	}
	if tmpl.Type != "m.room.member" || tmpl.Sender != user || len(tmpl.PrevEvents) == 0 || len(tmpl.AuthEvents) == 0 {
		t.Fatalf("template: %s", mj.Event)
	}
	tmpl.OriginServerTS = time.Now().UnixMilli()
	joinID, joinRaw := f.sign(t, mj.RoomVersion, &tmpl, f.key)
	var sj *federation.RespSendJoin
	if how == "v1" {
		// The v1 answer is [200, {…}].
		var v1 []json.RawMessage
		_, _, err = cli.MakeFullRequest(ctx, federation.RequestParams{ServerName: a.Opts.ServerName, Method: http.MethodPut,
			Path: federation.URLPath{"v1", "send_join", roomID, joinID}, Authenticate: true, RequestJSON: joinRaw,
			ResponseJSON: &v1})
		if err != nil || len(v1) != 2 || string(v1[0]) != "200" || json.Unmarshal(v1[1], &sj) != nil {
			t.Fatalf("send_join v1: %s, %v", v1, err)
		}
	} else {
		sj, err = cli.SendJoin(ctx, &federation.ReqSendJoin{RoomID: roomID, EventID: joinID, Event: joinRaw,
			Via: a.Opts.ServerName, OmitMembers: how == "omit"})
		if err != nil {
			t.Fatalf("send_join: %v", err)
		}
	}
	r := &remoteRoom{rv: mj.RoomVersion, roomID: roomID, state: map[pdu.StateKey]id.EventID{}, last: joinID, depth: tmpl.Depth}
	for _, raw := range sj.State {
		var ev pdu.PDU
		if err := json.Unmarshal(raw, &ev); err != nil || ev.StateKey == nil {
			t.Fatalf("state event %s: %v", raw, err)
		}
		eid, err := ev.GetEventID(r.rv)
		if err != nil {
			t.Fatal(err)
		}
		r.state[pdu.StateKey{Type: ev.Type, StateKey: *ev.StateKey}] = eid
	}
	for _, k := range []string{"m.room.create", "m.room.power_levels", "m.room.join_rules"} {
		if r.state[pdu.StateKey{Type: k}] == "" {
			t.Fatalf("send_join's state has no %s: %d events", k, len(sj.State))
		}
	}
	if r.state[pdu.StateKey{Type: "m.room.member", StateKey: string(user)}] != "" || slices.ContainsFunc(sj.AuthChain,
		func(raw json.RawMessage) bool { return gjson.GetBytes(raw, "state_key").Str == string(user) }) {
		t.Fatal("send_join's state is the state after the join, not before")
	}
	if len(sj.AuthChain) == 0 && how != "omit" { // with omit_members, what is in state may be left out
		t.Fatal("send_join: empty auth chain")
	}
	r.state[pdu.StateKey{Type: "m.room.member", StateKey: string(user)}] = joinID
	return r, sj
}

// sendTxn sends C's PDUs to A in one transaction and returns the results.
func (f *fakeServer) sendTxn(t *testing.T, a *testserver.Server, pdus ...json.RawMessage) map[id.EventID]federation.PDUProcessingResult {
	t.Helper()
	resp, err := f.client().SendTransaction(t.Context(), &federation.ReqSendTransaction{Destination: a.Opts.ServerName,
		TxnID: strconv.FormatInt(time.Now().UnixNano(), 10), Origin: f.name, OriginServerTS: jsontime.UM(time.Now()), PDUs: pdus})
	if err != nil {
		t.Fatalf("send: %v", err)
	}
	return resp.PDUs
}

// waitForEvent long-polls alice's sync until the event arrives.
func waitForEvent(t *testing.T, cli *mautrix.Client, roomID id.RoomID, eventID id.EventID) *event.Event {
	t.Helper()
	var found *event.Event
	waitForSync(t, cli, "event "+eventID.String(), func(resp *mautrix.RespSync) bool {
		if jr, ok := resp.Rooms.Join[roomID]; ok {
			for _, ev := range jr.Timeline.Events {
				if ev.ID == eventID {
					found = ev
				}
			}
		}
		return found != nil
	})
	return found
}

// waitForSync long-polls a user's sync until done says what it waited for
// came.
func waitForSync(t *testing.T, cli *mautrix.Client, what string, done func(*mautrix.RespSync) bool) {
	t.Helper()
	waitForSyncFrom(t, cli, "", what, done)
}

// waitForSyncFrom is waitForSync from a sync token ("": an initial sync).
func waitForSyncFrom(t *testing.T, cli *mautrix.Client, since, what string, done func(*mautrix.RespSync) bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	for {
		resp, err := cli.SyncRequest(ctx, 5000, since, "", false, event.PresenceOnline)
		if err != nil {
			t.Fatalf("sync waiting for %s: %v", what, err)
		}
		if done(resp) {
			return
		}
		since = resp.NextBatch
	}
}

// syncToken is the token of a sync made now.
func syncToken(t *testing.T, cli *mautrix.Client) string {
	t.Helper()
	resp, err := cli.SyncRequest(t.Context(), 0, "", "", false, event.PresenceOnline)
	if err != nil {
		t.Fatal(err)
	}
	return resp.NextBatch
}

// ephemeral is whether the room's ephemeral events in a sync response
// include one of the type whose content matches path.
func ephemeral(resp *mautrix.RespSync, roomID id.RoomID, typ, path, want string) bool {
	jr, ok := resp.Rooms.Join[roomID]
	if !ok {
		return false
	}
	for _, ev := range jr.Ephemeral.Events {
		if ev.Type.Type != typ {
			continue
		}
		for _, v := range gjson.GetBytes(ev.Content.VeryRaw, path).Array() {
			if v.Str == want {
				return true
			}
		}
		if gjson.GetBytes(ev.Content.VeryRaw, path).Exists() && want == "" {
			return true
		}
	}
	return false
}

// sendEDUs sends C's EDUs to A in one transaction.
func (f *fakeServer) sendEDUs(t *testing.T, a *testserver.Server, edus ...any) {
	t.Helper()
	var raws []json.RawMessage
	for _, e := range edus {
		raw, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		raws = append(raws, raw)
	}
	_, err := f.client().SendTransaction(t.Context(), &federation.ReqSendTransaction{Destination: a.Opts.ServerName,
		TxnID: strconv.FormatInt(time.Now().UnixNano(), 10), Origin: f.name, OriginServerTS: jsontime.UM(time.Now()),
		PDUs: []json.RawMessage{}, EDUs: raws})
	if err != nil {
		t.Fatalf("send EDUs: %v", err)
	}
}

// A server C joins a public room on A through make_join and send_join,
// then sends messages in transactions: alice on A sees them in /sync as
// sent by C's user. A forged signature is refused, a wrong content hash
// stores the redacted event, a message whose prev event C did not send
// makes A fetch it with get_missing_events. C reads the room's events,
// state and history; a server D that is not in the room is refused.
func TestRemoteServerJoinsAndSends(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) { remoteServerJoinsAndSends(t, start(t)) })
	t.Run("postgres", func(t *testing.T) { remoteServerJoinsAndSends(t, start(t, "--database-url", pgtest.URL(t))) })
}

func remoteServerJoinsAndSends(t *testing.T, a *testserver.Server) {
	ctx := t.Context()
	alice := register(t, a, "alice")
	created, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat", Name: "Federated"})
	if err != nil {
		t.Fatal(err)
	}
	roomID := created.RoomID
	c := newFakeServer(t)
	carol := id.NewUserID("carol", c.name)

	// make_join for a user of another server, or with no version in common.
	status, body := do(t, http.MethodGet, "https://"+a.FederationAddr+"/_matrix/federation/v1/make_join/"+
		url.PathEscape(roomID.String())+"/"+url.PathEscape("@mallory:elsewhere.example")+"?ver=12", c.authHeader(t, c.key,
		http.MethodGet, "/_matrix/federation/v1/make_join/"+url.PathEscape(roomID.String())+"/"+
			url.PathEscape("@mallory:elsewhere.example")+"?ver=12", a.Opts.ServerName), nil)
	wantError(t, "make_join for another server's user", status, body, http.StatusForbidden, "M_FORBIDDEN")
	_, err = c.client().MakeJoin(ctx, &federation.ReqMakeJoin{RoomID: roomID, UserID: carol, Via: a.Opts.ServerName,
		SupportedVersions: []id.RoomVersion{"1", "2"}})
	if httpErr, ok := err.(mautrix.HTTPError); !ok || httpErr.RespError == nil || httpErr.RespError.ErrCode != "M_INCOMPATIBLE_ROOM_VERSION" {
		t.Fatalf("make_join without the room's version: %v", err)
	}

	r := c.join(t, a, roomID, carol)
	waitForEvent(t, alice, roomID, r.last)
	members, err := alice.JoinedMembers(ctx, roomID)
	if err != nil || len(members.Joined) != 2 {
		t.Fatalf("members after C's join: %+v, %v", members, err)
	}

	// A message of C's user reaches alice.
	msg1, raw1 := c.build(t, r, c.key, carol, "m.room.message", nil,
		map[string]any{"msgtype": "m.text", "body": "hello from C"}, r.last, r.depth+1)
	res := c.sendTxn(t, a, raw1)
	if e, ok := res[msg1]; !ok || e.Error != "" {
		t.Fatalf("transaction result for %s: %+v", msg1, res)
	}
	got := waitForEvent(t, alice, roomID, msg1)
	if got.Sender != carol || gjson.GetBytes(got.Content.VeryRaw, "body").Str != "hello from C" {
		t.Fatalf("alice sees %+v", got)
	}
	r.last, r.depth = msg1, r.depth+1

	// A transaction larger than a client request may be (1 MiB): 20 PDUs
	// of 60 KB each.
	var big []json.RawMessage
	var bigIDs []id.EventID
	for i := range 20 {
		eid, raw := c.build(t, r, c.key, carol, "m.room.message", nil,
			map[string]any{"msgtype": "m.text", "body": strings.Repeat("x", 60_000), "n": i}, r.last, r.depth+1)
		big, bigIDs = append(big, raw), append(bigIDs, eid)
		r.last, r.depth = eid, r.depth+1
	}
	res = c.sendTxn(t, a, big...)
	for _, eid := range bigIDs {
		if e, ok := res[eid]; !ok || e.Error != "" {
			t.Fatalf("large transaction: %s: %+v", eid, e)
		}
	}

	// Signed with a key that is not C's: refused, never stored.
	forger := federation.GenerateSigningKey()
	bad, badRaw := c.build(t, r, forger, carol, "m.room.message", nil,
		map[string]any{"msgtype": "m.text", "body": "forged"}, r.last, r.depth+1)
	res = c.sendTxn(t, a, badRaw)
	if e, ok := res[bad]; !ok || e.Error == "" {
		t.Fatalf("forged signature accepted: %+v", res)
	}
	if _, err := alice.GetEvent(ctx, roomID, bad); err == nil {
		t.Fatal("alice can read the event with the forged signature")
	}

	// Not allowed by the auth rules (C's user has power 0; power levels
	// need 100): rejected. Sent as a user of another server, signed by C
	// only: dropped (the sender's server must sign).
	sk := ""
	unauth, unauthRaw := c.build(t, r, c.key, carol, "m.room.power_levels", &sk,
		map[string]any{"users": map[string]int{carol.String(): 100}}, r.last, r.depth+1)
	spoofed, spoofedRaw := c.build(t, r, c.key, alice.UserID, "m.room.message", nil,
		map[string]any{"msgtype": "m.text", "body": "I am alice"}, r.last, r.depth+1)
	res = c.sendTxn(t, a, unauthRaw, spoofedRaw)
	if res[unauth].Error == "" || res[spoofed].Error == "" {
		t.Fatalf("unauthorised and spoofed PDUs: %+v", res)
	}
	for _, eid := range []id.EventID{unauth, spoofed} {
		if _, err := alice.GetEvent(ctx, roomID, eid); err == nil {
			t.Fatalf("alice can read the refused event %s", eid)
		}
	}
	// Nor does A serve the rejected event to other servers (/event, and
	// the state and auth chain at it: 404, as Synapse).
	fc := c.client()
	_, err = fc.GetEvent(ctx, a.Opts.ServerName, unauth)
	wantNotFound(t, "/event of a rejected event", err)
	_, err = fc.GetStateIDs(ctx, a.Opts.ServerName, roomID, unauth)
	wantNotFound(t, "/state_ids at a rejected event", err)
	_, err = fc.GetState(ctx, a.Opts.ServerName, roomID, unauth)
	wantNotFound(t, "/state at a rejected event", err)
	_, err = fc.GetEventAuthChain(ctx, a.Opts.ServerName, roomID, unauth)
	wantNotFound(t, "/event_auth of a rejected event", err)
	// An event of C's citing the rejected one is taken (the spec allows
	// it); backfill and get_missing_events from it walk past the rejected
	// event without returning it.
	beyond, beyondRaw := c.build(t, r, c.key, carol, "m.room.message", nil,
		map[string]any{"msgtype": "m.text", "body": "beyond"}, unauth, r.depth+2)
	if res := c.sendTxn(t, a, beyondRaw); res[beyond].Error != "" {
		t.Fatalf("an event citing a rejected one: %+v", res)
	}
	past, err := fc.Backfill(ctx, &federation.ReqBackfill{ServerName: a.Opts.ServerName, RoomID: roomID, Limit: 10,
		BackfillFrom: []id.EventID{beyond}})
	if err != nil {
		t.Fatal(err)
	}
	if got := eventIDs(t, r.rv, past.PDUs); !slices.Contains(got, beyond) || !slices.Contains(got, r.last) ||
		slices.Contains(got, unauth) {
		t.Fatalf("backfill from past a rejected event: %v (rejected %s)", got, unauth)
	}
	gme, err := fc.GetMissingEvents(ctx, &federation.ReqGetMissingEvents{ServerName: a.Opts.ServerName, RoomID: roomID,
		EarliestEvents: []id.EventID{msg1}, LatestEvents: []id.EventID{beyond}, Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	if got := eventIDs(t, r.rv, gme.Events); !slices.Contains(got, r.last) || slices.Contains(got, unauth) {
		t.Fatalf("get_missing_events past a rejected event: %v (rejected %s)", got, unauth)
	}
	r.last, r.depth = beyond, r.depth+2

	// Content changed after hashing and signing: the redacted copy is kept.
	tampered, tRaw := c.build(t, r, c.key, carol, "m.room.message", nil,
		map[string]any{"msgtype": "m.text", "body": "original"}, r.last, r.depth+1)
	var m map[string]any
	if err := json.Unmarshal(tRaw, &m); err != nil {
		t.Fatal(err)
	}
	m["content"] = map[string]any{"msgtype": "m.text", "body": "tampered"}
	tRaw, _ = json.Marshal(m)
	res = c.sendTxn(t, a, tRaw)
	if e, ok := res[tampered]; !ok || e.Error != "" {
		t.Fatalf("event with a bad content hash: %+v (want it redacted and accepted)", res)
	}
	if ev := waitForEvent(t, alice, roomID, tampered); gjson.GetBytes(ev.Content.VeryRaw, "body").Exists() {
		t.Fatalf("event with a bad content hash served with its content: %s", ev.Content.VeryRaw)
	}
	r.last, r.depth = tampered, r.depth+1

	// msg3 cites msg2, which C never sent: A asks C for it.
	msg2, raw2 := c.build(t, r, c.key, carol, "m.room.message", nil,
		map[string]any{"msgtype": "m.text", "body": "the gap"}, r.last, r.depth+1)
	msg3, raw3 := c.build(t, r, c.key, carol, "m.room.message", nil,
		map[string]any{"msgtype": "m.text", "body": "after the gap"}, msg2, r.depth+2)
	c.missing.Store(&[]json.RawMessage{raw2})
	res = c.sendTxn(t, a, raw3)
	if e, ok := res[msg3]; !ok || e.Error != "" || c.missingAsked.Load() == 0 {
		t.Fatalf("event with a missing prev event: %+v (get_missing_events asked %d times)", res, c.missingAsked.Load())
	}
	waitForEvent(t, alice, roomID, msg3)
	if ev, err := alice.GetEvent(ctx, roomID, msg2); err != nil || gjson.GetBytes(ev.Content.VeryRaw, "body").Str != "the gap" {
		t.Fatalf("the fetched prev event: %+v, %v", ev, err)
	}

	// Typing and a read receipt of C's user reach alice; C cannot speak
	// for a user of another server.
	c.sendEDUs(t, a,
		map[string]any{"edu_type": "m.typing", "content": map[string]any{"room_id": roomID, "user_id": carol, "typing": true}},
		map[string]any{"edu_type": "m.typing", "content": map[string]any{"room_id": roomID, "user_id": alice.UserID, "typing": true}})
	waitForSync(t, alice, "carol typing", func(resp *mautrix.RespSync) bool {
		if ephemeral(resp, roomID, "m.typing", "user_ids", alice.UserID.String()) {
			t.Fatal("C made alice type")
		}
		return ephemeral(resp, roomID, "m.typing", "user_ids", carol.String())
	})
	c.sendEDUs(t, a, map[string]any{"edu_type": "m.receipt", "content": map[string]any{roomID.String(): map[string]any{
		"m.read": map[string]any{carol.String(): map[string]any{"event_ids": []id.EventID{msg3}, "data": map[string]any{"ts": 1}}}}}})
	waitForSync(t, alice, "carol's receipt", func(resp *mautrix.RespSync) bool {
		return ephemeral(resp, roomID, "m.receipt", gjson.Escape(msg3.String())+".m\\.read."+gjson.Escape(carol.String()), "")
	})

	// A repeated transaction ID is answered from the first, whatever it carries.
	again, againRaw := c.build(t, r, c.key, carol, "m.room.message", nil,
		map[string]any{"msgtype": "m.text", "body": "once"}, msg3, r.depth+3)
	other, otherRaw := c.build(t, r, c.key, carol, "m.room.message", nil,
		map[string]any{"msgtype": "m.text", "body": "never"}, msg3, r.depth+3)
	txn := &federation.ReqSendTransaction{Destination: a.Opts.ServerName, TxnID: "repeated", Origin: c.name,
		OriginServerTS: jsontime.UM(time.Now()), PDUs: []json.RawMessage{againRaw}}
	first, err := c.client().SendTransaction(ctx, txn)
	if err != nil {
		t.Fatal(err)
	}
	txn.PDUs = []json.RawMessage{otherRaw}
	second, err := c.client().SendTransaction(ctx, txn)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := second.PDUs[again]; !ok || len(first.PDUs) != 1 || len(second.PDUs) != 1 {
		t.Fatalf("repeated transaction: first %+v, second %+v", first.PDUs, second.PDUs)
	}
	if _, err := alice.GetEvent(ctx, roomID, other); err == nil {
		t.Fatal("the PDU of a repeated transaction ID was processed")
	}

	// C reads the room.
	cli := c.client()
	ev, err := cli.GetEvent(ctx, a.Opts.ServerName, msg1)
	if err != nil || len(ev.PDUs) != 1 || gjson.GetBytes(ev.PDUs[0], "content.body").Str != "hello from C" {
		t.Fatalf("/event: %+v, %v", ev, err)
	}
	ids, err := cli.GetStateIDs(ctx, a.Opts.ServerName, roomID, msg1)
	if err != nil || !slices.Contains(ids.PDUs, r.state[pdu.StateKey{Type: "m.room.create"}]) ||
		!slices.Contains(ids.PDUs, r.state[pdu.StateKey{Type: "m.room.member", StateKey: carol.String()}]) ||
		len(ids.AuthChain) == 0 {
		t.Fatalf("/state_ids at msg1: %+v, %v", ids, err)
	}
	bf, err := cli.Backfill(ctx, &federation.ReqBackfill{ServerName: a.Opts.ServerName, RoomID: roomID, Limit: 3,
		BackfillFrom: []id.EventID{msg3}})
	if err != nil || len(bf.PDUs) != 3 {
		t.Fatalf("/backfill: %+v, %v", bf, err)
	}
	for i, want := range []id.EventID{msg3, msg2, tampered} {
		var p pdu.PDU
		if err := json.Unmarshal(bf.PDUs[i], &p); err != nil {
			t.Fatal(err)
		}
		if eid, _ := p.GetEventID(r.rv); eid != want {
			t.Fatalf("/backfill event %d is %s, want %s", i, eid, want)
		}
	}

	// D is in no room of A: every read is refused.
	d := newFakeServer(t)
	room := url.PathEscape(roomID.String())
	for _, uri := range []string{
		"/_matrix/federation/v1/event/" + url.PathEscape(msg1.String()),
		"/_matrix/federation/v1/state_ids/" + room + "?event_id=" + url.QueryEscape(msg1.String()),
		"/_matrix/federation/v1/state/" + room + "?event_id=" + url.QueryEscape(msg1.String()),
		"/_matrix/federation/v1/event_auth/" + room + "/" + url.PathEscape(msg1.String()),
		"/_matrix/federation/v1/backfill/" + room + "?v=" + url.QueryEscape(msg3.String()) + "&limit=10",
	} {
		status, body := do(t, http.MethodGet, "https://"+a.FederationAddr+uri,
			d.authHeader(t, d.key, http.MethodGet, uri, a.Opts.ServerName), nil)
		wantError(t, "D reads "+uri, status, body, http.StatusForbidden, "M_FORBIDDEN")
	}
	_, err = d.client().GetMissingEvents(ctx, &federation.ReqGetMissingEvents{ServerName: a.Opts.ServerName, RoomID: roomID,
		EarliestEvents: []id.EventID{msg1}, LatestEvents: []id.EventID{msg3}, Limit: 10})
	if httpErr, ok := err.(mautrix.HTTPError); !ok || httpErr.RespError == nil || httpErr.RespError.ErrCode != "M_FORBIDDEN" {
		t.Fatalf("D's get_missing_events: %v", err)
	}
	// C, in the room, gets the events between.
	gm, err := c.client().GetMissingEvents(ctx, &federation.ReqGetMissingEvents{ServerName: a.Opts.ServerName, RoomID: roomID,
		EarliestEvents: []id.EventID{tampered}, LatestEvents: []id.EventID{msg3}, Limit: 10})
	if err != nil || len(gm.Events) != 1 || gjson.GetBytes(gm.Events[0], "content.body").Str != "the gap" {
		t.Fatalf("C's get_missing_events: %+v, %v", gm, err)
	}
}

// send_join v2 with omit_members leaves the membership events out of the
// state (but for a few members of a room without a name, by which it is
// then named) and says which servers are in the room; v1 answers in its
// old [200, {…}] shape. The join is visible to A's users either way.
func TestSendJoinVariants(t *testing.T) {
	a := start(t)
	ctx := t.Context()
	alice := register(t, a, "alice")
	named, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat", Name: "Named"})
	if err != nil {
		t.Fatal(err)
	}
	unnamed, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat"})
	if err != nil {
		t.Fatal(err)
	}
	c := newFakeServer(t)
	members := func(sj *federation.RespSendJoin) (n int) {
		for _, raw := range sj.State {
			if gjson.GetBytes(raw, "type").Str == "m.room.member" {
				n++
			}
		}
		return n
	}

	r, sj := c.joinVia(t, a, named.RoomID, id.NewUserID("omitted", c.name), "omit")
	if !sj.MembersOmitted || !slices.Equal(sj.ServersInRoom, []string{a.Opts.ServerName}) || members(sj) != 0 {
		t.Fatalf("omit_members in a named room: omitted %v, servers %v, %d member events", sj.MembersOmitted,
			sj.ServersInRoom, members(sj))
	}
	waitForEvent(t, alice, named.RoomID, r.last)

	_, sj = c.joinVia(t, a, unnamed.RoomID, id.NewUserID("omitted", c.name), "omit")
	if !sj.MembersOmitted || members(sj) != 1 {
		t.Fatalf("omit_members in a room without a name: omitted %v, %d member events, want alice's", sj.MembersOmitted, members(sj))
	}

	_, sj = c.joinVia(t, a, named.RoomID, id.NewUserID("full", c.name), "v2")
	if sj.MembersOmitted || members(sj) != 2 {
		t.Fatalf("send_join v2 without omit_members: %d member events, want alice's and the first of C", members(sj))
	}
	r, sj = c.joinVia(t, a, named.RoomID, id.NewUserID("old", c.name), "v1")
	if members(sj) != 3 {
		t.Fatalf("send_join v1: %d member events", members(sj))
	}
	waitForEvent(t, alice, named.RoomID, r.last)

	// A redacted event is served redacted, with its signatures.
	msg, raw := c.build(t, r, c.key, id.NewUserID("old", c.name), "m.room.message", nil,
		map[string]any{"msgtype": "m.text", "body": "regret"}, r.last, r.depth+1)
	if res := c.sendTxn(t, a, raw); res[msg].Error != "" {
		t.Fatalf("send: %+v", res)
	}
	waitForEvent(t, alice, named.RoomID, msg)
	if _, err := alice.RedactEvent(ctx, named.RoomID, msg); err != nil {
		t.Fatal(err)
	}
	ev, err := c.client().GetEvent(ctx, a.Opts.ServerName, msg)
	if err != nil || len(ev.PDUs) != 1 || gjson.GetBytes(ev.PDUs[0], "content.body").Exists() ||
		!gjson.GetBytes(ev.PDUs[0], "signatures").Exists() {
		t.Fatalf("redacted event over federation: %+v, %v", ev, err)
	}
}

// Once the room's server ACL denies C (by host, whatever the port), C's
// PDUs are refused one by one and its reads and joins of the room are 403.
func TestServerACLInbound(t *testing.T) {
	a := start(t)
	ctx := t.Context()
	alice := register(t, a, "alice")
	created, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat", Name: "ACL"})
	if err != nil {
		t.Fatal(err)
	}
	roomID := created.RoomID
	c := newFakeServer(t)
	carol := id.NewUserID("carol", c.name)
	r := c.join(t, a, roomID, carol)
	before, raw := c.build(t, r, c.key, carol, "m.room.message", nil, map[string]any{"msgtype": "m.text", "body": "before"},
		r.last, r.depth+1)
	if res := c.sendTxn(t, a, raw); res[before].Error != "" {
		t.Fatalf("before the ACL: %+v", res)
	}
	r.last, r.depth = before, r.depth+1

	if _, err := alice.SendStateEvent(ctx, roomID, event.StateServerACL, "",
		map[string]any{"allow": []string{"*"}, "deny": []string{"127.0.0.1"}}); err != nil {
		t.Fatal(err)
	}
	after, raw := c.build(t, r, c.key, carol, "m.room.message", nil, map[string]any{"msgtype": "m.text", "body": "after"},
		r.last, r.depth+1)
	if res := c.sendTxn(t, a, raw); res[after].Error == "" {
		t.Fatalf("PDU of a server the ACL denies: %+v", res)
	}
	if _, err := alice.GetEvent(ctx, roomID, after); err == nil {
		t.Fatal("the denied server's PDU was stored")
	}
	_, err = c.client().GetStateIDs(ctx, a.Opts.ServerName, roomID, before)
	if httpErr, ok := err.(mautrix.HTTPError); !ok || httpErr.RespError == nil || httpErr.RespError.ErrCode != "M_FORBIDDEN" {
		t.Fatalf("state_ids of a denied server: %v", err)
	}
	_, err = c.client().MakeJoin(ctx, &federation.ReqMakeJoin{RoomID: roomID, UserID: id.NewUserID("other", c.name),
		Via: a.Opts.ServerName, SupportedVersions: []id.RoomVersion{r.rv}})
	if httpErr, ok := err.(mautrix.HTTPError); !ok || httpErr.RespError == nil || httpErr.RespError.ErrCode != "M_FORBIDDEN" {
		t.Fatalf("make_join of a denied server: %v", err)
	}
	_, err = c.client().MakeLeave(ctx, &federation.ReqMakeLeave{RoomID: roomID, UserID: carol, Via: a.Opts.ServerName})
	wantErrCode(t, "make_leave of a denied server", err, "M_FORBIDDEN")
	_, err = c.client().MakeKnock(ctx, &federation.ReqMakeKnock{RoomID: roomID, UserID: id.NewUserID("other", c.name),
		Via: a.Opts.ServerName, SupportedVersions: []id.RoomVersion{r.rv}})
	wantErrCode(t, "make_knock of a denied server", err, "M_FORBIDDEN")
	_, err = c.client().TimestampToEvent(ctx, a.Opts.ServerName, roomID, time.Now(), mautrix.DirectionBackward)
	wantErrCode(t, "timestamp_to_event of a denied server", err, "M_FORBIDDEN")
}

// make_join for a room A does not know is 404; for an invite-only room,
// 403.
func TestMakeJoinRefusals(t *testing.T) {
	a := start(t)
	ctx := t.Context()
	alice := register(t, a, "alice")
	private, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "private_chat"})
	if err != nil {
		t.Fatal(err)
	}
	c := newFakeServer(t)
	for roomID, want := range map[id.RoomID]string{
		private.RoomID: "M_FORBIDDEN",
		id.RoomID("!nowhere:" + a.Opts.ServerName): "M_NOT_FOUND",
	} {
		_, err := c.client().MakeJoin(ctx, &federation.ReqMakeJoin{RoomID: roomID, UserID: id.NewUserID("carol", c.name),
			Via: a.Opts.ServerName, SupportedVersions: []id.RoomVersion{id.RoomV10, id.RoomV11, id.RoomV12}})
		if httpErr, ok := err.(mautrix.HTTPError); !ok || httpErr.RespError == nil || httpErr.RespError.ErrCode != want {
			t.Fatalf("make_join of %s: %v, want %s", roomID, err, want)
		}
	}
}

// A server sees an event as its users would (history visibility in the
// state at the event): in a "joined" room, not what was sent before it
// joined; in a "shared" room, all of it once it is in.
func TestHistoryVisibilityForServers(t *testing.T) {
	a := start(t)
	ctx := t.Context()
	alice := register(t, a, "alice")
	c := newFakeServer(t)
	for visibility, visible := range map[string]bool{"joined": false, "shared": true} {
		created, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat", InitialState: []*event.Event{{
			Type: event.StateHistoryVisibility, Content: event.Content{Raw: map[string]any{"history_visibility": visibility}}}}})
		if err != nil {
			t.Fatal(err)
		}
		early, err := alice.SendText(ctx, created.RoomID, "before C")
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.client().GetEvent(ctx, a.Opts.ServerName, early.EventID)
		if httpErr, ok := err.(mautrix.HTTPError); !ok || httpErr.RespError == nil || httpErr.RespError.ErrCode != "M_FORBIDDEN" {
			t.Fatalf("%s: /event before C joined: %v", visibility, err)
		}
		r := c.join(t, a, created.RoomID, id.NewUserID("carol", c.name))
		if _, err := c.client().GetEvent(ctx, a.Opts.ServerName, r.last); err != nil {
			t.Fatalf("%s: C reads its own join: %v", visibility, err)
		}
		ev, err := c.client().GetEvent(ctx, a.Opts.ServerName, early.EventID)
		if visible && (err != nil || len(ev.PDUs) != 1) {
			t.Fatalf("%s: /event of history after C joined: %+v, %v", visibility, ev, err)
		}
		if httpErr, ok := err.(mautrix.HTTPError); !visible && (!ok || httpErr.RespError == nil || httpErr.RespError.ErrCode != "M_FORBIDDEN") {
			t.Fatalf("%s: /event of history after C joined: %v, want M_FORBIDDEN", visibility, err)
		}
		// Backfill from C's join walks past what C may not see without
		// returning it.
		bf, err := c.client().Backfill(ctx, &federation.ReqBackfill{ServerName: a.Opts.ServerName, RoomID: created.RoomID,
			Limit: 50, BackfillFrom: []id.EventID{r.last}})
		if err != nil {
			t.Fatalf("%s: backfill: %v", visibility, err)
		}
		got := slices.ContainsFunc(bf.PDUs, func(raw json.RawMessage) bool {
			return gjson.GetBytes(raw, "content.body").Str == "before C"
		})
		if got != visible || len(bf.PDUs) == 0 {
			t.Fatalf("%s: backfill has the early message: %v (%d events), want %v", visibility, got, len(bf.PDUs), visible)
		}
	}
}

// wantNotFound fails unless err is a 404 M_NOT_FOUND.
func wantNotFound(t *testing.T, what string, err error) {
	t.Helper()
	var httpErr mautrix.HTTPError
	if !errors.As(err, &httpErr) || httpErr.Response == nil || httpErr.Response.StatusCode != http.StatusNotFound ||
		httpErr.RespError == nil || httpErr.RespError.ErrCode != "M_NOT_FOUND" {
		t.Fatalf("%s: %v, want 404 M_NOT_FOUND", what, err)
	}
}
