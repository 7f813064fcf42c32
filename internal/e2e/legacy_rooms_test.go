package e2e

import (
	"context"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

// Rooms of the legacy event format (versions 1 and 2) work end to end.
func TestLegacyRoomVersions(t *testing.T) {
	srv := startOpen(t)
	ctx := context.Background()
	alice := register(t, srv, "alicel", defaultPassword)
	bob := register(t, srv, "bobl", defaultPassword)
	for _, rv := range []id.RoomVersion{id.RoomV1, id.RoomV2} {
		t.Run(string(rv), func(t *testing.T) {
			room, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat", RoomVersion: rv, Name: "old"})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := bob.JoinRoomByID(ctx, room.RoomID); err != nil {
				t.Fatal(err)
			}
			sent, err := bob.SendText(ctx, room.RoomID, "hello from the past")
			if err != nil {
				t.Fatal(err)
			}
			if _, err := alice.RedactEvent(ctx, room.RoomID, sent.EventID); err != nil {
				t.Fatalf("moderator redaction: %v", err)
			}
			var create event.CreateEventContent
			if err := bob.StateEvent(ctx, room.RoomID, event.StateCreate, "", &create); err != nil {
				t.Fatal(err)
			}
			//lint:ignore SA1019 rooms before v11 carry the creator in the create content; this checks it is there
			if create.RoomVersion != rv || create.Creator != alice.UserID {
				t.Fatalf("create content %+v", create)
			}
			msgs, err := bob.Messages(ctx, room.RoomID, "", "", mautrix.DirectionBackward, nil, 3)
			if err != nil {
				t.Fatal(err)
			}
			if len(msgs.Chunk) != 3 || msgs.Chunk[0].Type != event.EventRedaction || msgs.Chunk[1].ID != sent.EventID {
				t.Fatalf("timeline %v", msgs.Chunk)
			}
			if len(msgs.Chunk[1].Content.Raw) != 0 || msgs.Chunk[1].Unsigned.RedactedBecause == nil {
				t.Fatalf("redacted message still has content %v", msgs.Chunk[1].Content.Raw)
			}
		})
	}
}
