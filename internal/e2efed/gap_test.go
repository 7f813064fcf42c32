package e2efed

import (
	"fmt"
	"testing"

	"github.com/tidwall/gjson"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/internal/pgtest"
	"github.com/tributary-hs/tributary/internal/testserver"
)

// C sends an event whose prev events A does not have, and get_missing_events
// gives nothing: A asks C for the state before the missing prev event
// (/state_ids), fetches the events of it that it lacks (/event; /state
// when they are many), checks and keeps them, and takes the event in with
// that state: alice sees it, and the state changes made in the gap.
func TestFillGapWithState(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) { fillGapWithState(t, start(t)) })
	t.Run("postgres", func(t *testing.T) { fillGapWithState(t, start(t, "--database-url", pgtest.URL(t))) })
}

func fillGapWithState(t *testing.T, a *testserver.Server) {
	ctx := t.Context()
	alice := register(t, a, "alice")
	c := newFakeServer(t)
	h := c.host(t)
	carol := id.NewUserID("carol", c.name)
	empty := ""
	r := h.createRoom(id.RoomV11, carol, "public", "shared")
	if _, err := alice.JoinRoomByID(ctx, r.roomID); err != nil {
		t.Fatal(err)
	}
	joinedState(t, alice, r.roomID)

	// The gap: a topic and a message A never gets.
	h.send(r, carol, "m.room.topic", &empty, map[string]any{"topic": "set in the gap"})
	h.send(r, carol, "m.room.message", nil, map[string]any{"msgtype": "m.text", "body": "lost"})
	after := h.send(r, carol, "m.room.message", nil, map[string]any{"msgtype": "m.text", "body": "after the gap"})
	if res := c.sendTxn(t, a, h.wire(r, after)); res[after].Error != "" {
		t.Fatalf("the event after the gap: %+v", res)
	}
	waitForEvent(t, alice, r.roomID, after)
	var topic event.TopicEventContent
	if err := alice.StateEvent(ctx, r.roomID, event.StateTopic, "", &topic); err != nil || topic.Topic != "set in the gap" {
		t.Fatalf("topic after the gap: %+v, %v", topic, err)
	}
	h.mu.Lock()
	stateIDs, events := h.asked["state_ids"], h.asked["event"]
	h.mu.Unlock()
	if stateIDs != 1 || events < 2 {
		t.Fatalf("C was asked state_ids %d times and event %d times", stateIDs, events)
	}

	// A wider gap: 60 members join; their events come with /state.
	for i := range 60 {
		u := id.NewUserID(fmt.Sprintf("m%d", i), c.name)
		sk := u.String()
		h.send(r, u, "m.room.member", &sk, map[string]any{"membership": "join"})
	}
	late := h.send(r, carol, "m.room.message", nil, map[string]any{"msgtype": "m.text", "body": "after the crowd"})
	if res := c.sendTxn(t, a, h.wire(r, late)); res[late].Error != "" {
		t.Fatalf("the event after the crowd: %+v", res)
	}
	got := waitForEvent(t, alice, r.roomID, late)
	if gjson.GetBytes(got.Content.VeryRaw, "body").Str != "after the crowd" {
		t.Fatalf("alice sees %s", got.Content.VeryRaw)
	}
	members, err := alice.JoinedMembers(ctx, r.roomID)
	if err != nil || len(members.Joined) != 62 {
		t.Fatalf("members after the crowd: %d, %v", len(members.Joined), err)
	}
	h.mu.Lock()
	full := h.asked["state"]
	h.mu.Unlock()
	if full != 1 {
		t.Fatalf("C was asked /state %d times", full)
	}
}
