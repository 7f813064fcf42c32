package e2efed

import (
	"encoding/json"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/tidwall/gjson"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/federation"
	"maunium.net/go/mautrix/federation/pdu"
	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/internal/pgtest"
	"github.com/tributary-hs/tributary/internal/testserver"
)

// wantErrCode fails unless err is a Matrix error with the code.
func wantErrCode(t *testing.T, what string, err error, code string) {
	t.Helper()
	if httpErr, ok := err.(mautrix.HTTPError); !ok || httpErr.RespError == nil || httpErr.RespError.ErrCode != code {
		t.Fatalf("%s: %v, want %s", what, err, code)
	}
}

// signTemplate signs a make_* template as C, with a fresh timestamp.
func (f *fakeServer) signTemplate(t *testing.T, rv id.RoomVersion, tmpl json.RawMessage) (id.EventID, json.RawMessage) {
	t.Helper()
	var p pdu.PDU
	if err := json.Unmarshal(tmpl, &p); err != nil {
		t.Fatalf("template %s: %v", tmpl, err)
	}
	p.OriginServerTS = time.Now().UnixMilli()
	return f.sign(t, rv, &p, f.key)
}

// leave makes C's user leave with make_leave and send_leave v2 or v1.
func (f *fakeServer) leave(t *testing.T, a *testserver.Server, roomID id.RoomID, user id.UserID, v1 bool) id.EventID {
	t.Helper()
	ctx := t.Context()
	ml, err := f.client().MakeLeave(ctx, &federation.ReqMakeLeave{RoomID: roomID, UserID: user, Via: a.Opts.ServerName})
	if err != nil {
		t.Fatalf("make_leave: %v", err)
	}
	eid, raw := f.signTemplate(t, ml.RoomVersion, ml.Event)
	if v1 {
		var out []json.RawMessage
		_, _, err = f.client().MakeFullRequest(ctx, federation.RequestParams{ServerName: a.Opts.ServerName,
			Method: http.MethodPut, Path: federation.URLPath{"v1", "send_leave", roomID, eid}, Authenticate: true,
			RequestJSON: raw, ResponseJSON: &out})
		if err != nil || len(out) != 2 || string(out[0]) != "200" || string(out[1]) != "{}" {
			t.Fatalf("send_leave v1: %s, %v", out, err)
		}
	} else if err := f.client().SendLeave(ctx, &federation.ReqSendLeave{RoomID: roomID, EventID: eid, Event: raw,
		Via: a.Opts.ServerName}); err != nil {
		t.Fatalf("send_leave: %v", err)
	}
	return eid
}

// C's users leave a room on A with make_leave and send_leave (v2 and the
// old v1 shape); alice sees the leaves. make_leave for a user not in the
// room, or of another server, is 403; send_leave of a join, 400.
func TestRemoteLeave(t *testing.T) {
	a := start(t)
	ctx := t.Context()
	alice := register(t, a, "alice")
	created, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat", Name: "Leaving"})
	if err != nil {
		t.Fatal(err)
	}
	roomID := created.RoomID
	c := newFakeServer(t)
	carol, dave := id.NewUserID("carol", c.name), id.NewUserID("dave", c.name)

	_, err = c.client().MakeLeave(ctx, &federation.ReqMakeLeave{RoomID: roomID, UserID: carol, Via: a.Opts.ServerName})
	wantErrCode(t, "make_leave of a user not in the room", err, "M_FORBIDDEN")
	uri := "/_matrix/federation/v1/make_leave/" + url.PathEscape(roomID.String()) + "/" + url.PathEscape(alice.UserID.String())
	status, body := do(t, http.MethodGet, "https://"+a.FederationAddr+uri,
		c.authHeader(t, c.key, http.MethodGet, uri, a.Opts.ServerName), nil)
	wantError(t, "make_leave of A's user", status, body, http.StatusForbidden, "M_FORBIDDEN")
	_, err = c.client().MakeLeave(ctx, &federation.ReqMakeLeave{RoomID: id.RoomID("!nowhere:" + a.Opts.ServerName),
		UserID: carol, Via: a.Opts.ServerName})
	wantErrCode(t, "make_leave of an unknown room", err, "M_NOT_FOUND")

	r := c.join(t, a, roomID, carol)
	c.join(t, a, roomID, dave)
	// A join sent to send_leave is refused.
	_, joinAgain := c.build(t, r, c.key, carol, "m.room.member", ptr(carol.String()), map[string]any{"membership": "join"},
		r.last, r.depth+1)
	var p pdu.PDU
	_ = json.Unmarshal(joinAgain, &p)
	jid, _ := p.GetEventID(r.rv)
	err = c.client().SendLeave(ctx, &federation.ReqSendLeave{RoomID: roomID, EventID: jid, Event: joinAgain, Via: a.Opts.ServerName})
	wantErrCode(t, "send_leave of a join", err, "M_BAD_JSON")

	for _, u := range []struct {
		user id.UserID
		v1   bool
	}{{carol, false}, {dave, true}} {
		eid := c.leave(t, a, roomID, u.user, u.v1)
		ev := waitForEvent(t, alice, roomID, eid)
		if ev.Sender != u.user || gjson.GetBytes(ev.Content.VeryRaw, "membership").Str != "leave" {
			t.Fatalf("alice sees %+v", ev)
		}
	}
	members, err := alice.JoinedMembers(ctx, roomID)
	if err != nil || len(members.Joined) != 1 {
		t.Fatalf("members after the leaves: %+v, %v", members, err)
	}
}

