package outbound

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/tributary-hs/tributary/core/stream"
	"github.com/tributary-hs/tributary/core/types"
	"github.com/tributary-hs/tributary/storage"
)

// destinations keeps what is known of sending to each destination: in
// memory for the metrics and Contacted, in federation_destinations for the
// admin API and for Resume after a restart. A failure is written at once
// (it is rare and decides the backoff after a restart); a success only
// when it ends a failure, else at most once a second (flushLoop), since a
// busy destination acknowledges many transactions a second.
type destinations struct {
	store    Store
	notifier stream.Notifier
	log      *slog.Logger

	mu sync.Mutex
	m  map[string]*destState
	// writeMu orders the writes of a success and a failure: a success
	// noted before a failure is written before it, never after (it would
	// clear the backoff).
	writeMu sync.Mutex
}

type destState struct {
	// failing: the last attempt failed (here or, per Unreachable, in
	// another process); failures counts the attempts failed in a row.
	failing  bool
	failures int
	// failingSince is when the failures in a row began (zero: unknown).
	failingSince time.Time
	// lastSuccess is when a transaction was last acknowledged here;
	// dirty, with lastPos, is a success not yet written.
	lastSuccess time.Time
	lastPos     int64
	dirty       bool
}

func newDestinations(store Store, n stream.Notifier, log *slog.Logger) *destinations {
	return &destinations{store: store, notifier: n, log: log, m: map[string]*destState{}}
}

func (d *destinations) stateLocked(dest string) *destState {
	st := d.m[dest]
	if st == nil {
		st = &destState{}
		d.m[dest] = st
	}
	return st
}

// resume is core/queue's Resume: a destination that was being backed off
// before a restart waits out the rest of its interval, then goes on
// doubling it.
func (d *destinations) resume(dest string) (wait, backoff time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rec, err := d.store.GetDestination(ctx, dest)
	if err != nil {
		if !errors.Is(err, storage.ErrNotFound) {
			d.log.Warn("federation: reading a destination's backoff", "destination", dest, "err", err)
		}
		return 0, 0
	}
	if rec.RetryLastTS == 0 {
		return 0, 0
	}
	d.mu.Lock()
	st := d.stateLocked(dest)
	st.failing = true
	if rec.FailureTS > 0 {
		st.failingSince = time.UnixMilli(rec.FailureTS)
	}
	d.mu.Unlock()
	until := time.UnixMilli(rec.RetryLastTS + rec.RetryInterval)
	return max(0, time.Until(until)), time.Duration(rec.RetryInterval) * time.Millisecond
}

// failed records a failed attempt; it returns since when the destination
// has been failing.
func (d *destinations) failed(dest string, retryIn time.Duration) time.Time {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	d.writeMu.Lock()
	defer d.writeMu.Unlock()
	d.flushLocked(ctx, dest)
	d.mu.Lock()
	st := d.stateLocked(dest)
	st.failing = true
	st.failures++
	if st.failingSince.IsZero() {
		st.failingSince = time.Now()
	}
	since := st.failingSince
	d.mu.Unlock()
	if err := d.store.DestinationFailed(ctx, dest, time.Now().UnixMilli(), retryIn.Milliseconds()); err != nil {
		d.log.Warn("federation: recording a failed transaction", "destination", dest, "err", err)
	}
	return since
}

// sent records an acknowledged transaction (lastPos: its last event, 0
// for none).
func (d *destinations) sent(dest string, lastPos int64) {
	d.mu.Lock()
	st := d.stateLocked(dest)
	wasFailing := st.failing || st.failures > 0
	st.failing, st.failures, st.failingSince = false, 0, time.Time{}
	st.lastSuccess = time.Now()
	st.lastPos = max(st.lastPos, lastPos)
	st.dirty = true
	d.mu.Unlock()
	if wasFailing {
		d.flushOne(context.Background(), dest)
	}
}

func (d *destinations) setFailing(dest string, failing bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	st := d.stateLocked(dest)
	st.failing = failing
	if !failing {
		st.failures, st.failingSince = 0, time.Time{}
	}
}

func (d *destinations) isFailing(dest string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	st := d.m[dest]
	return st != nil && st.failing
}

// flushOne writes a destination's unwritten success.
func (d *destinations) flushOne(ctx context.Context, dest string) {
	d.writeMu.Lock()
	defer d.writeMu.Unlock()
	d.flushLocked(ctx, dest)
}

// flushLocked is flushOne with writeMu held.
func (d *destinations) flushLocked(ctx context.Context, dest string) {
	d.mu.Lock()
	st := d.m[dest]
	if st == nil || !st.dirty {
		d.mu.Unlock()
		return
	}
	st.dirty = false
	pos, at := st.lastPos, st.lastSuccess.UnixMilli()
	d.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := d.store.DestinationSent(ctx, dest, pos, at); err != nil {
		d.log.Warn("federation: recording a sent transaction", "destination", dest, "err", err)
	}
}

// flush writes every unwritten success.
func (d *destinations) flush(ctx context.Context) {
	d.mu.Lock()
	var dirty []string
	for dest, st := range d.m {
		if st.dirty {
			dirty = append(dirty, dest)
		}
	}
	d.mu.Unlock()
	for _, dest := range dirty {
		d.flushOne(ctx, dest)
	}
}

func (d *destinations) flushLoop(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			d.flush(ctx)
		}
	}
}

// snapshot copies the in-memory state (metrics).
func (d *destinations) snapshot() map[string]destState {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make(map[string]destState, len(d.m))
	for k, v := range d.m {
		out[k] = *v
	}
	return out
}

// ListDestinations pages through the destinations this server has sent
// to (the admin API).
func (s *Sender) ListDestinations(ctx context.Context, q storage.DestinationQuery) ([]*storage.Destination, int, error) {
	s.dests.flush(ctx)
	return s.store.ListDestinations(ctx, q)
}

// Destination is one destination (the admin API); M_NOT_FOUND if this
// server never sent to it.
func (s *Sender) Destination(ctx context.Context, name string) (*storage.Destination, error) {
	s.dests.flush(ctx)
	d, err := s.store.GetDestination(ctx, name)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, types.NotFound("Unknown destination")
	}
	return d, err
}

// ResetConnection ends a destination's backoff and retries it at once, in
// whichever process sends to it (the admin API's reset_connection):
// M_NOT_FOUND for an unknown destination, 400 when it is not being backed
// off (Synapse's answers).
func (s *Sender) ResetConnection(ctx context.Context, name string) error {
	d, err := s.Destination(ctx, name)
	if err != nil {
		return err
	}
	if d.RetryLastTS == 0 {
		return types.NewError(http.StatusBadRequest, types.CodeUnknown, "The retry timing does not need to be reset for a destination.")
	}
	if err := s.store.ResetDestination(ctx, name); err != nil {
		return err
	}
	s.notifier.Publish(stream.Change{Stream: stream.Reachable,
		Queued: []stream.Consumer{{Kind: stream.KindFederation, ID: name}}})
	return nil
}
