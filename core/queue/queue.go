// Package queue delivers the persisted interest queues (DESIGN decision 5):
// events are queued for each interested consumer in the transaction that
// persists them (core/rooms' InterestResolvers decide who), and a Runner
// per kind of consumer hands them to the kind's Deliverer in transactions —
// in order, at least once, the same transaction (ID, events, extra) on
// every retry until the consumer acknowledges it, across restarts — and
// removes them on acknowledgement. Appservices deliver over HTTP, bridge
// plugins over a gRPC stream, federation destinations in federation
// transactions (a Dynamic runner: destinations come and go).
//
// It imports core/stream (to wake when something is queued) and the
// storage interfaces.
package queue

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/tributary-hs/tributary/core/stream"
	"github.com/tributary-hs/tributary/storage"
)

// Txn is one transaction to a consumer.
type Txn struct {
	ID int64
	// Positions are the stream positions of the queued events it carries,
	// oldest first.
	Positions []int64
	// Extra is how far along other streams it reaches (persisted with it;
	// nil: nothing else), as the Deliverer's Open decided.
	Extra []int64
	// Data is what Open computed for a new transaction (nil on a retry,
	// when the Deliverer recomputes it from Extra — but with InMemoryTxns,
	// where a retry is the same Txn). Deliver may set it for Acked.
	Data any
}

// Plan is what a new transaction carries besides its queued events.
type Plan struct {
	Extra []int64
	Data  any
}

// Deliverer sends the transactions of one kind of consumer.
type Deliverer interface {
	// Open is asked when no transaction is in flight, with the consumer's
	// queued positions (oldest first, at most the Runner's limit). A nil
	// Plan means nothing is to be sent now; more asks to be called again
	// at once (the Deliverer moved a cursor of its own and there is more).
	Open(ctx context.Context, consumer string, pending []int64) (plan *Plan, more bool, err error)
	// Deliver sends the transaction and returns nil once the consumer
	// acknowledged it. A retry has the same ID, positions and Extra.
	Deliver(ctx context.Context, consumer string, t *Txn) error
	// Acked is told after the acknowledgement is recorded.
	Acked(ctx context.Context, consumer string, t *Txn) error
}

// Options tune a Runner; zero values take the defaults.
type Options struct {
	// Limit bounds the queued events of one transaction (default 100).
	Limit int
	// FirstBackoff is the wait after a failed delivery (default 1s),
	// doubled after each further failure up to MaxBackoff (default 5m).
	// A Reachable change (or Retry) ends the wait and starts over.
	FirstBackoff time.Duration
	MaxBackoff   time.Duration
	Logger       *slog.Logger
	// Dynamic is for kinds whose consumers are not known in advance
	// (federation destinations): a Wake or Retry of a consumer without a
	// loop starts one, and a loop with nothing to send for IdleAfter
	// (default five minutes) ends.
	Dynamic   bool
	IdleAfter time.Duration
	// Resume (nil: none) is asked when a consumer's loop starts: how long
	// to wait before the first attempt and the backoff to go on from (a
	// consumer that was failing before a restart).
	Resume func(consumer string) (wait, backoff time.Duration)
	// OnFailure (nil: none) is told each failed attempt and the wait
	// before the next (the federation admin view and metrics).
	OnFailure func(consumer string, err error, retryIn time.Duration)
	// InMemoryTxns keeps the transaction in flight in memory only: it is
	// retried with the same ID, events, Extra and Data while the process
	// lives; after a restart its events go out again in a new transaction.
	// For consumers that deduplicate what they receive by its content
	// (federation: PDUs by event ID, to-device messages by message_id),
	// it spares two writes per transaction. IDs still come from the
	// persisted counter (reserved in blocks): none is ever reused.
	InMemoryTxns bool
}

// txnIDBlock is how many transaction IDs an InMemoryTxns runner reserves
// at a time.
const txnIDBlock = 1000

// Runner runs one delivery loop per consumer of a kind.
type Runner struct {
	store    storage.InterestQueues
	kind     string
	d        Deliverer
	notifier stream.Notifier
	opts     Options
	log      *slog.Logger

	// mu guards signals, ctx and stopped; a loop leaves signals (Dynamic)
	// only under it, so that a signal either reaches a loop or starts one.
	mu      sync.Mutex
	signals map[string]signals
	ctx     context.Context // of Start, for loops started later (Dynamic)
	stopped bool
	stop    context.CancelFunc
	wg      sync.WaitGroup
	// inFlight are the transactions in flight of an InMemoryTxns runner;
	// nextID..lastID the transaction IDs reserved and not yet used.
	inFlight map[string]*Txn
	idMu     sync.Mutex // guards nextID, lastID (not mu: Wake must not wait for storage)
	nextID   int64
	lastID   int64
}

