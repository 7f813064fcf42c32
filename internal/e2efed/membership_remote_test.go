package e2efed

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/tidwall/gjson"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/federation"
	"maunium.net/go/mautrix/federation/pdu"
	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/internal/pgtest"
	"github.com/tributary-hs/tributary/internal/testserver"
)

// A user of A invites a user of C: A sends the invite to C (PUT
// /_matrix/federation/v2/invite) before anything else, C signs it, and
// A stores it, signed by both, in the room. When C refuses, nothing is
// stored and the inviter gets 403.
func TestInviteRemoteUser(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) { inviteRemoteUser(t, start(t)) })
	t.Run("postgres", func(t *testing.T) { inviteRemoteUser(t, start(t, "--database-url", pgtest.URL(t))) })
}

func inviteRemoteUser(t *testing.T, a *testserver.Server) {
	ctx := t.Context()
	alice := register(t, a, "alice")
	c := newFakeServer(t)
	h := c.host(t)
	dave := id.NewUserID("dave", c.name)
	created, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "private_chat", Name: "Invites"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := alice.InviteUser(ctx, created.RoomID, &mautrix.ReqInviteUser{UserID: dave}); err != nil {
		t.Fatalf("invite of a user of C: %v", err)
	}
	h.mu.Lock()
	got := h.received["invite"]
	h.mu.Unlock()
	if len(got) != 1 {
		t.Fatalf("C was asked to sign %d invites", len(got))
	}
	var inv pdu.PDU
	if err := json.Unmarshal(got[0], &inv); err != nil {
		t.Fatal(err)
	}
	if inv.Sender != alice.UserID || inv.StateKey == nil || *inv.StateKey != dave.String() || inv.Signatures[a.Opts.ServerName] == nil {
		t.Fatalf("the invite C got: %s", got[0])
	}
	eid, err := inv.GetEventID(id.RoomV12)
	if err != nil {
		t.Fatal(err)
	}
	members, err := alice.Members(ctx, created.RoomID)
	if err != nil {
		t.Fatal(err)
	}
	var found *event.Event
	for _, m := range members.Chunk {
		if m.GetStateKey() == dave.String() {
			found = m
		}
	}
	if found == nil || found.ID != eid || gjson.GetBytes(found.Content.VeryRaw, "membership").Str != "invite" {
		t.Fatalf("dave's membership: %+v (invite %s)", found, eid)
	}
	waitForEvent(t, alice, created.RoomID, eid)

	// C refuses: 403, no invite.
	h.mu.Lock()
	h.refuseInvites = true
	h.mu.Unlock()
	erin := id.NewUserID("erin", c.name)
	_, err = alice.InviteUser(ctx, created.RoomID, &mautrix.ReqInviteUser{UserID: erin})
	if httpErr, ok := err.(mautrix.HTTPError); !ok || httpErr.Response == nil || httpErr.Response.StatusCode != http.StatusForbidden {
		t.Fatalf("invite C refuses: %v", err)
	}
	if err := alice.StateEvent(ctx, created.RoomID, event.StateMember, erin.String(), &event.MemberEventContent{}); err == nil {
		t.Fatal("the refused invite was stored")
	}
}

