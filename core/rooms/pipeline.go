package rooms

import (
	"context"
	"errors"
	"time"

	"maunium.net/go/mautrix/federation/pdu"
	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/storage"
)

// A room's sends go through its writer as a two-stage pipeline: while one
// batch is being stored (its transaction committed off the writer's
// goroutine), the writer builds, authorises and starts signing the next
// one on top of it, so that the commit of batch N and the building of
// batch N+1 overlap instead of taking turns.
//
// At most one batch is in flight. Its changes are in the writer's room
// state (rs) from the moment it leaves, so the next batch follows it: its
// prev events, depth, state and state group. That batch is handed to
// storage only once the one in flight has committed; if that one failed,
// the state it left in memory is dropped and the batch built on it is
// thrown away before anything of it is stored, and its requests are built
// again on the state reloaded from storage. A sender is answered only
// after its event's transaction has committed, so nothing acknowledged is
// ever lost, and nothing stored ever follows an event that was not.

// flight is a batch of sends handed to storage.
type flight struct {
	b        *batchState
	writes   []*storage.EventWrite
	built    []*pdu.PDU
	accepted []*sendReq
	txns     map[committedTxn]id.EventID
	signer   *batchSigner
	// retries are later requests repeating one of txns: they get its
	// event when the batch has committed.
	retries []*sendReq
	err     error // set before done is closed
	done    chan struct{}
}

// landed is closed when the flight's transaction has ended (nil: no
// flight, which never fires in a select).
func (f *flight) landed() <-chan struct{} {
	if f == nil {
		return nil
	}
	return f.done
}

// process builds a batch of single sends on the room's state and hands it
// to storage; the senders are answered when it has committed.
func (w *roomWriter) process(batch []*sendReq) {
	s := w.svc
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if w.stale.Load() {
		// Another process wrote to the room: reload after what is in flight.
		w.settle()
	}
	if err := w.loadState(ctx); err != nil {
		for _, r := range batch {
			r.done <- sendResult{err: err}
		}
		return
	}
	prev := w.flight
	b := newBatch(w.rs)
	// Behind a batch in flight, events are signed by other goroutines
	// while the writer goes on (memberships at once: see prepare); with
	// none, the batch is stored as soon as it is built, and signing it in
	// line spares a lone send the hand-offs.
	b.deferSign = prev != nil
	if prev != nil {
		// The batch in flight is not stored yet: its events are found here.
		for _, ev := range prev.built {
			eid := ev.InternalMeta.EventID
			b.pending[eid] = ev
			if raw, ok := prev.b.pendingRaw[eid]; ok {
				b.pendingRaw[eid] = raw
			}
		}
	}
	f := &flight{b: b, txns: map[committedTxn]id.EventID{}, signer: &batchSigner{s: s}, done: make(chan struct{})}
	for _, r := range batch {
		w.add(ctx, f, prev, r)
	}
	// Until the batch in flight has committed, sends arriving join this
	// one: the next commit carries all that came meanwhile, not only what
	// had come when the writer looked.
	for taken := len(batch); prev != nil && taken < maxBatch; taken++ {
		var r *sendReq
		select {
		case <-prev.done:
		case r = <-w.reqs:
		}
		if r == nil {
			break
		}
		if !r.single() {
			w.next = r // served after this batch (run)
			break
		}
		w.add(ctx, f, prev, r)
	}
	w.gather(ctx, f, len(batch), prev == nil)
	w.crowded = len(f.accepted) > 1
	if len(f.writes) == 0 {
		return
	}
	if !w.settle() {
		// The batch before failed, and this one was built on it: build
		// it again on what storage holds.
		_ = f.signer.wait(nil)
		w.process(f.accepted)
		return
	}
	w.launch(f)
}