// signals wake one consumer's loop: wake when there may be something to
// send, retry when the consumer is reachable again.
type signals struct{ wake, retry chan struct{} }

// New builds the runner of a kind of consumer; n (nil: none) wakes it when
// a commit queued something for one of its consumers.
func New(store storage.InterestQueues, kind string, d Deliverer, n stream.Notifier, opts Options) (*Runner, error) {
	if store == nil || kind == "" || d == nil {
		return nil, errors.New("queue: store, kind and deliverer are required")
	}
	if opts.Limit <= 0 {
		opts.Limit = 100
	}
	if opts.FirstBackoff <= 0 {
		opts.FirstBackoff = time.Second
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = 5 * time.Minute
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.IdleAfter <= 0 {
		opts.IdleAfter = 5 * time.Minute
	}
	return &Runner{store: store, kind: kind, d: d, notifier: n, opts: opts, log: opts.Logger,
		signals: map[string]signals{}, inFlight: map[string]*Txn{}}, nil
}

// Start runs the consumers' loops, each resuming what it has queued or in
// flight from before.
func (r *Runner) Start(ctx context.Context, consumers []string) {
	ctx, r.stop = context.WithCancel(ctx)
	r.mu.Lock()
	r.ctx = ctx
	for _, c := range consumers {
		if _, ok := r.signals[c]; !ok {
			r.startLocked(c)
		}
	}
	r.mu.Unlock()
	if r.notifier != nil {
		r.notifier.Observe(r.observe)
	}
}

// Stop ends delivery; what is queued stays queued.
func (r *Runner) Stop() {
	r.mu.Lock()
	r.stopped = true
	r.mu.Unlock()
	if r.stop != nil {
		r.stop()
		r.wg.Wait()
	}
}

// startLocked starts a consumer's loop (r.mu held).
func (r *Runner) startLocked(consumer string) signals {
	s := signals{wake: make(chan struct{}, 1), retry: make(chan struct{}, 1)}
	r.signals[consumer] = s
	r.wg.Add(1)
	go r.loop(r.ctx, consumer, s)
	return s
}

// Running lists the consumers whose loops run.
func (r *Runner) Running() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]string, 0, len(r.signals))
	for c := range r.signals {
		out = append(out, c)
	}
	return out
}

// observe wakes the consumers a change queued events for, and retries the
// ones it says are reachable again.
func (r *Runner) observe(c stream.Change) {
	for _, q := range c.Queued {
		if q.Kind != r.kind {
			continue
		}
		switch c.Stream {
		case stream.Unreachable:
		case stream.Reachable:
			r.Retry(q.ID)
		default:
			r.Wake(q.ID)
		}
	}
}

// Wake tells consumers' loops there may be something to send (the
// Deliverer's own news, such as ephemeral data).
func (r *Runner) Wake(consumers ...string) {
	r.signal(consumers, func(s signals) chan struct{} { return s.wake })
}

// Retry tells consumers' loops that their consumers are reachable again:
// a consumer waiting after failed deliveries is retried at once, and its
// backoff starts over. Other processes ask through a Reachable change.
func (r *Runner) Retry(consumers ...string) {
	r.signal(consumers, func(s signals) chan struct{} { return s.retry })
}

func (r *Runner) signal(consumers []string, which func(signals) chan struct{}) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range consumers {
		s, ok := r.signals[c]
		if !ok {
			if !r.opts.Dynamic || r.ctx == nil || r.stopped {
				continue
			}
			s = r.startLocked(c)
		}
		select {
		case which(s) <- struct{}{}:
		default:
		}
	}
}

// retire ends an idle loop of a Dynamic runner unless a signal came
// meanwhile; false means the loop goes on.
func (r *Runner) retire(consumer string, s signals) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(s.wake) > 0 || len(s.retry) > 0 {
		return false
	}
	delete(r.signals, consumer)
	return true
}

func (r *Runner) loop(ctx context.Context, consumer string, s signals) {
	defer r.wg.Done()
	backoff := time.Duration(0)
	if r.opts.Resume != nil {
		wait, last := r.opts.Resume(consumer)
		backoff = min(last, r.opts.MaxBackoff)
		if wait > 0 {
			select {
			case <-ctx.Done():
				return
			case <-s.retry:
				backoff = 0
			case <-time.After(min(wait, r.opts.MaxBackoff)):
			}
		}
	}
	for {
		more, err := r.Step(ctx, consumer)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			backoff = min(max(2*backoff, r.opts.FirstBackoff), r.opts.MaxBackoff)
			if r.opts.OnFailure != nil {
				r.opts.OnFailure(consumer, err, backoff)
			}
			if r.notifier != nil {
				// Whoever hears from the consumer again (its requests may
				// reach another process) tells the Runner with Reachable.
				r.notifier.Publish(stream.Change{Stream: stream.Unreachable,
					Queued: []stream.Consumer{{Kind: r.kind, ID: consumer}}})
			}
			r.log.Warn("delivery failed", "kind", r.kind, "consumer", consumer, "retry_in", backoff, "err", err)
		case more:
			backoff = 0
			continue // maybe more is queued
		default:
			backoff = 0
		}
		var timer, idle <-chan time.Time
		if backoff > 0 {
			timer = time.After(backoff)
		} else if r.opts.Dynamic {
			idle = time.After(r.opts.IdleAfter)
		}
		select {
		case <-ctx.Done():
			return
		case <-idle:
			if r.retire(consumer, s) {
				return
			}
		case <-s.retry:
			backoff = 0
		case <-s.wake:
			if backoff > 0 {
				// A failing consumer is retried on its schedule, not on
				// every event, unless it shows it is back.
				select {
				case <-timer:
				case <-s.retry:
					backoff = 0
				case <-ctx.Done():
					return
				}
			}
		case <-timer:
		}
	}
}

