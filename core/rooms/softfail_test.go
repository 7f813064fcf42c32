package rooms

import (
	"context"
	"testing"

	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/core/events"
)

// newRoomOfTwo is a public room alice created and bob joined.
func newRoomOfTwo(t *testing.T) (s *Service, roomID id.RoomID, alice, bob id.UserID) {
	t.Helper()
	ctx := context.Background()
	s, _ = newTestRooms(t)
	alice, bob = id.UserID("@alice:example.org"), id.UserID("@bob:example.org")
	roomID, err := s.CreateRoom(ctx, &CreateRequest{Creator: alice, Preset: "public_chat"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.ChangeMembership(ctx, &MembershipRequest{RoomID: roomID, Sender: bob, Target: bob, Membership: "join"}); err != nil {
		t.Fatal(err)
	}
	return s, roomID, alice, bob
}

// An event whose own auth events allow it (they cite bob's join) soft-fails
// once the current state has banned bob, and passes while it has not.
func TestSoftFailAgainstCurrentState(t *testing.T) {
	ctx := context.Background()
	s, roomID, alice, bob := newRoomOfTwo(t)
	// Build bob's message on the state where he is joined, without sending it.
	rs, err := s.loadRoomState(ctx, roomID)
	if err != nil {
		t.Fatal(err)
	}
	b := newBatch(rs)
	msg, _, err := s.prepare(ctx, b, &events.Proto{Type: "m.room.message", Sender: bob,
		Content: map[string]any{"msgtype": "m.text", "body": "from the past"}})
	if err != nil {
		t.Fatal(err)
	}
	if failed, err := s.SoftFailCheck(ctx, roomID, msg); err != nil || failed {
		t.Fatalf("soft-failed while bob is joined: %v %v", failed, err)
	}
	if _, err := s.ChangeMembership(ctx, &MembershipRequest{RoomID: roomID, Sender: alice, Target: bob, Membership: "ban"}); err != nil {
		t.Fatal(err)
	}
	failed, err := s.SoftFailCheck(ctx, roomID, msg)
	if err != nil || !failed {
		t.Fatalf("bob's message passed against a state where he is banned: %v %v", failed, err)
	}
}
