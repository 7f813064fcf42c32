package storage

import (
	"context"
	"encoding/json"

	"maunium.net/go/mautrix/id"
)

// DelayedEvent is an event a local user scheduled (MSC4140): sent as them
// at SendTS unless cancelled or restarted first.
type DelayedEvent struct {
	DelayID  string
	UserID   id.UserID
	DeviceID id.DeviceID
	RoomID   id.RoomID
	Type     string
	StateKey *string // nil for a message event
	Content  json.RawMessage
	// DelayMS is the delay asked for; RunningSince is when it last started
	// (scheduled or restarted), SendTS = RunningSince + DelayMS, all in ms.
	DelayMS      int64
	RunningSince int64
	SendTS       int64
	// StreamPos is the event stream's position when it was scheduled.
	StreamPos int64
	// TxnKey ("" for none) is the scheduling request's device-scoped
	// transaction: the same key again answers the same delayed event.
	TxnKey string
}

// DelayedEvents stores scheduled delayed events.
type DelayedEvents interface {
	// AddDelayedEvent stores e, its StreamPos filled in, unless the user's
	// device has one with the same TxnKey, which it returns instead.
	AddDelayedEvent(ctx context.Context, e *DelayedEvent) (existing *DelayedEvent, err error)
	// CountDelayedEvents counts a user's pending delayed events.
	CountDelayedEvents(ctx context.Context, user id.UserID) (int, error)
	// GetDelayedEvent reads one; ErrNotFound if there is none.
	GetDelayedEvent(ctx context.Context, delayID string) (*DelayedEvent, error)
	// ListDelayedEvents lists a user's pending delayed events by delay ID,
	// those after the ID from ("" from the first), at most limit.
	ListDelayedEvents(ctx context.Context, user id.UserID, from string, limit int) ([]*DelayedEvent, error)
	// RestartDelayedEvent sets its RunningSince to now; ErrNotFound if none.
	RestartDelayedEvent(ctx context.Context, delayID string, now int64) error
	// DeleteDelayedEvent removes it; ErrNotFound if there was none.
	DeleteDelayedEvent(ctx context.Context, delayID string) error
	// DueDelayedEvents lists those whose SendTS is at or before now, the
	// earliest first, at most limit.
	DueDelayedEvents(ctx context.Context, now int64, limit int) ([]*DelayedEvent, error)
	// NextDelayedEventTS is the earliest SendTS of all; ok false if none.
	NextDelayedEventTS(ctx context.Context) (ts int64, ok bool, err error)
	// CancelOverriddenDelayedState deletes the delayed state events of a
	// room for which another sender set the same state (type and state
	// key) after they were scheduled, and returns how many it deleted.
	CancelOverriddenDelayedState(ctx context.Context, roomID id.RoomID) (int64, error)
	// DelayedStateRooms are the rooms with delayed state events pending.
	DelayedStateRooms(ctx context.Context) ([]id.RoomID, error)
}

// ThreadSubscription is a user's subscription to a thread (MSC4306), or
// their unsubscription from it (Subscribed false).
type ThreadSubscription struct {
	UserID     id.UserID
	RoomID     id.RoomID
	RootID     id.EventID
	Subscribed bool
	Automatic  bool
	// UnsubscribedAt is the event stream position of the last
	// unsubscription (0: never unsubscribed).
	UnsubscribedAt int64
}

// ThreadSubscriptions stores thread subscriptions.
type ThreadSubscriptions interface {
	// GetThreadSubscription reads one; ErrNotFound if there is none.
	GetThreadSubscription(ctx context.Context, user id.UserID, roomID id.RoomID, root id.EventID) (*ThreadSubscription, error)
	// PutThreadSubscription creates or replaces one.
	PutThreadSubscription(ctx context.Context, s *ThreadSubscription) error
	// ThreadSubscribers are the users subscribed to a thread.
	ThreadSubscribers(ctx context.Context, roomID id.RoomID, root id.EventID) ([]id.UserID, error)
}