func ptr[T any](v T) *T { return &v }

// remoteInvite builds, on C, a room of version rv with carol's create and
// join, and carol's invite of invitee; it returns the invite's ID and JSON.
func (f *fakeServer) remoteInvite(t *testing.T, rv id.RoomVersion, roomID id.RoomID, carol, invitee id.UserID,
	key *federation.SigningKey) (id.EventID, json.RawMessage) {
	t.Helper()
	now := time.Now().UnixMilli()
	empty := ""
	create := &pdu.PDU{Type: "m.room.create", StateKey: &empty, Sender: carol, RoomID: roomID, OriginServerTS: now, Depth: 1,
		Content: json.RawMessage(`{"room_version":"` + string(rv) + `"}`), PrevEvents: []id.EventID{}, AuthEvents: []id.EventID{}}
	createID, _ := f.sign(t, rv, create, f.key)
	sk := carol.String()
	join := &pdu.PDU{Type: "m.room.member", StateKey: &sk, Sender: carol, RoomID: roomID, OriginServerTS: now, Depth: 2,
		Content: json.RawMessage(`{"membership":"join"}`), PrevEvents: []id.EventID{createID}, AuthEvents: []id.EventID{createID}}
	joinID, _ := f.sign(t, rv, join, f.key)
	isk := invitee.String()
	inv := &pdu.PDU{Type: "m.room.member", StateKey: &isk, Sender: carol, RoomID: roomID, OriginServerTS: now, Depth: 3,
		Content: json.RawMessage(`{"membership":"invite"}`), PrevEvents: []id.EventID{joinID},
		AuthEvents: []id.EventID{createID, joinID}}
	return f.sign(t, rv, inv, key)
}

// C invites users of A to a room on C with /invite v2: A checks the event
// (signed by C, an invite of a user of A, a room version A supports),
// applies the invitee's invite settings, signs it and shows the invite in
// the invitee's /sync with the stripped state C sent.
func TestRemoteInvite(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) { remoteInvite(t, start(t)) })
	t.Run("postgres", func(t *testing.T) { remoteInvite(t, start(t, "--database-url", pgtest.URL(t))) })
}

