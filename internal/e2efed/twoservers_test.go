package e2efed

import (
	"testing"

	"github.com/tidwall/gjson"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

// Two real servers: bob of B joins alice's public room on A by its alias
// (B asks A's directory, then make_join/send_join), sees its state, and
// alice sees him join. alice invites bob to a private room: A has B sign
// the invite, bob sees it and accepts it, joining through A.
func TestTwoServersJoin(t *testing.T) {
	a, b := start(t), start(t)
	ctx := t.Context()
	alice := register(t, a, "alice")
	bob := register(t, b, "bob")
	alias := id.NewRoomAlias("town", a.Opts.ServerName)
	town, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat", Name: "Town",
		RoomAliasName: "town"})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := bob.JoinRoom(ctx, alias.String(), nil)
	if err != nil || resp.RoomID != town.RoomID {
		t.Fatalf("bob joins %s: %+v, %v", alias, resp, err)
	}
	st, _ := joinedState(t, bob, town.RoomID)
	if name := st[[2]string{"m.room.name", ""}]; name == nil || gjson.GetBytes(name.Content.VeryRaw, "name").Str != "Town" {
		t.Fatalf("bob's state of the room: %v", keysOf(st))
	}
	if st[[2]string{"m.room.member", alice.UserID.String()}] == nil {
		t.Fatal("bob does not see alice in the room")
	}
	waitForSync(t, alice, "bob's join", func(resp *mautrix.RespSync) bool {
		jr := resp.Rooms.Join[town.RoomID]
		if jr == nil {
			return false
		}
		for _, ev := range jr.Timeline.Events {
			if ev.Type == event.StateMember && ev.GetStateKey() == bob.UserID.String() && gjson.GetBytes(ev.Content.VeryRaw, "membership").Str == "join" {
				return true
			}
		}
		return false
	})

	private, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "private_chat", Name: "Private"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := alice.InviteUser(ctx, private.RoomID, &mautrix.ReqInviteUser{UserID: bob.UserID}); err != nil {
		t.Fatalf("alice invites bob: %v", err)
	}
	waitForSync(t, bob, "alice's invite", func(resp *mautrix.RespSync) bool { return resp.Rooms.Invite[private.RoomID] != nil })
	if _, err := bob.JoinRoomByID(ctx, private.RoomID); err != nil {
		t.Fatalf("bob accepts: %v", err)
	}
	st, _ = joinedState(t, bob, private.RoomID)
	if name := st[[2]string{"m.room.name", ""}]; name == nil || gjson.GetBytes(name.Content.VeryRaw, "name").Str != "Private" {
		t.Fatalf("bob's state of the private room: %v", keysOf(st))
	}
	members, err := alice.JoinedMembers(ctx, private.RoomID)
	if err != nil || len(members.Joined) != 2 {
		t.Fatalf("members on A: %+v, %v", members, err)
	}
}
