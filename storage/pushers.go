package storage

import (
	"context"
	"encoding/json"

	"maunium.net/go/mautrix/id"
)

// Pusher is where a user's notifications go (POST /pushers/set). A user
// has at most one per (AppID, PushKey).
type Pusher struct {
	PusherID int64
	UserID   id.UserID
	// DeviceID is the device whose access token set the pusher ("" for an
	// appservice's): it goes when the device is deleted (logged out).
	DeviceID          id.DeviceID
	Kind              string
	AppID             string
	PushKey           string
	AppDisplayName    string
	DeviceDisplayName string
	ProfileTag        string
	Lang              string
	// Data is the pusher's data object as the client gave it (with url).
	Data json.RawMessage
	// PushKeyTS is when the pushkey was last set, ms since the epoch.
	PushKeyTS int64
}

// PushQueued is an event's notification of one user, queued for each of
// their HTTP pushers with the event (EventWrite.PushQueue).
type PushQueued struct {
	UserID id.UserID
	// Tweaks are the set_tweak actions of the rule that notified (JSON object).
	Tweaks json.RawMessage
	// QueuedAt is when, ms since the epoch.
	QueuedAt int64
}

// PushDelivery is a queued notification of an event to one pusher.
type PushDelivery struct {
	Pusher    Pusher
	StreamPos int64
	Tweaks    json.RawMessage
	// Attempts failed so far.
	Attempts int64
}

// Notification is an event that notified a user (GET /notifications).
type Notification struct {
	RoomID    id.RoomID
	StreamPos int64
	ThreadID  string
	Highlight bool
}

// Pushers stores pushers, their delivery queue and lists notifications.
// Deleting a device deletes its pushers; deactivating an account deletes
// all of the user's.
type Pushers interface {
	// SetPusher creates the user's pusher for (AppID, PushKey) or replaces
	// it (keeping its ID and queue); PusherID is filled in. Unless
	// keepOthers, other users' pushers with the same app ID and pushkey are
	// deleted (the spec's append: false).
	SetPusher(ctx context.Context, p *Pusher, keepOthers bool) error
	// DeletePusher deletes the user's pusher for (appID, pushKey) and its
	// queue; no error if there is none.
	DeletePusher(ctx context.Context, userID id.UserID, appID, pushKey string) error
	// DeletePusherByID deletes a pusher and its queue; no error if it is gone.
	DeletePusherByID(ctx context.Context, pusherID int64) error
	// ListPushers lists the user's pushers by creation.
	ListPushers(ctx context.Context, userID id.UserID) ([]*Pusher, error)
	// UsersWithPushers lists the users with at least one pusher of kind.
	UsersWithPushers(ctx context.Context, kind string) ([]id.UserID, error)

	// DuePushDeliveries lists deliveries whose next attempt is due at now,
	// oldest event first, at most limit.
	DuePushDeliveries(ctx context.Context, now int64, limit int) ([]*PushDelivery, error)
	// NextPushAttempt is the earliest next attempt of a queued delivery;
	// false if the queue is empty.
	NextPushAttempt(ctx context.Context) (int64, bool, error)
	// AckPushDelivery removes a delivery from the queue.
	AckPushDelivery(ctx context.Context, pusherID, streamPos int64) error
	// RetryPushDelivery records a failed attempt at the delivery and holds
	// back every delivery of its pusher until nextAttempt (ms).
	RetryPushDelivery(ctx context.Context, pusherID, streamPos, nextAttempt int64) error

	// Notifications lists a user's notifications before stream position
	// before (exclusive), newest first: the defaults of the rooms they are
	// joined to, after their join, they have no push action of their own
	// for, and their own push actions that notify. onlyHighlight keeps the
	// highlights.
	Notifications(ctx context.Context, userID id.UserID, before int64, limit int, onlyHighlight bool) ([]Notification, error)
}
