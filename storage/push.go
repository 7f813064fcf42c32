package storage

import (
	"context"

	"maunium.net/go/mautrix/id"
)

// PushAction is a notification an event gives a user.
type PushAction struct {
	UserID    id.UserID
	ThreadID  string // "main" for the main timeline, else the thread root
	Highlight bool
	// Silent: the user is not notified (an exception to the event's
	// default notification, EventWrite.PushDefault).
	Silent bool
}

// UnreadCount is the unread notifications of one thread ("main" for the
// main timeline) of a room.
type UnreadCount struct {
	ThreadID      string
	Notifications int64
	Highlights    int64
}

// PushCounts reads unread notification counts.
// ReadMarks are a user's read positions in a room (see ReadPositions).
type ReadMarks struct {
	Read map[string]int64
	Own  int64
}

type PushCounts interface {
	// UnreadCounts counts a user's notifications in a room after their read
	// receipts (unthreaded ones and per thread) and their own last event.
	UnreadCounts(ctx context.Context, roomID id.RoomID, userID id.UserID) ([]UnreadCount, error)
	// ReadPositions are the stream positions a user has read to in a room:
	// of their read receipts' events per thread ("" for unthreaded) and of
	// their own last event (0 if none).
	ReadPositions(ctx context.Context, roomID id.RoomID, userID id.UserID) (map[string]int64, int64, error)
	// ReadPositionsIn is ReadPositions for many rooms at once (every room
	// of rooms has an entry).
	ReadPositionsIn(ctx context.Context, rooms []id.RoomID, userID id.UserID) (map[id.RoomID]ReadMarks, error)
	// PushActionCounts counts a user's notifications in a room at stream
	// positions in (after, upto], per thread; thread "" counts every thread,
	// otherwise only that one.
	PushActionCounts(ctx context.Context, roomID id.RoomID, userID id.UserID, thread string, after, upto int64) ([]UnreadCount, error)
	// PushActionCountsIn is PushActionCounts of every thread for many rooms
	// at once, each room counted after its own position (after[room]).
	// Rooms without notifications have no entry.
	PushActionCountsIn(ctx context.Context, userID id.UserID, after map[id.RoomID]int64, upto int64) (map[id.RoomID][]UnreadCount, error)
	// PushActionsBetween lists what a room's events at stream positions in
	// (after, upto] say about notifications, for every user at once: the
	// events' defaults and the users' exceptions, each by position.
	PushActionsBetween(ctx context.Context, roomID id.RoomID, after, upto int64) ([]PushDefault, []PushException, error)
}

// PushDefault is the notification every member but the event's sender gets
// from the event at StreamPos, unless they have an exception
// (EventWrite.PushDefault).
type PushDefault struct {
	StreamPos int64
	ThreadID  string
	Highlight bool
	// Sender is the event's sender, whom the default never counts for (""
	// in rows stored before it was kept: their sender has an exception).
	Sender id.UserID
}

// PushException is a user's own notification from the event at StreamPos
// (Notify false: none, though the event has a default).
type PushException struct {
	UserID    id.UserID
	StreamPos int64
	ThreadID  string
	Highlight bool
	Notify    bool
}
