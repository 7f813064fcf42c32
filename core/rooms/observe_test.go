package rooms

import (
	"context"
	"slices"
	"testing"

	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/core/stream"
)

// Two services on one database and one notifier stand for two processes
// (workers sharing PostgreSQL and the Redis notifier): what each trusts
// about commits — a writer's cached room state, "no membership change
// since", "no relation since" — follows the other's commits through the
// notifier.
func TestCachesFollowAnotherProcessThroughTheNotifier(t *testing.T) {
	ctx := context.Background()
	n := stream.NewLocal(stream.Positions{})
	s1, store := newTestRoomsWith(t, Options{Notifier: n})
	s2, err := New(store, Options{ServerName: "example.org", Signer: s1.opts.Signer, Notifier: n})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Stop()
	s1.Start(ctx)
	s2.Start(ctx)
	alice := id.UserID("@alice:example.org")
	bob := id.UserID("@bob:example.org")
	roomID, err := s1.CreateRoom(ctx, &CreateRequest{Creator: alice, Preset: "public_chat"})
	if err != nil {
		t.Fatal(err)
	}
	// s2's writer caches the room's state.
	if _, err := sendText(ctx, s2, roomID, alice, "from s2"); err != nil {
		t.Fatal(err)
	}
	pos := n.Current()[stream.Events]
	if s2.MayHaveMemberEventsAfter(pos) {
		t.Fatal("s2 thinks membership changed after the current position")
	}
	// s1 lets bob join and sends a reaction.
	join, err := s1.ChangeMembership(ctx, &MembershipRequest{RoomID: roomID, Sender: bob, Target: bob, Membership: "join"})
	if err != nil {
		t.Fatal(err)
	}
	if !s2.MayHaveMemberEventsAfter(pos) {
		t.Fatal("s2 missed the membership change s1 committed")
	}
	relPos := n.Current()[stream.Events]
	if _, err := s1.Send(ctx, &SendRequest{RoomID: roomID, Sender: bob, Type: "m.reaction",
		Content: []byte(`{"m.relates_to":{"rel_type":"m.annotation","event_id":"` + string(join) + `","key":"👍"}}`)}); err != nil {
		t.Fatal(err)
	}
	if may, err := s2.mayHaveRelationsAfter(ctx, roomID, relPos); err != nil || !may {
		t.Fatal("s2 missed the relation s1 committed")
	}
	last := n.Current()[stream.Events]
	// s2's next event builds on s1's, and bob (joined through s1) may send
	// through s2: its writer reloaded the room.
	eid, err := sendText(ctx, s2, roomID, bob, "bob through s2")
	if err != nil {
		t.Fatalf("bob, joined through the other process, cannot send: %v", err)
	}
	ev, err := store.GetEvent(ctx, eid)
	if err != nil {
		t.Fatal(err)
	}
	p, err := parsePDU(ev)
	if err != nil {
		t.Fatal(err)
	}
	evs, err := store.RoomEvents(ctx, roomID, last+1, 0, true, 1)
	if err != nil || len(evs) != 1 {
		t.Fatalf("last event before: %v %v", evs, err)
	}
	if !slices.Equal(p.PrevEvents, []id.EventID{evs[0].EventID}) {
		t.Fatalf("s2's event cites %v, not s1's latest %s: the room forked", p.PrevEvents, evs[0].EventID)
	}
}

// A process that starts on a database holding relations learns them from
// the database (RelationSpan), not from commits it saw: the thread summary
// and the edit of events written before it started are shown.
func TestAggregationsOfRelationsStoredBeforeStart(t *testing.T) {
	ctx := context.Background()
	s1, store := newTestRooms(t)
	s1.Start(ctx)
	alice := id.UserID("@alice:example.org")
	roomID, err := s1.CreateRoom(ctx, &CreateRequest{Creator: alice, Preset: "public_chat"})
	if err != nil {
		t.Fatal(err)
	}
	root, err := sendText(ctx, s1, roomID, alice, "root")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s1.Send(ctx, &SendRequest{RoomID: roomID, Sender: alice, Type: "m.room.message",
		Content: []byte(`{"msgtype":"m.text","body":"reply","m.relates_to":{"rel_type":"m.thread","event_id":"` + string(root) + `"}}`)}); err != nil {
		t.Fatal(err)
	}
	// A second process, started after the reply was stored, with a
	// notifier of its own: it saw no commit.
	s2, err := New(store, Options{ServerName: "example.org", Signer: s1.opts.Signer})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Stop()
	s2.Start(ctx)
	ev, err := s2.Event(ctx, roomID, alice, root)
	if err != nil {
		t.Fatal(err)
	}
	rel, _ := ev.Unsigned["m.relations"].(map[string]any)
	if rel == nil || rel["m.thread"] == nil {
		t.Fatalf("the thread summary of an event stored before the start is missing: %v", ev.Unsigned)
	}
}
