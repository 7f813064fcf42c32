package storage

import "context"

// Consumer names one persisted interest queue: the kind of consumer
// (appservice now; federation destinations and bridge plugins next) and
// which one of that kind.
type Consumer struct {
	Kind string
	ID   string
}

// QueueTxn is the transaction in flight to a consumer: a retry carries the
// same ID, the same queued events and the same Extra.
type QueueTxn struct {
	Consumer Consumer
	TxnID    int64
	// LastPos is the stream position of its last queued event (0: none).
	LastPos int64
	// Extra is how far along other streams the transaction reaches (an
	// appservice's ephemeral streams, indexed as core/stream's positions);
	// nil when it carries nothing else. Acknowledging the transaction moves
	// the consumer's cursor there.
	Extra []int64
}

// InterestQueues store what each consumer is yet to receive. Events are
// queued in the transaction that persists them (EventWrite.Queued),
// delivered in order at least once, and removed on acknowledgement.
type InterestQueues interface {
	// PendingFor lists the consumer's queued stream positions, oldest first.
	PendingFor(ctx context.Context, c Consumer, limit int) ([]int64, error)
	// TxnInFlight returns the consumer's open transaction; ErrNotFound if none.
	TxnInFlight(ctx context.Context, c Consumer) (*QueueTxn, error)
	// OpenTxn records a new transaction covering the queue up to lastPos and
	// the other streams up to extra (nil: none). Transaction IDs grow per kind.
	OpenTxn(ctx context.Context, c Consumer, lastPos int64, extra []int64) (*QueueTxn, error)
	// AckTxn removes the transaction and its events from the queue, and moves
	// the consumer's cursor to its Extra positions (if any). A transaction
	// never recorded with OpenTxn (its ID from ReserveTxnIDs) is acknowledged
	// alike.
	AckTxn(ctx context.Context, t *QueueTxn) error
	// ReserveTxnIDs takes n transaction IDs of a kind, from the counter
	// OpenTxn draws from, and returns the first: transactions kept in
	// memory only never reuse an ID either.
	ReserveTxnIDs(ctx context.Context, kind string, n int64) (int64, error)
	// QueueCursor is how far along the other streams the consumer has
	// acknowledged; ErrNotFound before the first SetQueueCursor.
	QueueCursor(ctx context.Context, c Consumer) ([]int64, error)
	// SetQueueCursor moves the consumer's cursor.
	SetQueueCursor(ctx context.Context, c Consumer, positions []int64) error
}
