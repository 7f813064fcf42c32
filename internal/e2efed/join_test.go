package e2efed

import (
	"encoding/json"
	"errors"
	"net/http"
	"testing"

	"github.com/tidwall/gjson"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/federation/pdu"
	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/internal/pgtest"
	"github.com/tributary-hs/tributary/internal/testserver"
)

// joinedState waits for user's /sync to show the room joined and returns
// its state (the state section and the timeline's state events) by type
// and state key, and its timeline.
func joinedState(t *testing.T, cli *mautrix.Client, roomID id.RoomID) (map[[2]string]*event.Event, []*event.Event) {
	t.Helper()
	st := map[[2]string]*event.Event{}
	var timeline []*event.Event
	waitForSync(t, cli, "the room "+roomID.String()+" joined", func(resp *mautrix.RespSync) bool {
		jr, ok := resp.Rooms.Join[roomID]
		if !ok {
			return false
		}
		for _, ev := range jr.State.Events {
			st[[2]string{ev.Type.Type, ev.GetStateKey()}] = ev
		}
		for _, ev := range jr.Timeline.Events {
			if ev.StateKey != nil {
				st[[2]string{ev.Type.Type, ev.GetStateKey()}] = ev
			}
		}
		timeline = jr.Timeline.Events
		return true
	})
	return st, timeline
}

// A user of A joins rooms hosted on C: by room ID (C found from the ID),
// and by an alias of C (resolved with /query/directory). A makes the join
// from C's template, signs it, sends it with send_join v2, checks C's
// answer and stores the room: the user sees its state in /sync, its
// members, and what C sends into it afterwards. The join C received is
// signed by A.
func TestJoinRemoteRoom(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) { joinRemoteRoom(t, start(t)) })
	t.Run("postgres", func(t *testing.T) { joinRemoteRoom(t, start(t, "--database-url", pgtest.URL(t))) })
}