func remoteInvite(t *testing.T, a *testserver.Server) {
	ctx := t.Context()
	alice := register(t, a, "alice")
	bob := register(t, a, "bob")
	dan := register(t, a, "dan")
	c := newFakeServer(t)
	carol := id.NewUserID("carol", c.name)
	roomID := id.RoomID("!elsewhere:" + c.name)
	stripped := []federation.PDU{
		json.RawMessage(`{"type":"m.room.create","state_key":"","sender":"` + carol.String() + `","content":{"room_version":"11"}}`),
		json.RawMessage(`{"type":"m.room.name","state_key":"","sender":"` + carol.String() + `","content":{"name":"Room on C"}}`),
	}
	invite := func(user id.UserID, rv id.RoomVersion, eid id.EventID, raw json.RawMessage) (*federation.RespSendInvite, error) {
		return c.client().SendInvite(ctx, &federation.ReqSendInvite{RoomID: roomID, UserID: user, EventID: eid, Event: raw,
			InviteRoomState: stripped, RoomVersion: rv})
	}

	// Refusals: bob blocks every invite, dan ignores carol.
	if err := bob.SetAccountData(ctx, "m.invite_permission_config", map[string]any{"default_action": "block"}); err != nil {
		t.Fatal(err)
	}
	if err := dan.SetAccountData(ctx, "m.ignored_user_list", map[string]any{"ignored_users": map[string]any{carol.String(): map[string]any{}}}); err != nil {
		t.Fatal(err)
	}
	eid, raw := c.remoteInvite(t, id.RoomV11, roomID, carol, bob.UserID, c.key)
	_, err := invite(bob.UserID, id.RoomV11, eid, raw)
	wantErrCode(t, "invite of a user who blocks invites", err, "M_INVITE_BLOCKED")
	eid, raw = c.remoteInvite(t, id.RoomV11, roomID, carol, dan.UserID, c.key)
	_, err = invite(dan.UserID, id.RoomV11, eid, raw)
	wantErrCode(t, "invite of a user who ignores the inviter", err, "M_FORBIDDEN")

	// Bad invites.
	eid, raw = c.remoteInvite(t, id.RoomV11, roomID, carol, alice.UserID, federation.GenerateSigningKey())
	_, err = invite(alice.UserID, id.RoomV11, eid, raw)
	wantErrCode(t, "invite with a forged signature", err, "M_INVALID_PARAM")
	eid, raw = c.remoteInvite(t, id.RoomV11, roomID, carol, id.NewUserID("zed", c.name), c.key)
	_, err = invite(alice.UserID, id.RoomV11, eid, raw)
	wantErrCode(t, "invite of a user of another server", err, "M_INVALID_PARAM")
	eid, raw = c.remoteInvite(t, id.RoomV11, roomID, id.NewUserID("mallory", "elsewhere.example"), alice.UserID, c.key)
	_, err = invite(alice.UserID, id.RoomV11, eid, raw)
	wantErrCode(t, "invite from a user of another server", err, "M_INVALID_PARAM")
	eid, raw = c.remoteInvite(t, id.RoomV11, roomID, carol, alice.UserID, c.key)
	_, err = invite(alice.UserID, "unknown-9", eid, raw)
	wantErrCode(t, "invite to a room version A does not support", err, "M_INCOMPATIBLE_ROOM_VERSION")
	_, err = invite(alice.UserID, id.RoomV11, "$other", raw)
	wantErrCode(t, "invite under another event ID", err, "M_BAD_JSON")
	uri := "/_matrix/federation/v2/invite/" + url.PathEscape(roomID.String()) + "/" + url.PathEscape(eid.String())
	for _, body := range []string{`{"event":"x","room_version":"11"}`, `{"event":{}}`, `{"event":[],"room_version":"11"}`} {
		status, resp := do(t, http.MethodPut, "https://"+a.FederationAddr+uri,
			c.authHeaderBody(t, http.MethodPut, uri, a.Opts.ServerName, []byte(body)), []byte(body))
		if status != http.StatusBadRequest || !gjson.GetBytes(resp, "errcode").Exists() {
			t.Fatalf("invite with body %s: %d %s", body, status, resp)
		}
	}

	// alice's invite: signed by A too, shown in her /sync.
	resp, err := invite(alice.UserID, id.RoomV11, eid, raw)
	if err != nil {
		t.Fatalf("invite: %v", err)
	}
	if !gjson.GetBytes(resp.Event, "signatures."+gjson.Escape(a.Opts.ServerName)).Exists() ||
		!gjson.GetBytes(resp.Event, "signatures."+gjson.Escape(c.name)).Exists() {
		t.Fatalf("the signed invite: %s", resp.Event)
	}
	var signed pdu.PDU
	if err := json.Unmarshal(resp.Event, &signed); err != nil {
		t.Fatal(err)
	}
	if got, _ := signed.GetEventID(id.RoomV11); got != eid {
		t.Fatalf("the signed invite's ID is %s, want %s", got, eid)
	}
	waitForSync(t, alice, "the invite from C", func(resp *mautrix.RespSync) bool {
		ir, ok := resp.Rooms.Invite[roomID]
		if !ok {
			return false
		}
		var name, member bool
		for _, ev := range ir.State.Events {
			name = name || (ev.Type.Type == "m.room.name" && gjson.GetBytes(ev.Content.VeryRaw, "name").Str == "Room on C")
			member = member || (ev.Type.Type == "m.room.member" && ev.GetStateKey() == alice.UserID.String() && ev.Sender == carol)
		}
		if !name || !member {
			t.Fatalf("invite_state: %+v", ir.State.Events)
		}
		return true
	})
	// The same invite again (a retry) is answered alike.
	if _, err := invite(alice.UserID, id.RoomV11, eid, raw); err != nil {
		t.Fatalf("the invite again: %v", err)
	}
	// alice cannot act in the room A is not in: a Matrix error, not a 500.
	_, err = alice.JoinRoomByID(ctx, roomID)
	if httpErr, ok := err.(mautrix.HTTPError); !ok || httpErr.RespError == nil || httpErr.Response.StatusCode >= 500 {
		t.Fatalf("alice joins the room on C: %v", err)
	}
}

