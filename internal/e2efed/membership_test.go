package e2efed

import (
	"encoding/json"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/tidwall/gjson"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/federation"
	"maunium.net/go/mautrix/federation/pdu"
	"maunium.net/go/mautrix/id"

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
