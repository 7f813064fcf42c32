// Package stream is how data leaves core: every persisted change advances the
// position of one stream, and the Notifier wakes whoever waits for it (sync
// long-polls, later the federation sender and appservice queues). The
// in-process Notifier lives here; a Redis one joins it for workers.
package stream

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"maunium.net/go/mautrix/id"
)

// Stream names one ordered log of changes.
type Stream int

// The streams of a sync token, in token order.
const (
	Events Stream = iota
	AccountData
	Receipts
	Typing
	ToDevice
	DeviceLists
	Presence
	numStreams
)

// Accounts is not a stream of the sync token: its changes (Pos 0) tell
// every process that facts it may cache about the Users changed — account
// restrictions, pushers — so that caches fed through the notifier stay true
// when another process (a worker, the CLI) made the change. Only observers
// see them.
const Accounts Stream = 100

// Unreachable and Reachable are not streams of the sync token either: they
// carry the health of the consumers of persisted queues (Change.Queued
// names them) between processes. Only observers see them.
const (
	// Unreachable: a delivery to the consumers failed; their queue's Runner
	// waits before retrying (core/queue).
	Unreachable Stream = 101
	// Reachable: the consumers showed they are back — an appservice pinged
	// or made a request — so their Runner retries at once, its backoff
	// reset.
	Reachable Stream = 102
)

// synced reports whether the stream is one of the sync token's.
func (s Stream) synced() bool { return s >= 0 && s < numStreams }

// Change is one advance of a stream: its new position and who it concerns —
// rooms (everyone in them) and/or specific users.
type Change struct {
	Stream Stream
	Pos    int64
	RoomID id.RoomID
	// Rooms are more rooms the change concerns (a user's presence concerns
	// everyone in a room with them), so that one change reaches them all.
	Rooms []id.RoomID
	Users []id.UserID
	// Senders are the senders of an Events change's events (a user's own
	// event is also their read marker).
	Senders []id.UserID
	// Queued are the persisted queues the change was written to in its own
	// transaction, so that their consumers wake.
	Queued []Consumer
	// Relations: an Events change holds events relating to others
	// (m.relates_to), which read-side shortcuts need to know.
	Relations bool
	// Origin names the process instance that made the change, so that a
	// cache can tell its own process's commits from others'.
	Origin string
}

// Consumer names one persisted queue: its kind and, within the kind, whose
// it is (an appservice ID, a federation destination's server name; "" for
// the push gateway's single queue).
type Consumer struct {
	Kind string
	ID   string
}

// Consumer kinds.
const (
	KindAppService  = "appservice"
	KindPushGateway = "push"
	// KindFederation queues are other servers' (consumer: the server name).
	KindFederation = "federation"
)

// Notifier publishes changes and lets waiters sleep until one concerns them.
type Notifier interface {
	// Publish records a change and wakes the waiters it concerns.
	Publish(c Change)
	// Current is the latest published position of every stream.
	Current() Positions
	// Wait blocks until a change newer than since concerns the waiter (see
	// Interest), or ctx ends; it reports whether it was woken.
	Wait(ctx context.Context, in Interest, since Positions) bool
	// WaitUntil is Wait that also ends at until (a long-poll's timeout),
	// without a context of its own for it.
	WaitUntil(ctx context.Context, in Interest, since Positions, until time.Time) bool
	// WaitInLane is WaitUntil that returns holding a place in lane (see
	// Lane), unless ctx ended first (then it returns ctx's error and holds
	// none); it reports whether a change woke it.
	WaitInLane(ctx context.Context, in Interest, since Positions, until time.Time, lane *Lane) (bool, error)
	// Observe calls fn with every change published from now on (in this
	// process). fn runs inside Publish: it must be quick and must not block
	// or publish.
	Observe(fn func(Change))
}

// Interest is what a waiter waits for: a change naming User, or one of
// Rooms, in any stream but those it ignores.
type Interest struct {
	User  id.UserID
	Rooms map[id.RoomID]bool
	// Ignore are streams whose changes the waiter would not answer with
	// (a filter drops them): they neither wake it nor cut its wait short.
	Ignore StreamSet
	// Lane is set by WaitInLane.
	Lane *Lane
}

// StreamSet is a set of streams.
type StreamSet uint64

// Streams makes a set of streams.
func Streams(s ...Stream) StreamSet {
	var set StreamSet
	for _, x := range s {
		set |= 1 << uint(x)
	}
	return set
}

// Has reports whether the set holds s.
func (set StreamSet) Has(s Stream) bool { return s >= 0 && s < 64 && set&(1<<uint(s)) != 0 }

