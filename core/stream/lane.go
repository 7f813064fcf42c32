package stream

import (
	"context"
	"runtime"
	"sync"
	"sync/atomic"
)

// Lane admits a few waiters at a time to the work that follows their
// wait. One change to a crowded room wakes thousands of waiters (every
// member's /sync long-poll): woken at once, they are thousands of
// goroutines runnable at the same moment, which Go's scheduler runs in
// turn ahead of anything that becomes runnable after them (an unrelated
// /sync?timeout=0 waited 100 ms and more for a core). A waiter in a lane
// (Local.WaitInLane) is woken, by a change or its timeout, only when it
// has a place in the lane; the others stay queued, not runnable, and are
// woken one by one as places are given back. The crowd's work takes about
// the same time in all, and a request outside the lane waits behind a few
// goroutines, not thousands.
//
// A place is also taken by Enter (a long-poll that did not wait, a crowd's
// request arriving: see httpx.LaneListener) and given back by Leave.
type Lane struct {
	mu   sync.Mutex
	free int
	// open is free less the queue's length (under mu, read without it):
	// an Enter now would wait unless it is above 0.
	open atomic.Int64
	// queue holds the wakes of who waits for a place, first first; a
	// cancelled one is nil. head is the first.
	queue []chan struct{}
	head  int
}

// NewLane makes a lane with places.
func NewLane(places int) *Lane {
	l := &Lane{free: max(1, places)}
	l.open.Store(int64(l.free))
	return l
}

// Enter takes a place, waiting for one; it fails only when ctx ends first
// (then it holds none).
func (l *Lane) Enter(ctx context.Context) error {
	l.mu.Lock()
	l.open.Add(-1)
	if l.free > 0 {
		l.free--
		l.mu.Unlock()
		return nil
	}
	wake := make(chan struct{})
	l.queue = append(l.queue, wake)
	l.mu.Unlock()
	select {
	case <-wake:
		yield()
		return nil
	case <-ctx.Done():
		l.cancel(wake)
		return ctx.Err()
	}
}

// Leave gives a place back: to the first in the queue, or to no one.
func (l *Lane) Leave() {
	l.mu.Lock()
	l.open.Add(1)
	for l.head < len(l.queue) {
		wake := l.queue[l.head]
		l.queue[l.head] = nil
		l.head++
		l.compactLocked()
		if wake != nil {
			l.mu.Unlock()
			close(wake)
			return
		}
	}
	l.free++
	l.mu.Unlock()
}

// Busy reports whether an Enter now would wait.
func (l *Lane) Busy() bool { return l.open.Load() <= 0 }

// admit closes wake once it has a place: now if one is free, else when
// one is given back.
func (l *Lane) admit(wake chan struct{}) {
	l.mu.Lock()
	l.open.Add(-1)
	if l.free > 0 {
		l.free--
		l.mu.Unlock()
		close(wake)
		return
	}
	l.queue = append(l.queue, wake)
	l.mu.Unlock()
}

// cancel takes wake out of the queue, or, if it was given a place
// meanwhile, gives the place back. A waiter's wake may be handed to the
// lane just after this (Publish and timeUp admit after releasing the
// notifier's lock): the place given back now is then the one admit takes
// for a wake nobody waits on, and the count of places stays true.
func (l *Lane) cancel(wake chan struct{}) {
	l.mu.Lock()
	for i := l.head; i < len(l.queue); i++ {
		if l.queue[i] == wake {
			l.queue[i] = nil
			l.open.Add(1)
			l.mu.Unlock()
			return
		}
	}
	l.mu.Unlock()
	l.Leave() // it was admitted
}

// compactLocked drops the queue's consumed head once it is half of it.
func (l *Lane) compactLocked() {
	if l.head == len(l.queue) {
		l.queue, l.head = l.queue[:0], 0
		return
	}
	if l.head > 1024 && l.head*2 > len(l.queue) {
		n := copy(l.queue, l.queue[l.head:])
		clear(l.queue[n:])
		l.queue, l.head = l.queue[:n], 0
	}
}

// queued counts who waits for a place (for tests).
func (l *Lane) queued() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, w := range l.queue[l.head:] {
		if w != nil {
			n++
		}
	}
	return n
}

// yield is the first thing a goroutine given a place does. Giving a place
// readies the next goroutine on the giver's processor, first in its local
// queue and in the giver's time slice: the crowd's work would run there
// from one goroutine to the next for up to Go's 10 ms slice, and what
// waits in the global run queue (every request that just arrived from the
// network) would wait behind it all. Yielding puts the newly admitted
// goroutine at the end of the global queue, in turn with those requests.
func yield() { runtime.Gosched() }
