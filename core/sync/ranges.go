package sync

import (
	"context"
	gosync "sync"
)

// maxRanges bounds the cache of changed rooms per stream range.
const maxRanges = 1024

// changedRooms remembers which rooms have events in a range of stream
// positions. What was committed up to a published position never changes
// (positions are taken in commit order), so an answer holds forever; every
// long-poll woken by one message asks the same range, and only the first
// asks the database (the others wait for its answer). Callers must not
// change the slice they get.
type changedRooms struct {
	load func(ctx context.Context, after, upto int64) ([]string, error)
	mu   gosync.Mutex
	m    map[[2]int64]*roomsAnswer
}

type roomsAnswer struct {
	done  chan struct{}
	rooms []string
	err   error
}

func (c *changedRooms) get(ctx context.Context, after, upto int64) ([]string, error) {
	key := [2]int64{after, upto}
	c.mu.Lock()
	a := c.m[key]
	if a == nil {
		if c.m == nil || len(c.m) >= maxRanges {
			c.m = map[[2]int64]*roomsAnswer{}
		}
		a = &roomsAnswer{done: make(chan struct{})}
		c.m[key] = a
		c.mu.Unlock()
		// Others wait for this answer: one request going away must not fail them.
		a.rooms, a.err = c.load(context.WithoutCancel(ctx), after, upto)
		if a.err != nil {
			c.mu.Lock()
			if c.m[key] == a {
				delete(c.m, key) // an error is not remembered
			}
			c.mu.Unlock()
		}
		close(a.done)
		return a.rooms, a.err
	}
	c.mu.Unlock()
	select {
	case <-a.done:
		return a.rooms, a.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}