// C invites alice to a room on C; alice refuses: A asks C for the leave's
// template (make_leave) and sends it signed (send_leave); the room shows
// as left in her /sync. An invite from a server that is gone is refused
// here alone. An invite followed by a join: the join goes through the
// inviting server, and the invite kept alone leaves the timeline.
func TestRemoteInviteRefusedAndAccepted(t *testing.T) {
	a := start(t)
	ctx := t.Context()
	alice := register(t, a, "alice")
	c := newFakeServer(t)
	h := c.host(t)
	carol := id.NewUserID("carol", c.name)
	invite := func(r *hostedRoom) id.EventID {
		t.Helper()
		ask := alice.UserID.String()
		eid := h.send(r, carol, "m.room.member", &ask, map[string]any{"membership": "invite"})
		stripped := []federation.PDU{h.wire(r, r.state[pdu.StateKey{Type: "m.room.create"}])}
		if _, err := c.client().SendInvite(ctx, &federation.ReqSendInvite{RoomID: r.roomID, UserID: alice.UserID,
			EventID: eid, Event: h.wire(r, eid), InviteRoomState: stripped, RoomVersion: r.rv}); err != nil {
			t.Fatalf("invite: %v", err)
		}
		waitForSync(t, alice, "the invite", func(resp *mautrix.RespSync) bool { return resp.Rooms.Invite[r.roomID] != nil })
		return eid
	}

	refused := h.createRoom(id.RoomV11, carol, "invite", "shared")
	invite(refused)
	since := syncToken(t, alice)
	if _, err := alice.LeaveRoom(ctx, refused.roomID); err != nil {
		t.Fatalf("refuse the invite: %v", err)
	}
	h.mu.Lock()
	leaves := h.received["send_leave"]
	h.mu.Unlock()
	if len(leaves) != 1 || gjson.GetBytes(leaves[0], "content.membership").Str != "leave" ||
		gjson.GetBytes(leaves[0], "sender").Str != alice.UserID.String() ||
		!gjson.GetBytes(leaves[0], "signatures."+gjson.Escape(a.Opts.ServerName)).Exists() {
		t.Fatalf("C's send_leave: %s", leaves)
	}
	waitForSyncFrom(t, alice, since, "the refused invite as left", func(resp *mautrix.RespSync) bool {
		return resp.Rooms.Leave[refused.roomID] != nil && resp.Rooms.Invite[refused.roomID] == nil
	})

	// From a server that is gone: refused locally.
	gone := newFakeServer(t)
	gh := gone.host(t)
	grace := id.NewUserID("grace", gone.name)
	lost := gh.createRoom(id.RoomV11, grace, "invite", "shared")
	ask := alice.UserID.String()
	eid := gh.send(lost, grace, "m.room.member", &ask, map[string]any{"membership": "invite"})
	if _, err := gone.client().SendInvite(ctx, &federation.ReqSendInvite{RoomID: lost.roomID, UserID: alice.UserID,
		EventID: eid, Event: gh.wire(lost, eid), RoomVersion: lost.rv,
		InviteRoomState: []federation.PDU{gh.wire(lost, lost.state[pdu.StateKey{Type: "m.room.create"}])}}); err != nil {
		t.Fatalf("invite from the server about to go: %v", err)
	}
	gone.hostPtr.Store(nil) // answers nothing but its key now
	if _, err := alice.LeaveRoom(ctx, lost.roomID); err != nil {
		t.Fatalf("refuse an invite from a server that is gone: %v", err)
	}
	waitForSync(t, alice, "the invite of the gone server refused", func(resp *mautrix.RespSync) bool {
		return resp.Rooms.Invite[lost.roomID] == nil
	})

	// Invited then joining: through C, the inviting server.
	accepted := h.createRoom(id.RoomV11, carol, "invite", "shared")
	inviteID := invite(accepted)
	if _, err := alice.JoinRoomByID(ctx, accepted.roomID); err != nil {
		t.Fatalf("accept the invite: %v", err)
	}
	st, timeline := joinedState(t, alice, accepted.roomID)
	if st[[2]string{"m.room.join_rules", ""}] == nil {
		t.Fatalf("state after accepting: %v", keysOf(st))
	}
	for _, ev := range timeline {
		if ev.ID == inviteID {
			t.Fatal("the invite kept alone is in the joined room's timeline")
		}
	}
	join := st[[2]string{"m.room.member", alice.UserID.String()}]
	if join == nil || join.Unsigned.PrevContent == nil || gjson.GetBytes(join.Unsigned.PrevContent.VeryRaw, "membership").Str != "invite" {
		t.Fatalf("alice's join does not follow her invite: %+v", join)
	}
}

// alice knocks on a room of C (join rule knock): A makes the knock from
// C's make_knock template and sends it (send_knock); her /sync shows the
// knock with the state C gave. Withdrawing the knock is a leave through C.
func TestKnockRemoteRoom(t *testing.T) {
	a := start(t)
	ctx := t.Context()
	alice := register(t, a, "alice")
	c := newFakeServer(t)
	h := c.host(t)
	carol := id.NewUserID("carol", c.name)
	empty := ""
	r := h.createRoom(id.RoomV11, carol, "knock", "shared", func(r *hostedRoom) {
		h.add(r, carol, "m.room.name", &empty, map[string]any{"name": "Knock knock"})
	})
	resp, err := alice.KnockRoom(ctx, r.roomID.String(), &mautrix.ReqKnockRoom{Reason: "let me in"})
	if err != nil || resp.RoomID != r.roomID {
		t.Fatalf("knock: %+v, %v", resp, err)
	}
	h.mu.Lock()
	knocks := h.received["send_knock"]
	h.mu.Unlock()
	if len(knocks) != 1 || gjson.GetBytes(knocks[0], "content.membership").Str != "knock" ||
		gjson.GetBytes(knocks[0], "content.reason").Str != "let me in" {
		t.Fatalf("C's send_knock: %s", knocks)
	}
	waitForSync(t, alice, "the knock", func(resp *mautrix.RespSync) bool {
		kr := resp.Rooms.Knock[r.roomID]
		if kr == nil {
			return false
		}
		for _, ev := range kr.State.Events {
			if ev.Type.Type == "m.room.name" && gjson.GetBytes(ev.Content.VeryRaw, "name").Str == "Knock knock" {
				return true
			}
		}
		t.Fatalf("knock_state: %+v", kr.State.Events)
		return false
	})
	if _, err := alice.LeaveRoom(ctx, r.roomID); err != nil {
		t.Fatalf("withdraw the knock: %v", err)
	}
	h.mu.Lock()
	leaves := len(h.received["send_leave"])
	h.mu.Unlock()
	if leaves != 1 {
		t.Fatalf("C received %d leaves", leaves)
	}
	// A room that does not allow knocking: C's refusal reaches alice.
	pub := h.createRoom(id.RoomV11, carol, "public", "shared")
	h.mu.Lock()
	h.refuseKnocks = true
	h.mu.Unlock()
	_, err = alice.KnockRoom(ctx, pub.roomID.String(), nil)
	wantErrCode(t, "knock on a room C refuses it for", err, "M_FORBIDDEN")
}
