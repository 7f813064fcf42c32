package rooms

import (
	"context"
	"encoding/json/jsontext"
	"strings"
	"testing"
	"time"

	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/core/events"
	"github.com/tributary-hs/tributary/core/types"
)

// A batch's events are built one after another and signed together: each
// stored event carries this server's signature and its content hash, and
// names the one before it as its prev event.
func TestBatchEventsAreSigned(t *testing.T) {
	ctx := context.Background()
	s, store := newTestRooms(t)
	alice := id.UserID("@alice:example.org")
	roomID, err := s.CreateRoom(ctx, &CreateRequest{Creator: alice, Preset: "public_chat"})
	if err != nil {
		t.Fatal(err)
	}
	var protos []*events.Proto
	for i := range 300 {
		protos = append(protos, &events.Proto{Type: "m.room.message", Sender: alice, OriginServerTS: int64(1000 + i),
			Content: jsontext.Value(`{"msgtype":"m.text","body":"` + strings.Repeat("x", i) + `"}`)})
	}
	ids, err := s.BatchSend(ctx, roomID, protos, BatchOptions{})
	if err != nil {
		t.Fatal(err)
	}
	getKey := func(server string, kid id.KeyID, _ time.Time) (id.SigningKey, time.Time, error) {
		return s.opts.Signer.Public(), time.Now().Add(time.Hour), nil
	}
	for i, eid := range ids {
		stored, err := store.GetEvent(ctx, eid)
		if err != nil {
			t.Fatal(err)
		}
		p, err := parsePDU(stored)
		if err != nil {
			t.Fatal(err)
		}
		if !events.VerifyContentHash(p) {
			t.Fatalf("event %d: content hash does not verify", i)
		}
		if err := events.VerifySignature(id.RoomV12, p, "example.org", getKey); err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
		if real, err := events.EventID(id.RoomV12, p); err != nil || real != eid {
			t.Fatalf("event %d: ID %s, its hash says %s (%v)", i, eid, real, err)
		}
		if i > 0 && (len(p.PrevEvents) != 1 || p.PrevEvents[0] != ids[i-1]) {
			t.Fatalf("event %d: prev_events %v, want %s", i, p.PrevEvents, ids[i-1])
		}
	}
}

// One event too big, or one sender not in the room, fails the whole
// batch: nothing of it is stored. (Authorisation is remembered per sender
// within a batch: a stranger between members is still refused.)
func TestBatchAllOrNothing(t *testing.T) {
	ctx := context.Background()
	s, store := newTestRooms(t)
	alice := id.UserID("@alice:example.org")
	roomID, err := s.CreateRoom(ctx, &CreateRequest{Creator: alice, Preset: "public_chat"})
	if err != nil {
		t.Fatal(err)
	}
	msg := func(sender id.UserID, body string) *events.Proto {
		return &events.Proto{Type: "m.room.message", Sender: sender, Content: jsontext.Value(`{"body":"` + body + `"}`)}
	}
	before, err := store.MaxStreamPos(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		protos []*events.Proto
		code   string
	}{
		{"too big", []*events.Proto{msg(alice, "a"), msg(alice, strings.Repeat("x", 70_000)), msg(alice, "c")}, types.CodeTooLarge},
		{"a stranger", []*events.Proto{msg(alice, "a"), msg("@mallory:example.org", "b"), msg(alice, "c")}, types.CodeForbidden},
	} {
		_, err := s.BatchSend(ctx, roomID, tc.protos, BatchOptions{})
		if me, ok := types.AsError(err); !ok || me.Code != tc.code {
			t.Fatalf("%s: %v, want %s", tc.name, err, tc.code)
		}
	}
	// Signing runs beside the building, in chunks: an event found too big
	// only once signed, far into a big batch, still fails it, named by its
	// index.
	var big []*events.Proto
	for i := range 400 {
		big = append(big, msg(alice, "m"))
		if i == 300 {
			big[i] = msg(alice, strings.Repeat("x", 70_000))
		}
	}
	_, err = s.BatchSend(ctx, roomID, big, BatchOptions{})
	if me, ok := types.AsError(err); !ok || me.Code != types.CodeTooLarge || me.Extra["index"] != 300 {
		t.Fatalf("a big batch with one event too big: %v, want %s at index 300", err, types.CodeTooLarge)
	}
	if after, err := store.MaxStreamPos(ctx); err != nil || after != before {
		t.Fatalf("refused batches stored events: stream %d → %d (%v)", before, after, err)
	}
}

// Authorisation is remembered across batches by the auth events it read:
// a sender whose membership or power changed is judged again.
func TestAuthorizedMemoFollowsAuthEvents(t *testing.T) {
	ctx := context.Background()
	s, roomID, alice, bob := newRoomOfTwo(t)
	send := func(sender id.UserID, typ string) error {
		_, err := s.Send(ctx, &SendRequest{RoomID: roomID, Sender: sender, Type: typ,
			Content: jsontext.Value(`{"body":"hi"}`)})
		return err
	}
	forbidden := func(err error) bool {
		me, ok := types.AsError(err)
		return ok && me.Code == types.CodeForbidden
	}
	for range 3 {
		if err := send(bob, "m.room.message"); err != nil {
			t.Fatal(err)
		}
	}
	// Alice raises the level of messages above bob's.
	pl := `{"events":{"m.room.message":50}}` // alice creates: her power is above all
	empty := ""
	if _, err := s.Send(ctx, &SendRequest{RoomID: roomID, Sender: alice, Type: "m.room.power_levels", StateKey: &empty,
		Content: jsontext.Value(pl)}); err != nil {
		t.Fatal(err)
	}
	if err := send(bob, "m.room.message"); !forbidden(err) {
		t.Fatalf("bob's message after the power levels changed: %v, want %s", err, types.CodeForbidden)
	}
	if err := send(bob, "m.reaction"); err != nil {
		t.Fatalf("bob's reaction: %v", err)
	}
	if _, err := s.ChangeMembership(ctx, &MembershipRequest{RoomID: roomID, Sender: bob, Target: bob, Membership: "leave"}); err != nil {
		t.Fatal(err)
	}
	if err := send(bob, "m.reaction"); !forbidden(err) {
		t.Fatalf("bob's reaction after he left: %v, want %s", err, types.CodeForbidden)
	}
}