func joinRemoteRoom(t *testing.T, a *testserver.Server) {
	ctx := t.Context()
	alice := register(t, a, "alice")
	c := newFakeServer(t)
	h := c.host(t)
	carol := id.NewUserID("carol", c.name)
	empty := ""
	byID := h.createRoom(id.RoomV11, carol, "public", "shared", func(r *hostedRoom) {
		h.add(r, carol, "m.room.name", &empty, map[string]any{"name": "Room on C"})
		h.add(r, carol, "m.room.message", nil, map[string]any{"msgtype": "m.text", "body": "before alice"})
	})

	resp, err := alice.JoinRoomByID(ctx, byID.roomID)
	if err != nil {
		t.Fatalf("join by room ID: %v", err)
	}
	if resp.RoomID != byID.roomID {
		t.Fatalf("joined %s", resp.RoomID)
	}
	st, timeline := joinedState(t, alice, byID.roomID)
	if name := st[[2]string{"m.room.name", ""}]; name == nil || gjson.GetBytes(name.Content.VeryRaw, "name").Str != "Room on C" {
		t.Fatalf("state of the joined room has no name: %v", keysOf(st))
	}
	for _, k := range [][2]string{{"m.room.create", ""}, {"m.room.power_levels", ""}, {"m.room.member", carol.String()},
		{"m.room.member", alice.UserID.String()}} {
		if st[k] == nil {
			t.Fatalf("state of the joined room has no %v: %v", k, keysOf(st))
		}
	}
	if len(timeline) == 0 || timeline[len(timeline)-1].Type != event.StateMember ||
		timeline[len(timeline)-1].GetStateKey() != alice.UserID.String() {
		t.Fatalf("timeline does not end with alice's join: %v", timeline)
	}
	for _, ev := range timeline {
		if ev.Type != event.StateMember {
			t.Fatalf("the state C sent shows in the timeline: %s %s", ev.Type.Type, ev.ID)
		}
	}
	// The join C received: alice's, signed by A, with A's event ID.
	h.mu.Lock()
	joins := h.received["send_join"]
	h.mu.Unlock()
	if len(joins) != 1 {
		t.Fatalf("C received %d joins", len(joins))
	}
	var join pdu.PDU
	if err := json.Unmarshal(joins[0], &join); err != nil {
		t.Fatal(err)
	}
	if join.Sender != alice.UserID || join.Signatures[a.Opts.ServerName] == nil {
		t.Fatalf("the join C received: %s", joins[0])
	}
	members, err := alice.JoinedMembers(ctx, byID.roomID)
	if err != nil || len(members.Joined) != 2 {
		t.Fatalf("members: %+v, %v", members, err)
	}

	// What C sends next reaches alice.
	h.mu.Lock()
	msgID := h.add(byID, carol, "m.room.message", nil, map[string]any{"msgtype": "m.text", "body": "welcome alice"})
	raw := byID.raw[msgID]
	h.mu.Unlock()
	if res := c.sendTxn(t, a, raw); res[msgID].Error != "" {
		t.Fatalf("C's message: %+v", res)
	}
	got := waitForEvent(t, alice, byID.roomID, msgID)
	if gjson.GetBytes(got.Content.VeryRaw, "body").Str != "welcome alice" {
		t.Fatalf("alice sees %s", got.Content.VeryRaw)
	}
	// alice answers: her event follows C's.
	sent, err := alice.SendText(ctx, byID.roomID, "thanks")
	if err != nil {
		t.Fatalf("alice sends in the joined room: %v", err)
	}
	ev, err := alice.GetEvent(ctx, byID.roomID, sent.EventID)
	if err != nil || ev.Sender != alice.UserID {
		t.Fatalf("alice's message: %+v, %v", ev, err)
	}

	// alice leaves (an event of the room like any other) and comes back:
	// A is no longer in the room, so the join goes through C again, this
	// time with send_join v1 (C has no v2).
	if _, err := alice.LeaveRoom(ctx, byID.roomID); err != nil {
		t.Fatalf("alice leaves: %v", err)
	}
	h.mu.Lock()
	h.v1Only = true
	h.mu.Unlock()
	if _, err := alice.JoinRoomByID(ctx, byID.roomID); err != nil {
		t.Fatalf("alice comes back: %v", err)
	}
	h.mu.Lock()
	h.v1Only = false
	rejoins := len(h.received["send_join"])
	h.mu.Unlock()
	if rejoins != 2 {
		t.Fatalf("C received %d joins, want 2", rejoins)
	}
	if members, err := alice.JoinedMembers(ctx, byID.roomID); err != nil || len(members.Joined) != 2 {
		t.Fatalf("members after coming back: %+v, %v", members, err)
	}

	// By alias, in a room v12 (whose ID names no server).
	aliased := h.createRoom(id.RoomV12, carol, "public", "shared", func(r *hostedRoom) {
		h.add(r, carol, "m.room.topic", &empty, map[string]any{"topic": "aliased"})
	})
	alias := id.RoomAlias("#lobby:" + c.name)
	h.mu.Lock()
	h.aliases[alias] = aliased.roomID
	h.mu.Unlock()
	dir, err := alice.ResolveAlias(ctx, alias)
	if err != nil || dir.RoomID != aliased.roomID {
		t.Fatalf("alias lookup over federation: %+v, %v", dir, err)
	}
	resp, err = alice.JoinRoom(ctx, alias.String(), nil)
	if err != nil || resp.RoomID != aliased.roomID {
		t.Fatalf("join by alias: %+v, %v", resp, err)
	}
	st, _ = joinedState(t, alice, aliased.roomID)
	if topic := st[[2]string{"m.room.topic", ""}]; topic == nil || gjson.GetBytes(topic.Content.VeryRaw, "topic").Str != "aliased" {
		t.Fatalf("state of the room joined by alias: %v", keysOf(st))
	}
	// An alias C does not have: 404.
	_, err = alice.JoinRoom(ctx, "#nowhere:"+c.name, nil)
	if !errors.Is(err, mautrix.MNotFound) {
		t.Fatalf("join by an unknown remote alias: %v", err)
	}
	// A room C does not host: a Matrix error (C says 404).
	_, err = alice.JoinRoomByID(ctx, id.RoomID("!missing:"+c.name))
	if httpErr, ok := err.(mautrix.HTTPError); !ok || httpErr.Response == nil || httpErr.Response.StatusCode != http.StatusNotFound {
		t.Fatalf("join of a room C does not have: %v", err)
	}
}

func keysOf(st map[[2]string]*event.Event) [][2]string {
	var out [][2]string
	for k := range st {
		out = append(out, k)
	}
	return out
}