// authHeaderBody is authHeader for a request with a JSON body.
func (f *fakeServer) authHeaderBody(t *testing.T, method, uri, destination string, body []byte) http.Header {
	t.Helper()
	sig, err := f.key.SignJSON(map[string]any{"method": method, "uri": uri, "origin": f.name, "destination": destination,
		"content": json.RawMessage(body)})
	if err != nil {
		t.Fatal(err)
	}
	h := http.Header{}
	h.Set("Authorization", federation.XMatrixAuth{Origin: f.name, Destination: destination, KeyID: f.key.ID,
		Signature: sig}.String())
	h.Set("Content-Type", "application/json")
	return h
}

// C's user knocks on a knock room on A with make_knock and send_knock:
// the answer's knock_room_state has the room's create event and name, and
// alice sees the knock. A public room, a room version without knocking,
// or no version in common are refused.
func TestRemoteKnock(t *testing.T) {
	a := start(t)
	ctx := t.Context()
	alice := register(t, a, "alice")
	knockRules := []*event.Event{{Type: event.StateJoinRules, Content: event.Content{Raw: map[string]any{"join_rule": "knock"}}}}
	knockRoom, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "private_chat", Name: "Knock here",
		RoomVersion: id.RoomV11, InitialState: knockRules})
	if err != nil {
		t.Fatal(err)
	}
	oldRoom, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "private_chat", RoomVersion: "6"})
	if err != nil {
		t.Fatal(err)
	}
	public, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat", RoomVersion: id.RoomV11})
	if err != nil {
		t.Fatal(err)
	}
	c := newFakeServer(t)
	carol := id.NewUserID("carol", c.name)
	makeKnock := func(roomID id.RoomID, versions ...id.RoomVersion) (*federation.RespMakeKnock, error) {
		return c.client().MakeKnock(ctx, &federation.ReqMakeKnock{RoomID: roomID, UserID: carol, Via: a.Opts.ServerName,
			SupportedVersions: versions})
	}
	_, err = makeKnock(oldRoom.RoomID, "6", id.RoomV11)
	wantErrCode(t, "make_knock in a room v6", err, "M_INCOMPATIBLE_ROOM_VERSION")
	_, err = makeKnock(knockRoom.RoomID, id.RoomV10)
	wantErrCode(t, "make_knock without the room's version", err, "M_INCOMPATIBLE_ROOM_VERSION")
	_, err = makeKnock(public.RoomID, id.RoomV11)
	wantErrCode(t, "make_knock in a public room", err, "M_FORBIDDEN")
	_, err = makeKnock(id.RoomID("!nowhere:"+a.Opts.ServerName), id.RoomV11)
	wantErrCode(t, "make_knock in an unknown room", err, "M_NOT_FOUND")
	uri := "/_matrix/federation/v1/make_knock/" + url.PathEscape(knockRoom.RoomID.String()) + "/" + url.PathEscape(carol.String())
	status, body := do(t, http.MethodGet, "https://"+a.FederationAddr+uri,
		c.authHeader(t, c.key, http.MethodGet, uri, a.Opts.ServerName), nil)
	wantError(t, "make_knock without ver", status, body, http.StatusBadRequest, "M_MISSING_PARAM")

	mk, err := makeKnock(knockRoom.RoomID, id.RoomV10, id.RoomV11)
	if err != nil || mk.RoomVersion != id.RoomV11 || gjson.GetBytes(mk.Event, "content.membership").Str != "knock" {
		t.Fatalf("make_knock: %+v, %v", mk, err)
	}
	eid, raw := c.signTemplate(t, mk.RoomVersion, mk.Event)
	// The knock under another event ID is refused.
	_, err = c.client().SendKnock(ctx, &federation.ReqSendKnock{RoomID: knockRoom.RoomID, EventID: "$other", Event: raw,
		Via: a.Opts.ServerName})
	wantErrCode(t, "send_knock under another event ID", err, "M_BAD_JSON")
	sk, err := c.client().SendKnock(ctx, &federation.ReqSendKnock{RoomID: knockRoom.RoomID, EventID: eid, Event: raw,
		Via: a.Opts.ServerName})
	if err != nil {
		t.Fatalf("send_knock: %v", err)
	}
	types := map[string]bool{}
	for _, st := range sk.KnockRoomState {
		types[gjson.GetBytes(st, "type").Str] = true
		if gjson.GetBytes(st, "type").Str == "m.room.name" && gjson.GetBytes(st, "content.name").Str != "Knock here" {
			t.Fatalf("knock_room_state's name: %s", st)
		}
		if !gjson.GetBytes(st, "signatures").Exists() {
			t.Fatalf("knock_room_state holds an event that is not a PDU: %s", st)
		}
	}
	if !types["m.room.create"] || !types["m.room.name"] || !types["m.room.join_rules"] || types["m.room.member"] {
		t.Fatalf("knock_room_state has %v", types)
	}
	ev := waitForEvent(t, alice, knockRoom.RoomID, eid)
	if ev.Sender != carol || gjson.GetBytes(ev.Content.VeryRaw, "membership").Str != "knock" {
		t.Fatalf("alice sees %+v", ev)
	}
}

