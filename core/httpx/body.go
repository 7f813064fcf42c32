package httpx

import (
	"errors"
	"io"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/tributary-hs/tributary/core/types"
)

// A request body must arrive within a deadline that grows with what has
// arrived: timeout from the end of the headers, plus one second for every
// minRate bytes received. An upload on a slow link that keeps arriving at
// minRate (or faster) gets the time it needs; a body trickled byte by byte
// holds its connection for timeout and not longer, so that a few clients
// cannot keep thousands of connections (and their goroutines) for ever.
// Requests without a body (a /sync long-poll) are not touched: the server
// watches their connection for the client going away, and a read deadline
// would end that.
//
// Go's http.Server offers ReadTimeout, a fixed deadline for the whole
// request: one generous enough for a large upload on a slow link lets a
// trickled JSON body live as long.

// bodyLinger is how long a connection whose request was refused before its
// body arrived is still read from (and the body thrown away) after the
// answer, so that a client that writes its whole body before reading sees
// the answer rather than a reset connection.
const bodyLinger = 250 * time.Millisecond

const bodyKey = "tributary.body"

// BodyDeadline applies the request body deadline (see above).
func BodyDeadline(timeout time.Duration, minRate int64) gin.HandlerFunc {
	return func(c *gin.Context) {
		r := c.Request
		if timeout <= 0 || r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0 {
			return
		}
		b := &deadlineBody{body: r.Body, rc: http.NewResponseController(c.Writer), start: time.Now(),
			timeout: timeout, minRate: max(minRate, 1)}
		if b.extend() == nil {
			r.Body = b
			c.Set(bodyKey, b)
		}
	}
}

// deadlineBody moves the connection's read deadline on as the body arrives.
type deadlineBody struct {
	body    io.ReadCloser
	rc      *http.ResponseController
	start   time.Time
	timeout time.Duration
	minRate int64

	mu       sync.Mutex
	received int64
	// done: the body was read to its end (or failed, or was refused); the
	// deadline is no longer this reader's to move. ended: it was read to
	// its end.
	done, ended bool
}

func (b *deadlineBody) extend() error {
	credit := time.Duration(float64(b.received) / float64(b.minRate) * float64(time.Second))
	return b.rc.SetReadDeadline(b.start.Add(b.timeout + credit))
}

func (b *deadlineBody) Read(p []byte) (int, error) {
	n, err := b.body.Read(p)
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.done {
		return n, err
	}
	b.received += int64(n)
	switch {
	case err == nil:
		_ = b.extend()
	case errors.Is(err, os.ErrDeadlineExceeded):
		b.done = true
		return n, types.NewError(http.StatusRequestTimeout, types.CodeUnknown,
			"The request body did not arrive in time")
	case err == io.EOF:
		// At the end of the body the server watches the connection for
		// the client going away, without a deadline: leave it so.
		b.done, b.ended = true, true
	default:
		b.done = true
	}
	return n, err
}

func (b *deadlineBody) Close() error { return b.body.Close() }

// refuse gives up on the rest of the body: it is read (and thrown away) for
// bodyLinger more at most. It reports whether the body had not been read to
// its end.
func (b *deadlineBody) refuse() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.ended {
		return false
	}
	if !b.done {
		b.done = true
		_ = b.rc.SetReadDeadline(time.Now().Add(bodyLinger))
	}
	return true
}

// refuseBody is for an answer given before the request body was read to
// its end (a refused token, an unknown route): the connection closes after
// the answer, which leaves at once instead of after the server has drained
// what the client still sends.
func refuseBody(c *gin.Context) {
	if v, ok := c.Get(bodyKey); ok && v.(*deadlineBody).refuse() {
		c.Header("Connection", "close")
	}
}
