package outbound

import (
	"context"

	"github.com/tributary-hs/tributary/storage"
)

// maxAckBatch bounds the acknowledgements written in one transaction.
const maxAckBatch = 128

// batchedAcks is the interest queue store of the sender's runner, with
// acknowledgements written together: an event goes to every server in its
// room, whose queues are acknowledged at nearly the same moment, and one
// commit for all of them (group commit) spares the database — SQLite has a
// single writer — a commit per destination. An acknowledgement waits for
// none: the first to come is written at once with whatever else is
// waiting, the next ones while it is written are written next, together.
type batchedAcks struct {
	Store
	acks chan ackReq
}

type ackReq struct {
	t    *storage.QueueTxn
	done chan error
}

func newBatchedAcks(store Store) *batchedAcks {
	return &batchedAcks{Store: store, acks: make(chan ackReq, maxAckBatch)}
}

// run writes acknowledgements until ctx ends.
func (b *batchedAcks) run(ctx context.Context) {
	for {
		var batch []ackReq
		select {
		case <-ctx.Done():
			return
		case r := <-b.acks:
			batch = append(batch, r)
		}
	more:
		for len(batch) < maxAckBatch {
			select {
			case r := <-b.acks:
				batch = append(batch, r)
			default:
				break more
			}
		}
		err := b.Store.WithTx(ctx, func(tctx context.Context) error {
			for _, r := range batch {
				if err := b.Store.AckTxn(tctx, r.t); err != nil {
					return err
				}
			}
			return nil
		})
		for _, r := range batch {
			r.done <- err
		}
	}
}

// AckTxn implements storage.InterestQueues, through the batch.
func (b *batchedAcks) AckTxn(ctx context.Context, t *storage.QueueTxn) error {
	r := ackReq{t: t, done: make(chan error, 1)}
	select {
	case b.acks <- r:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-r.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}