// C, in a room on A, finds events by time with timestamp_to_event; D,
// in no room of A, is refused; bad parameters are 400.
func TestRemoteTimestampToEvent(t *testing.T) {
	a := start(t)
	ctx := t.Context()
	alice := register(t, a, "alice")
	created, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat", Name: "Timed"})
	if err != nil {
		t.Fatal(err)
	}
	roomID := created.RoomID
	c := newFakeServer(t)
	r := c.join(t, a, roomID, id.NewUserID("carol", c.name))
	waitForEvent(t, alice, roomID, r.last)
	sent, err := alice.SendText(ctx, roomID, "latest")
	if err != nil {
		t.Fatal(err)
	}
	ev, err := alice.GetEvent(ctx, roomID, sent.EventID)
	if err != nil {
		t.Fatal(err)
	}
	cli := c.client()
	got, err := cli.TimestampToEvent(ctx, a.Opts.ServerName, roomID, time.UnixMilli(ev.Timestamp+60_000), mautrix.DirectionBackward)
	if err != nil || got.EventID != sent.EventID || got.Timestamp.UnixMilli() != ev.Timestamp {
		t.Fatalf("timestamp_to_event backward from after the last message: %+v, %v", got, err)
	}
	got, err = cli.TimestampToEvent(ctx, a.Opts.ServerName, roomID, time.UnixMilli(0), mautrix.DirectionForward)
	if err != nil {
		t.Fatalf("timestamp_to_event forward from 0: %v", err)
	}
	first, err := alice.GetEvent(ctx, roomID, got.EventID)
	if err != nil || first.Type.Type != "m.room.create" {
		t.Fatalf("timestamp_to_event forward from 0 is %+v, %v; want the create event", first, err)
	}
	_, err = cli.TimestampToEvent(ctx, a.Opts.ServerName, roomID, time.UnixMilli(ev.Timestamp+60_000), mautrix.DirectionForward)
	wantErrCode(t, "timestamp_to_event forward from the future", err, "M_NOT_FOUND")
	_, err = newFakeServer(t).client().TimestampToEvent(ctx, a.Opts.ServerName, roomID, time.Now(), mautrix.DirectionBackward)
	wantErrCode(t, "timestamp_to_event of a server not in the room", err, "M_FORBIDDEN")

	room := "/_matrix/federation/v1/timestamp_to_event/" + url.PathEscape(roomID.String())
	for uri, code := range map[string]string{
		room + "?dir=b":       "M_MISSING_PARAM",
		room + "?ts=x&dir=b":  "M_INVALID_PARAM",
		room + "?ts=1&dir=up": "M_INVALID_PARAM",
		room + "?ts=1":        "M_INVALID_PARAM",
	} {
		status, body := do(t, http.MethodGet, "https://"+a.FederationAddr+uri,
			c.authHeader(t, c.key, http.MethodGet, uri, a.Opts.ServerName), nil)
		wantError(t, uri, status, body, http.StatusBadRequest, code)
	}
}

