package testserver

import (
	"context"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

// FindEarlier pages a room's history back from the event from (newest
// first, its content parsed) and returns the first event pred takes; nil
// if none does.
func FindEarlier(ctx context.Context, t testing.TB, cli *mautrix.Client, room id.RoomID, from id.EventID,
	pred func(*event.Event) bool) *event.Event {
	t.Helper()
	around, err := cli.Context(ctx, room, from, nil, 1)
	if err != nil {
		t.Fatal(err)
	}
	token := around.Start
	for range 1000 {
		resp, err := cli.Messages(ctx, room, token, "", mautrix.DirectionBackward, nil, 100)
		if err != nil {
			t.Fatal(err)
		}
		for _, evt := range resp.Chunk {
			_ = evt.Content.ParseRaw(evt.Type)
			if pred(evt) {
				return evt
			}
		}
		if resp.End == "" || len(resp.Chunk) == 0 {
			break
		}
		token = resp.End
	}
	return nil
}

// FindReaction pages a room's history back from the event from for
// sender's reaction with key to target, and returns its ID; none fails
// the test.
func FindReaction(ctx context.Context, t testing.TB, cli *mautrix.Client, room id.RoomID, from, target id.EventID,
	sender id.UserID, key string) id.EventID {
	t.Helper()
	evt := FindEarlier(ctx, t, cli, room, from, func(evt *event.Event) bool {
		rel := evt.Content.AsReaction().RelatesTo
		return evt.Type == event.EventReaction && evt.Sender == sender && rel.EventID == target && rel.Key == key
	})
	if evt == nil {
		t.Fatalf("no reaction %s of %s to %s in the room", key, sender, target)
	}
	return evt.ID
}
