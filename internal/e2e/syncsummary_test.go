package e2e

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"
)

// TestSyncRoomSummaries: /sync's room summaries (joined and invited counts,
// heroes: the first five other joined or invited members by user ID), as an
// initial sync of several rooms reads them all at once and as an incremental
// sync reads one room's after a membership change.
func TestSyncRoomSummaries(t *testing.T) {
	srv := startOpen(t)
	ctx := context.Background()
	alice := register(t, srv, "alice", "alice-password-1")
	var others []*mautrix.Client
	for _, name := range []string{"bob", "carol", "dave", "erin", "frank", "gina"} {
		others = append(others, register(t, srv, name, name+"-password-1"))
	}
	busy, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat"})
	if err != nil {
		t.Fatal(err)
	}
	quiet, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "private_chat"})
	if err != nil {
		t.Fatal(err)
	}
	// gina, carol, dave, erin, frank join; bob is invited.
	for _, c := range others[1:] {
		if _, err := c.JoinRoomByID(ctx, busy.RoomID); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := alice.InviteUser(ctx, busy.RoomID, &mautrix.ReqInviteUser{UserID: others[0].UserID}); err != nil {
		t.Fatal(err)
	}
	// Two messages from carol: alice's initial sync counts them unread.
	for i := range 2 {
		if _, err := others[1].SendText(ctx, busy.RoomID, fmt.Sprintf("hello %d", i)); err != nil {
			t.Fatal(err)
		}
	}
	check := func(what string, resp *mautrix.RespSync, room id.RoomID, joined, invited int, heroes ...id.UserID) {
		t.Helper()
		r, ok := resp.Rooms.Join[room]
		if !ok {
			t.Fatalf("%s: room %s not in the sync", what, room)
		}
		s := r.Summary
		if s.JoinedMemberCount == nil || *s.JoinedMemberCount != joined || s.InvitedMemberCount == nil || *s.InvitedMemberCount != invited ||
			!slices.Equal(s.Heroes, heroes) {
			t.Fatalf("%s: summary %+v (joined %v, invited %v), want %d joined, %d invited, heroes %v", what, s,
				deref(s.JoinedMemberCount), deref(s.InvitedMemberCount), joined, invited, heroes)
		}
	}
	first, err := alice.SyncRequest(ctx, 0, "", "", false, "")
	if err != nil {
		t.Fatal(err)
	}
	check("initial sync", first, busy.RoomID, 6, 1, userID("bob"), userID("carol"), userID("dave"), userID("erin"), userID("frank"))
	check("initial sync", first, quiet.RoomID, 1, 0)
	if n := first.Rooms.Join[busy.RoomID].UnreadNotifications; n == nil || n.NotificationCount != 2 {
		t.Fatalf("initial sync: unread notifications %+v, want 2", n)
	}
	if n := first.Rooms.Join[quiet.RoomID].UnreadNotifications; n == nil || n.NotificationCount != 0 {
		t.Fatalf("initial sync: unread notifications in the quiet room %+v, want 0", n)
	}
	// gina's view leaves her out and names alice.
	ginaFirst, err := others[5].SyncRequest(ctx, 0, "", "", false, "")
	if err != nil {
		t.Fatal(err)
	}
	check("gina's initial sync", ginaFirst, busy.RoomID, 6, 1, userID("alice"), userID("bob"), userID("carol"), userID("dave"), userID("erin"))
	// bob joins: the next sync has the new counts.
	if _, err := others[0].JoinRoomByID(ctx, busy.RoomID); err != nil {
		t.Fatal(err)
	}
	next, err := alice.SyncRequest(ctx, 0, first.NextBatch, "", false, "")
	if err != nil {
		t.Fatal(err)
	}
	check("after bob joined", next, busy.RoomID, 7, 0, userID("bob"), userID("carol"), userID("dave"), userID("erin"), userID("frank"))
}

func deref(p *int) any {
	if p == nil {
		return nil
	}
	return *p
}