// Positions are the positions of all streams: a sync token.
type Positions [numStreams]int64

// After reports whether p is ahead of since in any stream.
func (p Positions) After(since Positions) bool { return p.afterExcept(since, 0) }

func (p Positions) afterExcept(since Positions, ignore StreamSet) bool {
	for i := range p {
		if p[i] > since[i] && !ignore.Has(Stream(i)) {
			return true
		}
	}
	return false
}

// Local is the in-process Notifier. Waiters are indexed by the rooms and
// the user they wait for, so that a change costs what it concerns, not
// the number of waiters.
type Local struct {
	mu      sync.Mutex
	current Positions
	// now is current for Current, which takes no lock: every /sync asks,
	// and when a message wakes 2,000 long-polls they all ask at once while
	// Publish still holds mu waking the rest; an unrelated /sync queued
	// behind all of them.
	now    atomic.Pointer[Positions]
	byRoom map[id.RoomID]map[*waiter]struct{}
	// byUser holds each user's waiters as a list (waiter.next): most users
	// have one long-poll, and a map per user cost 4,000 parked users 2 MB.
	byUser    map[id.UserID]*waiter
	observers []func(Change)
}

type waiter struct {
	in    Interest
	since Positions
	wake  chan struct{}
	// done: the waiter was woken or given up (wake closed); woken: by a
	// change. Both under Local.mu.
	done, woken bool
	// prev and next link the waiters of in.User (Local.byUser), under
	// Local.mu.
	prev, next *waiter
}

// NewLocal makes a notifier starting at the given positions.
func NewLocal(start Positions) *Local {
	l := &Local{current: start, byRoom: map[id.RoomID]map[*waiter]struct{}{}, byUser: map[id.UserID]*waiter{}}
	l.now.Store(&start)
	return l
}

// Publish implements Notifier.
//
// The waiters it ends are woken after mu is released: waking thousands
// (one message to a crowded room) readies as many goroutines, and if the
// scheduler put the publisher aside meanwhile, every long-poll arriving to
// wait queued on mu behind it, for as long as the woken crowd ran.
func (l *Local) Publish(c Change) {
	var woken []*waiter
	defer func() {
		for _, w := range woken {
			if w.in.Lane != nil {
				w.in.Lane.admit(w.wake)
			} else {
				close(w.wake)
			}
		}
	}()
	l.mu.Lock()
	defer l.mu.Unlock()
	if !c.Stream.synced() {
		for _, fn := range l.observers {
			fn(c)
		}
		return
	}
	if c.Pos > l.current[c.Stream] {
		l.current[c.Stream] = c.Pos
		now := l.current
		l.now.Store(&now)
	}
	for _, fn := range l.observers {
		fn(c)
	}
	if c.RoomID != "" {
		woken = l.wakeLocked(l.byRoom[c.RoomID], c, woken)
	}
	for _, r := range c.Rooms {
		woken = l.wakeLocked(l.byRoom[r], c, woken)
	}
	for _, u := range c.Users {
		for w := l.byUser[u]; w != nil; {
			next := w.next // removeLocked unlinks w
			woken = l.wakeOneLocked(w, c, woken)
			w = next
		}
	}
}

// wakeLocked ends the waiters of ws that c concerns (l.mu held) and
// appends them to woken, whose wakes the caller closes.
func (l *Local) wakeLocked(ws map[*waiter]struct{}, c Change, woken []*waiter) []*waiter {
	for w := range ws {
		woken = l.wakeOneLocked(w, c, woken)
	}
	return woken
}

// wakeOneLocked ends w if c concerns it (l.mu held) and appends it to
// woken, whose wakes the caller closes.
func (l *Local) wakeOneLocked(w *waiter, c Change, woken []*waiter) []*waiter {
	if c.Pos > w.since[c.Stream] && !w.in.Ignore.Has(c.Stream) && !w.done {
		w.woken, w.done = true, true
		l.removeLocked(w)
		woken = append(woken, w)
	}
	return woken
}

// endLocked removes w and closes its wake (l.mu held), once.
func (l *Local) endLocked(w *waiter) {
	if w.done {
		return
	}
	w.done = true
	l.removeLocked(w)
	close(w.wake)
}

func (l *Local) removeLocked(w *waiter) {
	for r := range w.in.Rooms {
		if ws := l.byRoom[r]; ws != nil {
			delete(ws, w)
			if len(ws) == 0 {
				delete(l.byRoom, r)
			}
		}
	}
	switch {
	case w.prev != nil:
		w.prev.next = w.next
	case w.next != nil:
		l.byUser[w.in.User] = w.next
	default:
		delete(l.byUser, w.in.User)
	}
	if w.next != nil {
		w.next.prev = w.prev
	}
	w.prev, w.next = nil, nil
}

