package outbound

import "sync"

// pending is a first-in first-out queue of at most max values, between the
// notifier's observer (which must not wait) and a loop. It holds memory
// only for what waits: the buffered channels it replaces allocated their
// whole bound at start, and the collector scanned it — the sender's two
// (4,096 changes and 1,024 memberships) were 1 MiB of an idle server's
// 10 MiB of its own memory.
type pending[T any] struct {
	mu    sync.Mutex
	items []T
	max   int
	// ready holds a token while items may be non-empty.
	ready chan struct{}
}

func newPending[T any](max int) *pending[T] {
	return &pending[T]{max: max, ready: make(chan struct{}, 1)}
}

// push adds v, unless max values already wait (false); it never blocks.
func (p *pending[T]) push(v T) bool {
	p.mu.Lock()
	if len(p.items) >= p.max {
		p.mu.Unlock()
		return false
	}
	p.items = append(p.items, v)
	p.mu.Unlock()
	select {
	case p.ready <- struct{}{}:
	default:
	}
	return true
}

// take empties the queue and returns what waited, oldest first. Call it
// after receiving from ready.
func (p *pending[T]) take() []T {
	p.mu.Lock()
	defer p.mu.Unlock()
	items := p.items
	p.items = nil
	return items
}