// A forged send_join answer is refused and the next server asked: server
// D answers with C's state with a power levels event changed (its
// signature no longer verifies); A joins through C instead, with C's
// state. When no other server is left the join fails (502) and nothing
// of the room is kept. A state event whose content does not match its
// hash (its signature still good) is taken redacted, as the spec says.
func TestJoinRemoteForgedAnswer(t *testing.T) {
	a := start(t)
	ctx := t.Context()
	alice := register(t, a, "alice")
	c := newFakeServer(t)
	h := c.host(t)
	carol := id.NewUserID("carol", c.name)
	d := newFakeServer(t)
	dh := d.host(t)
	dh.rms = h.rms // D answers for C's rooms
	mallory := id.NewUserID("mallory", d.name)
	empty := ""
	dh.forge = func(state []map[string]any) {
		for _, ev := range state {
			if ev["type"] == "m.room.power_levels" {
				ev["content"].(map[string]any)["users"] = map[string]any{mallory.String(): 100}
			}
		}
	}
	r1 := h.createRoom(id.RoomV11, carol, "public", "shared")
	if _, err := alice.JoinRoom(ctx, r1.roomID.String(), &mautrix.ReqJoinRoom{Via: []string{d.name, c.name}}); err != nil {
		t.Fatalf("join through D then C: %v", err)
	}
	st, _ := joinedState(t, alice, r1.roomID)
	if pl := st[[2]string{"m.room.power_levels", ""}]; pl == nil || gjson.GetBytes(pl.Content.VeryRaw, "users").Get(gjson.Escape(mallory.String())).Exists() {
		t.Fatalf("power levels alice sees: %v", pl)
	}
	dh.mu.Lock()
	askedD := len(dh.received["send_join"])
	dh.mu.Unlock()
	if askedD != 1 {
		t.Fatalf("D was sent %d joins, want 1", askedD)
	}

	// No other server: the join fails and leaves nothing.
	r2 := h.createRoom(id.RoomV12, carol, "public", "shared")
	_, err := alice.JoinRoom(ctx, r2.roomID.String(), &mautrix.ReqJoinRoom{Via: []string{d.name}})
	if httpErr, ok := err.(mautrix.HTTPError); !ok || httpErr.Response == nil || httpErr.Response.StatusCode != http.StatusBadGateway {
		t.Fatalf("join through D alone: %v", err)
	}
	joined, err := alice.JoinedRooms(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range joined.JoinedRooms {
		if r == r2.roomID {
			t.Fatal("the room of the refused join is listed as joined")
		}
	}
	if _, err := alice.State(ctx, r2.roomID); err == nil {
		t.Fatal("the state of the refused join's room is readable")
	}

	// A changed name: its hash fails, its signature (of the redacted
	// event) holds: the name is taken redacted.
	r3 := h.createRoom(id.RoomV12, carol, "public", "shared", func(r *hostedRoom) {
		h.add(r, carol, "m.room.name", &empty, map[string]any{"name": "the real name"})
	})
	dh.forge = func(state []map[string]any) {
		for _, ev := range state {
			if ev["type"] == "m.room.name" {
				ev["content"] = map[string]any{"name": "a forged name"}
			}
		}
	}
	if _, err := alice.JoinRoom(ctx, r3.roomID.String(), &mautrix.ReqJoinRoom{Via: []string{d.name}}); err != nil {
		t.Fatalf("join with a redacted name: %v", err)
	}
	st, _ = joinedState(t, alice, r3.roomID)
	if name := st[[2]string{"m.room.name", ""}]; name == nil || gjson.GetBytes(name.Content.VeryRaw, "name").Exists() {
		t.Fatalf("the name with a bad hash: %v", name)
	}
}

// Restricted rooms (join rule restricted, room v8+): C names the user who
// authorises alice's join in the template (join_authorised_via_users_server)
// and signs the join in send_join; A keeps the join as C returned it, with
// C's signature. When C does not sign it, the auth rules refuse the join
// and A keeps nothing.
func TestJoinRemoteRestricted(t *testing.T) {
	a := start(t)
	ctx := t.Context()
	alice := register(t, a, "alice")
	c := newFakeServer(t)
	h := c.host(t)
	carol := id.NewUserID("carol", c.name)
	empty := ""
	space := h.createRoom(id.RoomV11, carol, "public", "shared")
	if _, err := alice.JoinRoomByID(ctx, space.roomID); err != nil {
		t.Fatalf("join the allowed room: %v", err)
	}
	restricted := func(sign bool) *hostedRoom {
		return h.createRoom(id.RoomV11, carol, "public", "shared", func(r *hostedRoom) {
			h.add(r, carol, "m.room.join_rules", &empty, map[string]any{"join_rule": "restricted",
				"allow": []any{map[string]any{"type": "m.room_membership", "room_id": space.roomID}}})
			r.authoriser, r.signRestricted = carol, sign
		})
	}
	r := restricted(true)
	if _, err := alice.JoinRoomByID(ctx, r.roomID); err != nil {
		t.Fatalf("restricted join: %v", err)
	}
	st, _ := joinedState(t, alice, r.roomID)
	join := st[[2]string{"m.room.member", alice.UserID.String()}]
	if join == nil || gjson.GetBytes(join.Content.VeryRaw, "join_authorised_via_users_server").Str != carol.String() {
		t.Fatalf("alice's join: %v", join)
	}
	// A serves the join as it keeps it: with C's signature.
	got, err := c.client().GetEvent(ctx, a.Opts.ServerName, join.ID)
	if err != nil || len(got.PDUs) != 1 {
		t.Fatalf("the join from A: %v", err)
	}
	if !gjson.GetBytes(got.PDUs[0], "signatures."+gjson.Escape(c.name)).Exists() ||
		!gjson.GetBytes(got.PDUs[0], "signatures."+gjson.Escape(a.Opts.ServerName)).Exists() {
		t.Fatalf("the join A keeps is not signed by both: %s", got.PDUs[0])
	}

	unsigned := restricted(false)
	_, err = alice.JoinRoomByID(ctx, unsigned.roomID)
	if err == nil {
		t.Fatal("a restricted join C did not sign was kept")
	}
	if httpErr, ok := err.(mautrix.HTTPError); !ok || httpErr.RespError == nil {
		t.Fatalf("restricted join without C's signature: %v", err)
	}
	if m, err := alice.JoinedMembers(ctx, unsigned.roomID); err == nil {
		t.Fatalf("members of the room of the refused join: %+v", m)
	}
}
