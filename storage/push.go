package storage

import "context"

// PushAction is a notification an event gives a user.
type PushAction struct {
	UserID    string
	ThreadID  string // "main" for the main timeline, else the thread root
	Highlight bool
}

// UnreadCount is the unread notifications of one thread ("main" for the
// main timeline) of a room.
type UnreadCount struct {
	ThreadID      string
	Notifications int64
	Highlights    int64
}

// PushCounts reads unread notification counts.
type PushCounts interface {
	// UnreadCounts counts a user's notifications in a room after their read
	// receipts (unthreaded ones and per thread) and their own last event.
	UnreadCounts(ctx context.Context, roomID, userID string) ([]UnreadCount, error)
}