// gather holds a batch that found no commit in flight for the room's other
// active senders: a commit costs far more than an event added to it (the
// pages of the log it writes, its statements), and with many senders
// whose sends arrive one by one, each batch otherwise commits the one or
// two that came during the previous commit (BenchmarkSendEvents/sqlite/
// senders=16: 3.4 events a commit; held up to 2 ms, 11, and a fifth less
// server CPU an event). A sender is active who sent in the last 25 gather
// windows (50 ms); the batch waits until each of them has a send in it,
// or Options.GatherFor has passed. It waits only when the last batch
// carried several sends: a lone sender, or one client sending for many
// users one after the other (a bridge's portal), never overlaps itself
// and never waits. taken is how many requests the batch took from reqs;
// wait false only notes its senders (a batch built during a commit).
func (w *roomWriter) gather(ctx context.Context, f *flight, taken int, wait bool) {
	d := w.svc.opts.GatherFor
	if d < 0 {
		return
	}
	now := time.Now()
	if w.active == nil {
		w.active = map[id.UserID]time.Time{}
	}
	in := make(map[id.UserID]bool, len(f.accepted))
	for _, r := range f.accepted {
		w.active[r.proto.Sender] = now
		in[r.proto.Sender] = true
	}
	for u, at := range w.active {
		if now.Sub(at) > 25*d {
			delete(w.active, u)
		}
	}
	if !wait || !w.crowded || len(f.accepted) == 0 || len(in) >= len(w.active) || w.next != nil {
		return
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	for ; len(in) < len(w.active) && taken < maxBatch; taken++ {
		var r *sendReq
		select {
		case <-timer.C:
			return
		case r = <-w.reqs:
		}
		if !r.single() {
			w.next = r // served after this batch (run)
			return
		}
		w.add(ctx, f, nil, r)
		w.active[r.proto.Sender] = time.Now()
		in[r.proto.Sender] = true
	}
}

// add builds one single send into the batch f, or answers it at once (a
// repeated transaction, a refusal).
func (w *roomWriter) add(ctx context.Context, f, prev *flight, r *sendReq) {
	s, b := w.svc, f.b
	if r.ctx.Err() != nil {
		r.done <- sendResult{err: r.ctx.Err()}
		return
	}
	if r.txn != nil {
		key := recentKey(r.txn)
		if eid, ok := f.txns[key]; ok {
			r.done <- sendResult{eventID: eid}
			return
		}
		if eid, ok := w.recentTxn(key); ok {
			r.done <- sendResult{eventID: eid}
			return
		}
		if prev != nil {
			if _, ok := prev.txns[key]; ok {
				prev.retries = append(prev.retries, r)
				return
			}
		}
	}
	ev, wr, err := s.prepareChecked(ctx, b, r)
	if err != nil {
		w.fail(ctx, r, err)
		return
	}
	if n := len(b.unsigned); n > 0 && b.unsigned[n-1].ev == ev {
		f.signer.flush(b.unsigned, true)
	}
	if r.txn != nil {
		t := *r.txn
		t.EventID = ev.InternalMeta.EventID
		wr.Txn = &t
		f.txns[recentKey(&t)] = ev.InternalMeta.EventID
	}
	wr.Redacts = r.redacts
	f.writes = append(f.writes, wr)
	f.accepted = append(f.accepted, r)
	f.built = append(f.built, ev)
}

// prepareChecked runs r's check on the batch, then builds its event on
// it; a failure of either is r's answer.
func (s *Service) prepareChecked(ctx context.Context, b *batchState, r *sendReq) (*pdu.PDU, *storage.EventWrite, error) {
	if r.check != nil {
		if err := r.check(b); err != nil {
			return nil, nil, err
		}
	}
	return s.prepare(ctx, b, r.proto)
}

// fail answers a send that failed alone, unless it repeats a client
// transaction that already has an event (its first answer was lost): then
// that event is the answer, whatever the repeat would meet now. Sends are
// not looked up in storage before they are built (that read cost every
// send ~30 µs of CPU); a commit refuses a transaction taken before
// (storage.ErrTxnTaken), and the send, retried alone, lands here.
func (w *roomWriter) fail(ctx context.Context, r *sendReq, err error) {
	if r.txn != nil && r.ctx.Err() == nil {
		t := r.txn
		if eid, lerr := w.svc.store.GetEventTxn(ctx, t.UserID, t.DeviceID, t.Endpoint, t.TxnID); lerr == nil {
			w.rememberTxn(recentKey(t), eid)
			r.done <- sendResult{eventID: eid}
			return
		} else if !errors.Is(lerr, storage.ErrNotFound) {
			err = lerr
		}
	}
	r.done <- sendResult{err: err}
}

// launch makes a built batch the room's state in memory and stores it off
// the writer's goroutine; settle collects the outcome. A lone send with
// no request waiting behind it has nothing to overlap, and the writer
// stores it itself: it then passes through one goroutine fewer (two
// hand-offs fewer), which was most of what pipelining cost a lone sender
// (CPU per send in BenchmarkSendOneRoom/senders=1: ~10% less).
func (w *roomWriter) launch(f *flight) {
	f.b.commit()
	w.flight = f
	if len(f.writes) == 1 && len(w.reqs) == 0 && w.next == nil {
		w.land(f)
		return
	}
	go w.land(f)
}

// land stores a launched batch and answers its senders.
func (w *roomWriter) land(f *flight) {
	defer close(f.done)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if f.err = f.signer.wait(f.b.unsigned); f.err != nil {
		return
	}
	if f.err = w.store(ctx, f.writes); f.err != nil {
		return
	}
	w.publish(f.writes, f.built)
	for i, r := range f.accepted {
		r.done <- sendResult{eventID: f.built[i].InternalMeta.EventID}
	}
}

// settle waits for the batch in flight, if any. False means it failed:
// the writer's state, which had run ahead to it, is dropped, and its
// requests are tried again each alone, so that one request's bytes fail
// only that one and not the others batched with it.
func (w *roomWriter) settle() bool {
	f := w.flight
	if f == nil {
		return true
	}
	w.flight = nil
	<-f.done
	if f.err == nil {
		for key, eid := range f.txns {
			w.rememberTxn(key, eid)
		}
		for _, r := range f.retries {
			r.done <- sendResult{eventID: f.txns[recentKey(r.txn)]}
		}
		return true
	}
	w.rs = nil // storage and memory may disagree now: reload
	if len(f.accepted) > 1 {
		for _, r := range f.accepted {
			w.process([]*sendReq{r})
			w.settle()
		}
	} else {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		w.fail(ctx, f.accepted[0], f.err)
		cancel()
	}
	if len(f.retries) > 0 {
		w.process(f.retries)
		w.settle()
	}
	return false
}
