package httpx

import (
	"bytes"
	"context"
	"net"
	"sync/atomic"
)

// Lane is a few places that requests take in turn, first come first
// served (core/stream.Lane).
type Lane interface {
	Enter(ctx context.Context) error
	Leave()
	// Busy reports whether someone waits for a place.
	Busy() bool
}

// LaneListener gives a request that LaneListener.Wanted picks its place in
// Lane before net/http reads it, while the lane is busy.
//
// When one message wakes thousands of /sync long-polls, each client sends
// its next long-poll a moment after its answer: thousands of connections
// become readable at once, and Go wakes their goroutines together, into
// the scheduler's global run queue, where each then reads, parses,
// authenticates and parks its request in turn. A request from anyone
// else (a /sync?timeout=0, a send) arrives into the same queue behind
// them: it waited 100 ms and more. Through this listener, a connection
// whose next request is such a long-poll, arriving while the lane is
// busy, is woken only to read what arrived and then queues for a place,
// not runnable; net/http parses and handles the request when its turn
// comes. Everyone else is handled at once as before.
//
// The place stays with the connection until its request's handler takes
// it (TakeLanePlace) or, at the latest, its next read or its close. Only a
// request whose head has arrived whole is queued, so a client that sends
// half a request holds no place.
type LaneListener struct {
	net.Listener
	Lane Lane
	// Wanted picks the requests that queue, from their head (request line
	// and headers, up to 4 KiB).
	Wanted func(head []byte) bool
}

// Accept implements net.Listener.
func (l *LaneListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return c, err
	}
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return c, nil
	}
	return &laneConn{TCPConn: tc, l: l}, nil
}

// laneConn is a connection of a LaneListener.
type laneConn struct {
	*net.TCPConn
	l *LaneListener
	// holding: the connection holds a place for the request it read.
	holding atomic.Bool
}

// Read implements net.Conn. net/http reads requests through a buffer;
// the one-byte reads are its watch for a closed connection while a
// handler runs, which never queue.
//
// What arrived is read first and then queued with: the read costs what
// it would anyway, and a deadline net/http set for it does not run out
// while the request waits for its place.
func (c *laneConn) Read(p []byte) (int, error) {
	if len(p) <= 1 {
		return c.TCPConn.Read(p)
	}
	return c.readRequest(p)
}

// readRequest is Read for net/http's reads of requests. It is a function
// of its own so that Read's frame stays small: net/http's one-byte watch
// of every connection whose handler runs (thousands of parked long-polls)
// is parked in Read, and Go sizes new goroutines' stacks from the average
// stack in use.
//
//go:noinline
func (c *laneConn) readRequest(p []byte) (int, error) {
	c.release()
	n, err := c.TCPConn.Read(p)
	if n > 0 && c.l.Lane.Busy() {
		head := p[:n]
		if bytes.Contains(head, []byte("\r\n\r\n")) && c.l.Wanted(head) && c.l.Lane.Enter(context.Background()) == nil {
			c.holding.Store(true)
		}
	}
	return n, err
}

// Close implements net.Conn.
func (c *laneConn) Close() error {
	c.release()
	return c.TCPConn.Close()
}

func (c *laneConn) release() {
	if c.holding.CompareAndSwap(true, false) {
		c.l.Lane.Leave()
	}
}

type laneConnKey struct{}

// LaneConnContext is http.Server.ConnContext for a LaneListener's
// connections: it lets the request's handler find its place
// (TakeLanePlace).
func LaneConnContext(ctx context.Context, c net.Conn) context.Context {
	if lc, ok := c.(*laneConn); ok {
		return context.WithValue(ctx, laneConnKey{}, lc)
	}
	return ctx
}

// TakeLanePlace reports whether the request came with a place in the
// lane, which the caller then holds and gives back.
func TakeLanePlace(ctx context.Context) bool {
	lc, _ := ctx.Value(laneConnKey{}).(*laneConn)
	return lc != nil && lc.holding.CompareAndSwap(true, false)
}