// Observe implements Notifier.
func (l *Local) Observe(fn func(Change)) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.observers = append(l.observers, fn)
}

// Current implements Notifier.
func (l *Local) Current() Positions { return *l.now.Load() }

// Wait implements Notifier. The caller checks for news before waiting; Wait
// only sleeps, so a change published between that check and Wait is missed
// unless since is the position the check saw — which is why it takes since.
func (l *Local) Wait(ctx context.Context, in Interest, since Positions) bool {
	return l.WaitUntil(ctx, in, since, time.Time{})
}

// WaitUntil implements Notifier.
//
// Thousands of long-polls sleep here at once, each on its request's
// goroutine, so what each holds counts: until is a timer, not a context (a
// context and its parent's map of children per parked request); ctx's end
// is its Done channel, which a request's context has already made (the
// database driver asked for it), rather than context.AfterFunc (a callback
// context and, again, its parent's map of children).
func (l *Local) WaitUntil(ctx context.Context, in Interest, since Positions, until time.Time) bool {
	in.Lane = nil
	w, already := l.register(in, since)
	if already {
		return true
	}
	var timer *time.Timer
	if !until.IsZero() {
		timer = time.AfterFunc(time.Until(until), func() { l.timeUp(w) })
	}
	select {
	case <-w.wake:
	case <-ctx.Done():
		l.giveUp(w)
	}
	if timer != nil {
		timer.Stop()
	}
	return w.woken // written under mu before wake was closed or giveUp took mu
}

// WaitInLane implements Notifier.
//
// A change or the end of the wait hands the waiter to the lane, which
// wakes it once it has a place (see Lane): a thousand long-polls a message
// woke, or whose timeouts ran out together, are not a thousand runnable
// goroutines at once.
func (l *Local) WaitInLane(ctx context.Context, in Interest, since Positions, until time.Time, lane *Lane) (bool, error) {
	in.Lane = lane
	w, already := l.register(in, since)
	if already {
		return true, lane.Enter(ctx)
	}
	var timer *time.Timer
	if !until.IsZero() {
		timer = time.AfterFunc(time.Until(until), func() { l.timeUp(w) })
	}
	select {
	case <-w.wake:
		if timer != nil {
			timer.Stop()
		}
		yield() // admitted (see yield)
		return w.woken, nil
	case <-ctx.Done():
		if timer != nil {
			timer.Stop()
		}
		if l.giveUp(w) {
			// Handed to the lane already: queued there, or admitted.
			lane.cancel(w.wake)
		}
		return false, ctx.Err()
	}
}

// giveUp ends w's wait unwoken (its context ended); it reports whether w
// had ended before (woken or its time up), its wake handed on.
func (l *Local) giveUp(w *waiter) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if w.done {
		return true
	}
	l.endLocked(w)
	return false
}

// timeUp ends w's wait unwoken at its deadline: its wake is closed, or
// with a lane handed to it.
func (l *Local) timeUp(w *waiter) {
	l.mu.Lock()
	if w.done {
		l.mu.Unlock()
		return
	}
	w.done = true
	l.removeLocked(w)
	l.mu.Unlock()
	if w.in.Lane != nil {
		w.in.Lane.admit(w.wake)
	} else {
		close(w.wake)
	}
}

// register adds a waiter, unless something it does not ignore was
// published after since already (then it reports true and adds nothing).
func (l *Local) register(in Interest, since Positions) (*waiter, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.current.afterExcept(since, in.Ignore) {
		return nil, true
	}
	w := &waiter{in: in, since: since, wake: make(chan struct{})}
	for r, ok := range in.Rooms {
		if !ok {
			continue
		}
		ws := l.byRoom[r]
		if ws == nil {
			ws = map[*waiter]struct{}{}
			l.byRoom[r] = ws
		}
		ws[w] = struct{}{}
	}
	if head := l.byUser[in.User]; head != nil {
		w.next, head.prev = head, w
	}
	l.byUser[in.User] = w
	return w, false
}

// waiting counts the registered waiters (for tests).
func (l *Local) waiting() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	seen := map[*waiter]bool{}
	for _, w := range l.byUser {
		for ; w != nil; w = w.next {
			seen[w] = true
		}
	}
	for _, ws := range l.byRoom {
		for w := range ws {
			seen[w] = true
		}
	}
	return len(seen)
}
