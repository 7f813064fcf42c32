package storage

import "context"

// AppServiceTxn is the transaction in flight to an appservice.
type AppServiceTxn struct {
	AppServiceID string
	TxnID        int64
	// LastPos is the stream position of its last event.
	LastPos int64
}

// AppServiceQueues stores what appservices are yet to receive.
type AppServiceQueues interface {
	// PendingForAppService lists queued stream positions, oldest first.
	PendingForAppService(ctx context.Context, asID string, limit int) ([]int64, error)
	// TxnInFlight returns the appservice's open transaction; ErrNotFound if none.
	TxnInFlight(ctx context.Context, asID string) (*AppServiceTxn, error)
	// OpenTxn records a new transaction covering the queue up to lastPos.
	OpenTxn(ctx context.Context, asID string, lastPos int64) (*AppServiceTxn, error)
	// AckTxn removes the transaction and its events from the queue.
	AckTxn(ctx context.Context, t *AppServiceTxn) error
}
