package stream

import (
	"context"
	"sync"
)

// Shared keeps recent answers about settled stream ranges, computed once
// and shared by everyone who asks the same. What was committed up to a
// published position never changes (positions are taken in commit order),
// so an answer about a range up to a published position holds; every
// long-poll woken by one message asks the same questions, and only the
// first asks the database while the others wait for its answer. Errors are
// not kept. Callers must not change what they get.
type Shared[K comparable, V any] struct {
	// Max bounds the number of answers kept (past it, all are dropped).
	Max int
	mu  sync.Mutex
	m   map[K]*sharedAnswer[V]
}

type sharedAnswer[V any] struct {
	done chan struct{}
	v    V
	err  error
}

// Get returns the answer for key, computing it with load if nobody has.
func (s *Shared[K, V]) Get(ctx context.Context, key K, load func(ctx context.Context) (V, error)) (V, error) {
	s.mu.Lock()
	a := s.m[key]
	if a == nil {
		if s.m == nil || len(s.m) >= max(s.Max, 1) {
			s.m = map[K]*sharedAnswer[V]{}
		}
		a = &sharedAnswer[V]{done: make(chan struct{})}
		s.m[key] = a
		s.mu.Unlock()
		// Others wait for this answer: one request going away must not fail them.
		a.v, a.err = load(context.WithoutCancel(ctx))
		if a.err != nil {
			s.mu.Lock()
			if s.m[key] == a {
				delete(s.m, key)
			}
			s.mu.Unlock()
		}
		close(a.done)
		return a.v, a.err
	}
	s.mu.Unlock()
	select {
	case <-a.done:
		return a.v, a.err
	case <-ctx.Done():
		var zero V
		return zero, ctx.Err()
	}
}
