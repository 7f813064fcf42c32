package rooms

import (
	"context"
	"testing"

	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/core/types"
	"github.com/tributary-hs/tributary/storage"
)

type fakeRestrictions map[id.UserID][2]bool // user → suspended, locked

func (f fakeRestrictions) AccountRestrictions(_ context.Context, user id.UserID) (bool, bool, error) {
	r, ok := f[user]
	if !ok {
		return false, false, storage.ErrNotFound
	}
	return r[0], r[1], nil
}

// Account moderation is the pipeline's rule, not a handler's: whoever
// calls it (HTTP, CLI, the plugin host) meets the same refusals.
func TestRestrictedAccountsInThePipeline(t *testing.T) {
	ctx := context.Background()
	s, _ := newTestRooms(t)
	restr := fakeRestrictions{}
	s.opts.Restrictions = restr
	alice, sam, lou := id.UserID("@alice:example.org"), id.UserID("@sam:example.org"), id.UserID("@lou:example.org")
	roomID, err := s.CreateRoom(ctx, &CreateRequest{Creator: alice, Preset: "public_chat"})
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range []id.UserID{sam, lou} {
		if _, err := s.ChangeMembership(ctx, &MembershipRequest{RoomID: roomID, Sender: u, Target: u, Membership: "join"}); err != nil {
			t.Fatal(err)
		}
	}
	samsOwn, err := sendText(ctx, s, roomID, sam, "mine")
	if err != nil {
		t.Fatal(err)
	}
	alices, err := sendText(ctx, s, roomID, alice, "alice's")
	if err != nil {
		t.Fatal(err)
	}
	restr[sam] = [2]bool{true, false} // suspended
	restr[lou] = [2]bool{false, true} // locked
	wantCode := func(t *testing.T, what string, err error, code string) {
		t.Helper()
		me, ok := types.AsError(err)
		if !ok || me.Code != code {
			t.Fatalf("%s: %v, want %s", what, err, code)
		}
	}
	t.Run("suspended", func(t *testing.T) {
		_, err := s.CreateRoom(ctx, &CreateRequest{Creator: sam})
		wantCode(t, "create a room", err, types.CodeUserSuspended)
		_, err = s.ChangeMembership(ctx, &MembershipRequest{RoomID: roomID, Sender: sam, Target: alice, Membership: "ban"})
		wantCode(t, "ban", err, types.CodeUserSuspended)
		_, err = s.Redact(ctx, roomID, sam, "", alices, "", "")
		wantCode(t, "redact another's event", err, types.CodeUserSuspended)
		if _, err := s.Redact(ctx, roomID, sam, "", samsOwn, "", ""); err != nil {
			t.Fatalf("redact own event: %v", err)
		}
		if _, err := s.ChangeMembership(ctx, &MembershipRequest{RoomID: roomID, Sender: sam, Target: sam, Membership: "leave"}); err != nil {
			t.Fatalf("leave: %v", err)
		}
		_, err = s.ChangeMembership(ctx, &MembershipRequest{RoomID: roomID, Sender: sam, Target: sam, Membership: "join"})
		wantCode(t, "join", err, types.CodeUserSuspended)
	})
	t.Run("locked", func(t *testing.T) {
		_, err := s.ChangeMembership(ctx, &MembershipRequest{RoomID: roomID, Sender: lou, Target: lou, Membership: "leave"})
		wantCode(t, "leave", err, types.CodeUserLocked)
		_, err = s.Upgrade(ctx, roomID, lou, "11", nil)
		wantCode(t, "upgrade", err, types.CodeUserLocked)
	})
	t.Run("others unaffected", func(t *testing.T) {
		if _, err := s.ChangeMembership(ctx, &MembershipRequest{RoomID: roomID, Sender: alice, Target: sam, Membership: "invite"}); err != nil {
			t.Fatalf("inviting a suspended user: %v", err)
		}
	})
}