// The v1 invite API (rooms v1 and v2): the event is the body, with the
// stripped state in its unsigned section; the answer is [200, {"event"}].
func TestRemoteInviteV1(t *testing.T) {
	a := start(t)
	ctx := t.Context()
	alice := register(t, a, "alice")
	c := newFakeServer(t)
	carol := id.NewUserID("carol", c.name)
	roomID := id.RoomID("!old:" + c.name)
	sk := alice.UserID.String()
	eid := id.EventID("$invite1:" + c.name)
	ev := &pdu.RoomV1PDU{Type: "m.room.member", StateKey: &sk, Sender: carol, RoomID: roomID, EventID: eid,
		OriginServerTS: time.Now().UnixMilli(), Depth: 3, Content: json.RawMessage(`{"membership":"invite"}`),
		PrevEvents: []pdu.V1EventReference{{ID: id.EventID("$join1:" + c.name), Hashes: pdu.Hashes{SHA256: make([]byte, 32)}}},
		AuthEvents: []pdu.V1EventReference{{ID: id.EventID("$create1:" + c.name), Hashes: pdu.Hashes{SHA256: make([]byte, 32)}}},
		Unsigned: json.RawMessage(`{"invite_room_state":[{"type":"m.room.name","state_key":"","sender":"` + carol.String() +
			`","content":{"name":"Old room"}}]}`)}
	if err := ev.FillContentHash(); err != nil {
		t.Fatal(err)
	}
	if err := ev.Sign(id.RoomV1, c.name, c.key.ID, c.key.Priv); err != nil {
		t.Fatal(err)
	}
	var out []json.RawMessage
	_, _, err := c.client().MakeFullRequest(ctx, federation.RequestParams{ServerName: a.Opts.ServerName,
		Method: http.MethodPut, Path: federation.URLPath{"v1", "invite", roomID, eid}, Authenticate: true,
		RequestJSON: ev, ResponseJSON: &out})
	if err != nil || len(out) != 2 || string(out[0]) != "200" ||
		!gjson.GetBytes(out[1], "event.signatures."+gjson.Escape(a.Opts.ServerName)).Exists() ||
		gjson.GetBytes(out[1], "event.event_id").Str != eid.String() {
		t.Fatalf("invite v1: %s, %v", out, err)
	}
	waitForSync(t, alice, "the v1 invite", func(resp *mautrix.RespSync) bool {
		ir, ok := resp.Rooms.Invite[roomID]
		if !ok {
			return false
		}
		for _, ev := range ir.State.Events {
			if ev.Type.Type == "m.room.name" && gjson.GetBytes(ev.Content.VeryRaw, "name").Str == "Old room" {
				return true
			}
		}
		t.Fatalf("invite_state: %+v", ir.State.Events)
		return false
	})
}
