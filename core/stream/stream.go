// Package stream is how data leaves core: every persisted change advances the
// position of one stream, and the Notifier wakes whoever waits for it (sync
// long-polls, later the federation sender and appservice queues). The
// in-process Notifier lives here; a Redis one joins it for workers.
package stream

import (
	"context"
	"sync"

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
// a room (everyone in it) and/or specific users.
type Change struct {
	Stream Stream
	Pos    int64
	RoomID id.RoomID
	Users  []id.UserID
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
// it is (an appservice ID; "" for the push gateway's single queue).
type Consumer struct {
	Kind string
	ID   string
}

// Consumer kinds.
const (
	KindAppService  = "appservice"
	KindPushGateway = "push"
)

// Notifier publishes changes and lets waiters sleep until one concerns them.
type Notifier interface {
	// Publish records a change and wakes the waiters it concerns.
	Publish(c Change)
	// Current is the latest published position of every stream.
	Current() Positions
	// Wait blocks until a change newer than since concerns the user or one of
	// rooms, or ctx ends; it reports whether it was woken.
	Wait(ctx context.Context, user id.UserID, rooms map[id.RoomID]bool, since Positions) bool
	// Observe calls fn with every change published from now on (in this
	// process). fn runs inside Publish: it must be quick and must not block
	// or publish.
	Observe(fn func(Change))
}

// Positions are the positions of all streams: a sync token.
type Positions [numStreams]int64

// After reports whether p is ahead of since in any stream.
func (p Positions) After(since Positions) bool {
	for i := range p {
		if p[i] > since[i] {
			return true
		}
	}
	return false
}

// Local is the in-process Notifier.
type Local struct {
	mu        sync.Mutex
	current   Positions
	waiters   map[*waiter]struct{}
	observers []func(Change)
}

type waiter struct {
	user  id.UserID
	rooms map[id.RoomID]bool
	since Positions
	wake  chan struct{}
}

// NewLocal makes a notifier starting at the given positions.
func NewLocal(start Positions) *Local {
	return &Local{current: start, waiters: map[*waiter]struct{}{}}
}

// Publish implements Notifier.
func (l *Local) Publish(c Change) {
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
	}
	for _, fn := range l.observers {
		fn(c)
	}
	for w := range l.waiters {
		if c.Pos > w.since[c.Stream] && w.concerned(c) {
			close(w.wake)
			delete(l.waiters, w)
		}
	}
}

func (w *waiter) concerned(c Change) bool {
	if c.RoomID != "" && w.rooms[c.RoomID] {
		return true
	}
	for _, u := range c.Users {
		if u == w.user {
			return true
		}
	}
	return false
}

// Observe implements Notifier.
func (l *Local) Observe(fn func(Change)) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.observers = append(l.observers, fn)
}

// Current implements Notifier.
func (l *Local) Current() Positions {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.current
}

// Wait implements Notifier. The caller checks for news before waiting; Wait
// only sleeps, so a change published between that check and Wait is missed
// unless since is the position the check saw — which is why it takes since.
func (l *Local) Wait(ctx context.Context, user id.UserID, rooms map[id.RoomID]bool, since Positions) bool {
	w, already := l.register(user, rooms, since)
	if already {
		return true
	}
	select {
	case <-w.wake:
		return true
	case <-ctx.Done():
		l.mu.Lock()
		delete(l.waiters, w)
		l.mu.Unlock()
		return false
	}
}

// register adds a waiter, unless something was published after since
// already (then it reports true and adds nothing).
func (l *Local) register(user id.UserID, rooms map[id.RoomID]bool, since Positions) (*waiter, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.current.After(since) {
		return nil, true
	}
	w := &waiter{user: user, rooms: rooms, since: since, wake: make(chan struct{})}
	l.waiters[w] = struct{}{}
	return w, false
}
