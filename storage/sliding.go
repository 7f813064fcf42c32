package storage

import (
	"context"

	"maunium.net/go/mautrix/id"
)

// SlidingReader answers sliding sync's per-room questions in one query each.
// Backends implement it beside Store; callers fall back to paging through
// RoomEvents when a store does not.
type SlidingReader interface {
	// LastEventPos is the stream position of a room's latest accepted event
	// at or before upto whose type is one of types (any type when empty); 0
	// when there is none.
	LastEventPos(ctx context.Context, roomID id.RoomID, upto int64, types []string) (int64, error)
}
