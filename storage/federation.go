package storage

import (
	"context"

	"maunium.net/go/mautrix/id"
)

// Destination is what this server knows of sending to another server
// (federation/outbound): Synapse's destinations table, which its admin API
// shows. Times are milliseconds since the epoch.
type Destination struct {
	Destination string
	// RetryLastTS is when the last failed attempt was made (0: the
	// destination is not being backed off); RetryInterval the wait after
	// it (ms).
	RetryLastTS   int64
	RetryInterval int64
	// FailureTS is when the destination began failing (0: it is not).
	FailureTS int64
	// LastSuccessPos is the stream position of the last event the
	// destination acknowledged (0: none yet); LastSuccessTS when it last
	// acknowledged a transaction.
	LastSuccessPos int64
	LastSuccessTS  int64
}

// DestinationOrder is a column destinations are listed by.
type DestinationOrder string

// The orders of ListDestinations (Synapse's order_by values).
const (
	OrderDestination    DestinationOrder = "destination"
	OrderRetryLastTS    DestinationOrder = "retry_last_ts"
	OrderRetryInterval  DestinationOrder = "retry_interval"
	OrderFailureTS      DestinationOrder = "failure_ts"
	OrderLastSuccessPos DestinationOrder = "last_successful_stream_ordering"
)

// DestinationQuery pages through destinations.
type DestinationQuery struct {
	// Search keeps destinations whose name contains it ("" keeps all).
	Search  string
	OrderBy DestinationOrder
	// Backwards sorts in descending order.
	Backwards bool
	From      int
	Limit     int
}

// DeviceListChange is one row of the device-list stream: a change of one
// device of a user, or of the user's cross-signing keys (DeviceID "").
type DeviceListChange struct {
	StreamPos int64
	UserID    id.UserID
	DeviceID  id.DeviceID
}

// Federation stores the state of sending to other servers.
type Federation interface {
	// DestinationSent records a transaction the destination acknowledged:
	// its backoff ends, and lastPos (0: the transaction held no events)
	// becomes its last acknowledged event.
	DestinationSent(ctx context.Context, destination string, lastPos, now int64) error
	// DestinationFailed records a failed attempt and the wait before the
	// next (ms); the failure began at now unless it had already.
	DestinationFailed(ctx context.Context, destination string, now, retryInterval int64) error
	// CatchUpQueue shortens the queue of a destination (c.ID) that has been
	// unreachable for long: of each room's queued events only the latest is
	// kept, and the membership events whose state key is a user of the
	// destination (an invite or a ban of its user in a room it is not in
	// cannot be fetched later). It returns how many events it removed.
	CatchUpQueue(ctx context.Context, c Consumer) (int64, error)
	// ResetDestination ends a destination's backoff; ErrNotFound if it is
	// unknown.
	ResetDestination(ctx context.Context, destination string) error
	// GetDestination returns one destination; ErrNotFound if unknown.
	GetDestination(ctx context.Context, destination string) (*Destination, error)
	// ListDestinations returns a page of destinations and how many match.
	ListDestinations(ctx context.Context, q DestinationQuery) ([]*Destination, int, error)
	// QueueConsumers lists the consumers of a kind with queued events, a
	// transaction in flight or a cursor (every one delivered to before).
	QueueConsumers(ctx context.Context, kind string) ([]string, error)
	// QueueDepths counts each consumer's queued events, for the largest
	// limit queues, with the total of all of the kind.
	QueueDepths(ctx context.Context, kind string, limit int) (map[string]int64, int64, error)
	// ToDeviceForServer lists the to-device messages in (since, upto] for
	// users of server, oldest first, at most limit.
	ToDeviceForServer(ctx context.Context, server string, since, upto int64, limit int) ([]*ToDeviceMessage, error)
	// DeviceListChangesRange lists the device-list rows in (since, upto],
	// oldest first, at most limit.
	DeviceListChangesRange(ctx context.Context, since, upto int64, limit int) ([]*DeviceListChange, error)
	// PrevDeviceChange is the position of the user's last device change
	// (a row with a device) before pos; 0 if none.
	PrevDeviceChange(ctx context.Context, user id.UserID, before int64) (int64, error)
}
