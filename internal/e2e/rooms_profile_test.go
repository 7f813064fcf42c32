package e2e

import (
	"context"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

// A display name change reaches the rooms the user is in, and a deactivated
// user leaves their rooms.
func TestProfileAndDeactivationReachRooms(t *testing.T) {
	srv := startOpen(t)
	ctx := context.Background()
	alice := register(t, srv, "alicep", defaultPassword)
	bob := register(t, srv, "bobp", defaultPassword)
	room, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bob.JoinRoomByID(ctx, room.RoomID); err != nil {
		t.Fatal(err)
	}
	if err := bob.SetDisplayName(ctx, "Bob the Builder"); err != nil {
		t.Fatal(err)
	}
	var member event.MemberEventContent
	if err := alice.StateEvent(ctx, room.RoomID, event.StateMember, bob.UserID.String(), &member); err != nil {
		t.Fatal(err)
	}
	if member.Displayname != "Bob the Builder" || member.Membership != event.MembershipJoin {
		t.Fatalf("member event after rename: %+v", member)
	}

	code, body := srv.Do(t, "POST", "/_matrix/client/v3/account/deactivate", bob.AccessToken,
		map[string]any{"auth": passwordAuth("bobp", defaultPassword, "")})
	wantStatus(t, "deactivate", code, body, 200, "")
	joined, err := alice.JoinedMembers(ctx, room.RoomID)
	if err != nil {
		t.Fatal(err)
	}
	if _, still := joined.Joined[bob.UserID]; still || len(joined.Joined) != 1 {
		t.Fatalf("joined members after deactivation: %v", joined.Joined)
	}
}

// Identical rooms created at the same moment still get distinct IDs (from
// room v12 the ID is the create event's hash).
func TestConcurrentIdenticalCreateRoom(t *testing.T) {
	srv := startOpen(t)
	alice := register(t, srv, "alicecc", defaultPassword)
	ids := make(chan id.RoomID, 16)
	errs := make(chan error, 16)
	for range 16 {
		go func() {
			resp, err := alice.CreateRoom(context.Background(), &mautrix.ReqCreateRoom{})
			if err != nil {
				errs <- err
				return
			}
			ids <- resp.RoomID
		}()
	}
	seen := map[id.RoomID]bool{}
	for range 16 {
		select {
		case err := <-errs:
			t.Fatalf("createRoom: %v", err)
		case r := <-ids:
			if seen[r] {
				t.Fatalf("room ID %s given twice", r)
			}
			seen[r] = true
		}
	}
}