// Step sends the consumer's transaction in flight, or opens one from its
// queue; it reports whether there may be more to send.
func (r *Runner) Step(ctx context.Context, consumer string) (bool, error) {
	if r.opts.InMemoryTxns {
		return r.stepInMemory(ctx, consumer)
	}
	c := storage.Consumer{Kind: r.kind, ID: consumer}
	var t *Txn
	stored, err := r.store.TxnInFlight(ctx, c)
	switch {
	case errors.Is(err, storage.ErrNotFound):
		pending, err := r.store.PendingFor(ctx, c, r.opts.Limit)
		if err != nil {
			return false, err
		}
		plan, more, err := r.d.Open(ctx, consumer, pending)
		if err != nil || plan == nil {
			return more, err
		}
		var lastPos int64
		if len(pending) > 0 {
			lastPos = pending[len(pending)-1]
		}
		if stored, err = r.store.OpenTxn(ctx, c, lastPos, plan.Extra); err != nil {
			return false, err
		}
		t = &Txn{ID: stored.TxnID, Positions: pending, Extra: plan.Extra, Data: plan.Data}
	case err != nil:
		return false, err
	default:
		// A retry: the queue up to the transaction's last position.
		t = &Txn{ID: stored.TxnID, Extra: stored.Extra}
		if stored.LastPos > 0 {
			positions, err := r.store.PendingFor(ctx, c, r.opts.Limit)
			if err != nil {
				return false, err
			}
			for _, pos := range positions {
				if pos <= stored.LastPos {
					t.Positions = append(t.Positions, pos)
				}
			}
		}
	}
	if err := r.d.Deliver(ctx, consumer, t); err != nil {
		return false, err
	}
	if err := r.store.AckTxn(ctx, stored); err != nil {
		return false, err
	}
	return true, r.d.Acked(ctx, consumer, t)
}

// stepInMemory is Step with the transaction in flight kept in memory.
func (r *Runner) stepInMemory(ctx context.Context, consumer string) (bool, error) {
	c := storage.Consumer{Kind: r.kind, ID: consumer}
	r.mu.Lock()
	t := r.inFlight[consumer]
	r.mu.Unlock()
	if t == nil {
		pending, err := r.store.PendingFor(ctx, c, r.opts.Limit)
		if err != nil {
			return false, err
		}
		plan, more, err := r.d.Open(ctx, consumer, pending)
		if err != nil || plan == nil {
			return more, err
		}
		txnID, err := r.takeTxnID(ctx)
		if err != nil {
			return false, err
		}
		t = &Txn{ID: txnID, Positions: pending, Extra: plan.Extra, Data: plan.Data}
		r.mu.Lock()
		r.inFlight[consumer] = t
		r.mu.Unlock()
	}
	if err := r.d.Deliver(ctx, consumer, t); err != nil {
		return false, err
	}
	ack := &storage.QueueTxn{Consumer: c, TxnID: t.ID, Extra: t.Extra}
	if len(t.Positions) > 0 {
		ack.LastPos = t.Positions[len(t.Positions)-1]
	}
	if err := r.store.AckTxn(ctx, ack); err != nil {
		return false, err
	}
	r.mu.Lock()
	delete(r.inFlight, consumer)
	r.mu.Unlock()
	return true, r.d.Acked(ctx, consumer, t)
}

// takeTxnID hands out the next reserved transaction ID.
func (r *Runner) takeTxnID(ctx context.Context) (int64, error) {
	r.idMu.Lock()
	defer r.idMu.Unlock()
	if r.nextID == 0 || r.nextID > r.lastID {
		first, err := r.store.ReserveTxnIDs(ctx, r.kind, txnIDBlock)
		if err != nil {
			return 0, err
		}
		r.nextID, r.lastID = first, first+txnIDBlock-1
	}
	id := r.nextID
	r.nextID++
	return id, nil
}
