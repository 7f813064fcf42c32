package storage

import "context"

// AppServiceTxn is the transaction in flight to an appservice.
type AppServiceTxn struct {
	AppServiceID string
	TxnID        int64
	// LastPos is the stream position of its last event.
	LastPos int64
	// Ephemeral is how far along each ephemeral stream (indexed as
	// core/stream's positions) the transaction reaches; nil when it carries
	// no ephemeral data. Acknowledging the transaction moves the
	// appservice's cursor there.
	Ephemeral []int64
}

// AppServiceQueues stores what appservices are yet to receive.
type AppServiceQueues interface {
	// PendingForAppService lists queued stream positions, oldest first.
	PendingForAppService(ctx context.Context, asID string, limit int) ([]int64, error)
	// TxnInFlight returns the appservice's open transaction; ErrNotFound if none.
	TxnInFlight(ctx context.Context, asID string) (*AppServiceTxn, error)
	// OpenTxn records a new transaction covering the queue up to lastPos and
	// the ephemeral streams up to ephemeral (nil: none).
	OpenTxn(ctx context.Context, asID string, lastPos int64, ephemeral []int64) (*AppServiceTxn, error)
	// AckTxn removes the transaction and its events from the queue, and moves
	// the appservice's cursor to its Ephemeral positions (if any).
	AckTxn(ctx context.Context, t *AppServiceTxn) error
	// AppServiceCursor is how far along the ephemeral streams the appservice
	// has acknowledged; ErrNotFound before the first SetAppServiceCursor.
	AppServiceCursor(ctx context.Context, asID string) ([]int64, error)
	// SetAppServiceCursor moves the appservice's ephemeral cursor.
	SetAppServiceCursor(ctx context.Context, asID string, positions []int64) error
}

// ListedRoom is a room an appservice publishes in one of its networks'
// room lists.
type ListedRoom struct {
	AppServiceID string
	NetworkID    string
	RoomID       string
}

// AppServiceRoomLists stores appservices' per-network room lists.
type AppServiceRoomLists interface {
	SetAppServiceRoomListed(ctx context.Context, r ListedRoom, listed bool) error
	AppServiceListedRooms(ctx context.Context) ([]ListedRoom, error)
}
