package e2erooms

import (
	"errors"
	"net/http"
	"slices"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

func TestMembership(t *testing.T) { membershipFlow(t, newEnv(t)) }

func membershipFlow(t *testing.T, e *env) {

	t.Run("three users invite join talk leave", func(t *testing.T) {
		alice, bob, carol := e.user(t, "alice"), e.user(t, "bob"), e.user(t, "carol")
		room := createRoom(t, alice, &mautrix.ReqCreateRoom{Name: "trio"})
		// Invite-only: joining without an invite is refused.
		_, err := bob.JoinRoomByID(ctx(t), room)
		wantErr(t, err, http.StatusForbidden, "M_FORBIDDEN")
		invite(t, alice, room, bob.UserID)
		invite(t, alice, room, carol.UserID)
		if m := members(t, alice, room, mautrix.ReqMembers{}); m[bob.UserID] != "invite" || m[carol.UserID] != "invite" {
			t.Fatalf("members after invites %v", m)
		}
		join(t, bob, room)
		if res := must(carol.JoinRoom(ctx(t), string(room), nil)).of(t); res.RoomID != room {
			t.Fatalf("join gave %s", res.RoomID)
		}
		sendText(t, alice, room, "hi from alice")
		sendText(t, bob, room, "hi from bob")
		sendText(t, carol, room, "hi from carol")
		for _, cli := range []*mautrix.Client{alice, bob, carol} {
			equal(t, "bodies as "+string(cli.UserID), bodies(timeline(t, cli, room, mautrix.DirectionForward, 3)),
				[]string{"hi from alice", "hi from bob", "hi from carol"})
		}
		jm := must(carol.JoinedMembers(ctx(t), room)).of(t)
		if len(jm.Joined) != 3 {
			t.Fatalf("joined members %v", jm.Joined)
		}
		if jm.Joined[bob.UserID].DisplayName != bob.UserID.Localpart() {
			t.Logf("bob's display name in joined_members: %q", jm.Joined[bob.UserID].DisplayName)
		}
		leave(t, bob, room)
		jm = must(carol.JoinedMembers(ctx(t), room)).of(t)
		if _, ok := jm.Joined[bob.UserID]; ok || len(jm.Joined) != 2 {
			t.Fatalf("joined members after bob left %v", jm.Joined)
		}
		if slices.Contains(must(bob.JoinedRooms(ctx(t))).of(t).JoinedRooms, room) {
			t.Fatal("bob still lists the room he left")
		}
		// Leaving twice is allowed (the membership is already leave) or refused, but never a 500.
		if _, err := bob.LeaveRoom(ctx(t), room); err != nil {
			var he mautrix.HTTPError
			if !errors.As(err, &he) || he.Response.StatusCode >= 500 {
				t.Fatalf("second leave: %v", err)
			}
		}
		// Inviting someone already in the room fails.
		_, err = alice.InviteUser(ctx(t), room, &mautrix.ReqInviteUser{UserID: carol.UserID})
		wantErr(t, err, http.StatusForbidden, "M_FORBIDDEN")
		// Bob needs a new invite to come back.
		_, err = bob.JoinRoomByID(ctx(t), room)
		wantErr(t, err, http.StatusForbidden, "M_FORBIDDEN")
		invite(t, carol, room, bob.UserID) // invite level is 0 for private_chat
		join(t, bob, room)
	})

	t.Run("invite can be rejected", func(t *testing.T) {
		alice, bob := e.user(t, "alice"), e.user(t, "bob")
		room := createRoom(t, alice, nil)
		invite(t, alice, room, bob.UserID)
		leave(t, bob, room)
		if m := members(t, alice, room, mautrix.ReqMembers{}); m[bob.UserID] != "leave" {
			t.Fatalf("members after rejection %v", m)
		}
		// A rejected invite gives no read access.
		_, err := bob.Messages(ctx(t), room, "", "", mautrix.DirectionBackward, nil, 10)
		wantErr(t, err, http.StatusForbidden, "M_FORBIDDEN")
	})

	t.Run("kick", func(t *testing.T) {
		alice, bob, carol := e.user(t, "alice"), e.user(t, "bob"), e.user(t, "carol")
		room := publicRoom(t, alice, "")
		join(t, bob, room)
		join(t, carol, room)
		// Carol (power 0) may not kick.
		_, err := carol.KickUser(ctx(t), room, &mautrix.ReqKickUser{UserID: bob.UserID})
		wantErr(t, err, http.StatusForbidden, "M_FORBIDDEN")
		must(alice.KickUser(ctx(t), room, &mautrix.ReqKickUser{UserID: bob.UserID, Reason: "spam"})).of(t)
		ev := must(alice.FullStateEvent(ctx(t), room, event.StateMember, string(bob.UserID))).of(t)
		if ev.Content.AsMember().Membership != event.MembershipLeave || ev.Content.Raw["reason"] != "spam" || ev.Sender != alice.UserID {
			t.Fatalf("bob's member event after kick: %v from %s", ev.Content.Raw, ev.Sender)
		}
		_, err = bob.SendText(ctx(t), room, "still here?")
		wantErr(t, err, http.StatusForbidden, "M_FORBIDDEN")
		// Kicking someone who is not in the room fails.
		_, err = alice.KickUser(ctx(t), room, &mautrix.ReqKickUser{UserID: bob.UserID})
		wantErr(t, err, http.StatusForbidden, "M_FORBIDDEN")
		// A kick is not a ban: bob may rejoin the public room.
		join(t, bob, room)
	})

	t.Run("ban and unban", func(t *testing.T) {
		alice, bob, carol := e.user(t, "alice"), e.user(t, "bob"), e.user(t, "carol")
		room := publicRoom(t, alice, "")
		join(t, bob, room)
		join(t, carol, room)
		_, err := carol.BanUser(ctx(t), room, &mautrix.ReqBanUser{UserID: bob.UserID})
		wantErr(t, err, http.StatusForbidden, "M_FORBIDDEN")
		must(alice.BanUser(ctx(t), room, &mautrix.ReqBanUser{UserID: bob.UserID, Reason: "bye"})).of(t)
		if m := members(t, alice, room, mautrix.ReqMembers{Membership: event.MembershipBan}); len(m) != 1 || m[bob.UserID] != "ban" {
			t.Fatalf("banned members %v", m)
		}
		_, err = bob.JoinRoomByID(ctx(t), room)
		wantErr(t, err, http.StatusForbidden, "M_FORBIDDEN")
		_, err = alice.InviteUser(ctx(t), room, &mautrix.ReqInviteUser{UserID: bob.UserID})
		wantErr(t, err, http.StatusForbidden, "M_FORBIDDEN")
		// A kick does not lift a ban.
		_, err = alice.KickUser(ctx(t), room, &mautrix.ReqKickUser{UserID: bob.UserID})
		wantErr(t, err, http.StatusForbidden, "M_FORBIDDEN")
		// Carol may not unban; unbanning someone not banned fails.
		_, err = carol.UnbanUser(ctx(t), room, &mautrix.ReqUnbanUser{UserID: bob.UserID})
		wantErr(t, err, http.StatusForbidden, "M_FORBIDDEN")
		_, err = alice.UnbanUser(ctx(t), room, &mautrix.ReqUnbanUser{UserID: carol.UserID})
		wantErr(t, err, http.StatusForbidden, "M_FORBIDDEN")
		must(alice.UnbanUser(ctx(t), room, &mautrix.ReqUnbanUser{UserID: bob.UserID})).of(t)
		if m := members(t, alice, room, mautrix.ReqMembers{}); m[bob.UserID] != "leave" {
			t.Fatalf("bob after unban: %v", m)
		}
		join(t, bob, room)
		sendText(t, bob, room, "back")
		// A user banned before ever joining cannot join either.
		dave := e.user(t, "dave")
		must(alice.BanUser(ctx(t), room, &mautrix.ReqBanUser{UserID: dave.UserID})).of(t)
		_, err = dave.JoinRoomByID(ctx(t), room)
		wantErr(t, err, http.StatusForbidden, "M_FORBIDDEN")
	})

	t.Run("knock", func(t *testing.T) {
		alice, bob, carol := e.user(t, "alice"), e.user(t, "bob"), e.user(t, "carol")
		room := createRoom(t, alice, &mautrix.ReqCreateRoom{InitialState: []*event.Event{{Type: event.StateJoinRules,
			StateKey: ptr(""), Content: event.Content{Raw: map[string]any{"join_rule": "knock"}}}}})
		_, err := bob.JoinRoomByID(ctx(t), room)
		wantErr(t, err, http.StatusForbidden, "M_FORBIDDEN")
		res := must(bob.KnockRoom(ctx(t), string(room), &mautrix.ReqKnockRoom{Reason: "let me in"})).of(t)
		if res.RoomID != room {
			t.Fatalf("knock gave %s", res.RoomID)
		}
		must(carol.KnockRoom(ctx(t), string(room), nil)).of(t)
		if m := members(t, alice, room, mautrix.ReqMembers{Membership: event.MembershipKnock}); len(m) != 2 ||
			m[bob.UserID] != "knock" || m[carol.UserID] != "knock" {
			t.Fatalf("knocking members %v", m)
		}
		ev := must(alice.FullStateEvent(ctx(t), room, event.StateMember, string(bob.UserID))).of(t)
		if ev.Content.Raw["reason"] != "let me in" {
			t.Fatalf("knock content %v", ev.Content.Raw)
		}
		// A knocker is not a member yet.
		_, err = bob.Members(ctx(t), room)
		wantErr(t, err, http.StatusForbidden, "M_FORBIDDEN")
		// Accept bob (invite), reject carol (kick).
		invite(t, alice, room, bob.UserID)
		join(t, bob, room)
		must(alice.KickUser(ctx(t), room, &mautrix.ReqKickUser{UserID: carol.UserID})).of(t)
		m := members(t, alice, room, mautrix.ReqMembers{})
		if m[bob.UserID] != "join" || m[carol.UserID] != "leave" {
			t.Fatalf("members %v", m)
		}
		// Knocking is not allowed in a room version without it, nor where the join rule is not knock.
		old := createRoom(t, alice, &mautrix.ReqCreateRoom{RoomVersion: "6"})
		_, err = carol.KnockRoom(ctx(t), string(old), nil)
		wantErr(t, err, http.StatusForbidden, "M_FORBIDDEN")
		inviteOnly := createRoom(t, alice, nil)
		_, err = carol.KnockRoom(ctx(t), string(inviteOnly), nil)
		wantErr(t, err, http.StatusForbidden, "M_FORBIDDEN")
	})

	t.Run("power levels", func(t *testing.T) {
		alice, bob, carol := e.user(t, "alice"), e.user(t, "bob"), e.user(t, "carol")
		room := publicRoom(t, alice, "")
		join(t, bob, room)
		join(t, carol, room)
		_, err := bob.SendStateEvent(ctx(t), room, event.StateRoomName, "", map[string]any{"name": "bob's"})
		wantErr(t, err, http.StatusForbidden, "M_FORBIDDEN")
		// Bob may not raise himself.
		pl := stateOf(t, bob, room, "m.room.power_levels", "")
		users, _ := pl["users"].(map[string]any)
		if users == nil {
			users = map[string]any{}
		}
		users[string(bob.UserID)] = 50
		pl["users"] = users
		_, err = bob.SendStateEvent(ctx(t), room, event.StatePowerLevels, "", pl)
		wantErr(t, err, http.StatusForbidden, "M_FORBIDDEN")
		sendState(t, alice, room, "m.room.power_levels", "", pl)
		sendState(t, bob, room, "m.room.name", "", map[string]any{"name": "bob's"})
		if got := stateOf(t, carol, room, "m.room.name", ""); got["name"] != "bob's" {
			t.Fatalf("name %v", got)
		}
		_, err = carol.SendStateEvent(ctx(t), room, event.StateRoomName, "", map[string]any{"name": "carol's"})
		wantErr(t, err, http.StatusForbidden, "M_FORBIDDEN")
		// Bob, now a moderator, may kick carol and redact her messages but not change power levels (100).
		msg := sendText(t, carol, room, "rude")
		must(bob.RedactEvent(ctx(t), room, msg)).of(t)
		pl["users_default"] = 10
		_, err = bob.SendStateEvent(ctx(t), room, event.StatePowerLevels, "", pl)
		wantErr(t, err, http.StatusForbidden, "M_FORBIDDEN")
		must(bob.KickUser(ctx(t), room, &mautrix.ReqKickUser{UserID: carol.UserID})).of(t)
		// Bob may not kick alice (the creator).
		_, err = bob.KickUser(ctx(t), room, &mautrix.ReqKickUser{UserID: alice.UserID})
		wantErr(t, err, http.StatusForbidden, "M_FORBIDDEN")
	})

	t.Run("forget", func(t *testing.T) {
		alice, bob := e.user(t, "alice"), e.user(t, "bob")
		room := publicRoom(t, alice, "")
		join(t, bob, room)
		sendText(t, alice, room, "before leaving")
		_, err := bob.ForgetRoom(ctx(t), room)
		wantErr(t, err, http.StatusBadRequest, "M_UNKNOWN") // the spec's example, as Synapse
		leave(t, bob, room)
		// After leaving, bob still reads the history up to his leave.
		equal(t, "left user's view", bodies(timeline(t, bob, room, mautrix.DirectionBackward, 10)), []string{"before leaving"})
		must(bob.ForgetRoom(ctx(t), room)).of(t)
		_, err = bob.Messages(ctx(t), room, "", "", mautrix.DirectionBackward, nil, 10)
		wantErr(t, err, http.StatusForbidden, "M_FORBIDDEN")
		_, err = bob.State(ctx(t), room)
		wantErr(t, err, http.StatusForbidden, "M_FORBIDDEN")
		// Joining again makes the room visible again.
		join(t, bob, room)
		equal(t, "after rejoin", bodies(timeline(t, bob, room, mautrix.DirectionBackward, 10)), []string{"before leaving"})
		// Forgetting a room one was never in is refused.
		carol := e.user(t, "carol")
		_, err = carol.ForgetRoom(ctx(t), room)
		wantErr(t, err, http.StatusForbidden, "M_FORBIDDEN")
	})

	t.Run("members at and membership filters", func(t *testing.T) {
		alice, bob, carol, dave, erin := e.user(t, "alice"), e.user(t, "bob"), e.user(t, "carol"), e.user(t, "dave"), e.user(t, "erin")
		room := publicRoom(t, alice, "")
		join(t, bob, room)
		marker := sendText(t, alice, room, "marker")
		// A token right after the marker: the end of /context around it.
		c := must(alice.Context(ctx(t), room, marker, nil, 1)).of(t)
		join(t, carol, room)
		invite(t, alice, room, dave.UserID)
		join(t, erin, room)
		leave(t, erin, room)

		at := members(t, bob, room, mautrix.ReqMembers{At: c.End})
		if len(at) != 2 || at[alice.UserID] != "join" || at[bob.UserID] != "join" {
			t.Fatalf("members at the marker %v", at)
		}
		now := members(t, bob, room, mautrix.ReqMembers{})
		want := map[id.UserID]string{alice.UserID: "join", bob.UserID: "join", carol.UserID: "join",
			dave.UserID: "invite", erin.UserID: "leave"}
		if !mapsEqual(now, want) {
			t.Fatalf("members now %v, want %v", now, want)
		}
		if got := members(t, bob, room, mautrix.ReqMembers{Membership: event.MembershipJoin}); len(got) != 3 || got[dave.UserID] != "" {
			t.Fatalf("membership=join %v", got)
		}
		if got := members(t, bob, room, mautrix.ReqMembers{Membership: event.MembershipInvite}); len(got) != 1 || got[dave.UserID] != "invite" {
			t.Fatalf("membership=invite %v", got)
		}
		if got := members(t, bob, room, mautrix.ReqMembers{NotMembership: event.MembershipJoin}); len(got) != 2 ||
			got[dave.UserID] != "invite" || got[erin.UserID] != "leave" {
			t.Fatalf("not_membership=join %v", got)
		}
		if got := members(t, bob, room, mautrix.ReqMembers{NotMembership: event.MembershipLeave}); len(got) != 4 {
			t.Fatalf("not_membership=leave %v", got)
		}
		status, body := e.do(t, bob, http.MethodGet, q(p("v3", "rooms", room, "members"), "membership", "member"), nil)
		wantStatus(t, "unknown membership", status, body, http.StatusBadRequest, "M_INVALID_PARAM")
		status, body = e.do(t, bob, http.MethodGet, q(p("v3", "rooms", room, "members"), "at", "nonsense"), nil)
		wantStatus(t, "bad at", status, body, http.StatusBadRequest, "M_INVALID_PARAM")
		jm := must(bob.JoinedMembers(ctx(t), room)).of(t)
		if len(jm.Joined) != 3 {
			t.Fatalf("joined_members %v", jm.Joined)
		}
	})

	t.Run("mutual rooms and joined rooms", func(t *testing.T) {
		alice, bob := e.user(t, "alice"), e.user(t, "bob")
		shared1 := publicRoom(t, alice, "")
		shared2 := publicRoom(t, bob, "")
		onlyAlice := publicRoom(t, alice, "")
		left := publicRoom(t, alice, "")
		join(t, bob, shared1)
		join(t, alice, shared2)
		join(t, bob, left)
		leave(t, bob, left)
		mutual := func(cli *mautrix.Client, other id.UserID) []string {
			var res struct {
				Joined []string `json:"joined"`
			}
			e.doInto(t, cli, http.MethodGet, q(p("v1", "mutual_rooms"), "user_id", string(other)), nil, &res)
			slices.Sort(res.Joined)
			return res.Joined
		}
		want := []string{string(shared1), string(shared2)}
		slices.Sort(want)
		equal(t, "alice's mutual rooms with bob", mutual(alice, bob.UserID), want)
		equal(t, "bob's mutual rooms with alice", mutual(bob, alice.UserID), want)
		status, body := e.do(t, alice, http.MethodGet, p("v1", "mutual_rooms"), nil)
		wantStatus(t, "no user_id", status, body, http.StatusBadRequest, "M_MISSING_PARAM")
		status, body = e.do(t, alice, http.MethodGet, q(p("v1", "mutual_rooms"), "user_id", "nope"), nil)
		wantStatus(t, "bad user_id", status, body, http.StatusBadRequest, "M_INVALID_PARAM")

		joined := must(alice.JoinedRooms(ctx(t))).of(t).JoinedRooms
		slices.Sort(joined)
		wantJoined := []id.RoomID{shared1, shared2, onlyAlice, left}
		slices.Sort(wantJoined)
		equal(t, "alice's joined rooms", joined, wantJoined)
	})
}

func mapsEqual[K, V comparable](a, b map[K]V) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}
