package storage

import (
	"context"

	"maunium.net/go/mautrix/id"
)

// SyncReader is what /sync reads beyond the room interfaces.
type SyncReader interface {
	// StateEventsBetween lists a room's accepted state events with stream
	// positions in (after, before), oldest first.
	StateEventsBetween(ctx context.Context, roomID id.RoomID, after, before int64) ([]*Event, error)
	// LastEventBefore is a room's last accepted event before a position; ErrNotFound if none.
	LastEventBefore(ctx context.Context, roomID id.RoomID, before int64) (*Event, error)
	// CountRoomEvents counts a room's accepted events with positions in (after, upto].
	CountRoomEvents(ctx context.Context, roomID id.RoomID, after, upto int64) (int64, error)
	// MaxAccountDataPos is the account data stream's position.
	MaxAccountDataPos(ctx context.Context) (int64, error)
	// RoomsWithEventsBetween lists the rooms with events in (after, upto].
	RoomsWithEventsBetween(ctx context.Context, after, upto int64) ([]id.RoomID, error)
	// HasMessages reports whether a room has an accepted event that is not state.
	HasMessages(ctx context.Context, roomID id.RoomID) (bool, error)
	// MemberEventsBetween lists the accepted m.room.member events of every
	// room with positions in (after, upto], oldest first.
	MemberEventsBetween(ctx context.Context, after, upto int64) ([]*Event, error)
	// LatestRoomEvents is RoomEvents backwards for many rooms at once: the
	// newest limit accepted events of each span's room in it, newest
	// first, by room (rooms without any are left out).
	LatestRoomEvents(ctx context.Context, spans []RoomSpan, limit int) (map[id.RoomID][]*Event, error)
	// StateEventsIn is StateEventsBetween for many rooms at once: each
	// span's room's accepted state events in it, oldest first, by room
	// (rooms without any are left out).
	StateEventsIn(ctx context.Context, spans []RoomSpan) (map[id.RoomID][]*Event, error)
}

// RoomSpan is a room's events with stream positions in (After, Before);
// After 0 is no lower bound.
type RoomSpan struct {
	RoomID        id.RoomID
	After, Before int64
}

// Filters stores sync filters.
type Filters interface {
	// CreateFilter stores a filter and returns its ID.
	CreateFilter(ctx context.Context, userID id.UserID, filterJSON []byte) (string, error)
	GetFilter(ctx context.Context, userID id.UserID, filterID string) ([]byte, error)
}
