package ircconn

import (
	"sync"
	"time"
)

// FloodControl paces the lines a connection writes, as a token bucket:
// Burst lines may go at once, then one more every Interval. Servers
// disconnect clients that send faster than they allow (InspIRCd's default
// <connect commandrate> is one command per second after a burst of about 10).
type FloodControl struct {
	Burst    int
	Interval time.Duration
}

// DefaultFloodControl allows 5 lines at once, then 2 a second.
var DefaultFloodControl = FloodControl{Burst: 5, Interval: 500 * time.Millisecond}

// tokenBucket implements FloodControl. Time is passed in, so tests need no
// clock.
type tokenBucket struct {
	mu     sync.Mutex
	fc     FloodControl
	tokens float64
	last   time.Time
}

func newTokenBucket(fc FloodControl, now time.Time) *tokenBucket {
	if fc.Burst < 1 {
		fc.Burst = 1
	}
	return &tokenBucket{fc: fc, tokens: float64(fc.Burst), last: now}
}

func (b *tokenBucket) refill(now time.Time) {
	if b.fc.Interval <= 0 {
		b.tokens = float64(b.fc.Burst)
		return
	}
	if now.After(b.last) {
		b.tokens += float64(now.Sub(b.last)) / float64(b.fc.Interval)
		if b.tokens > float64(b.fc.Burst) {
			b.tokens = float64(b.fc.Burst)
		}
	}
	b.last = now
}

// take returns 0 and spends a token when one is available at now, else how
// long until one will be (spending nothing).
func (b *tokenBucket) take(now time.Time) time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.refill(now)
	if b.tokens >= 1 {
		b.tokens--
		return 0
	}
	return time.Duration((1 - b.tokens) * float64(b.fc.Interval))
}

// force spends a token even if none is left (for PONG, which must not wait
// behind queued lines); the debt delays the lines after it.
func (b *tokenBucket) force(now time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.refill(now)
	b.tokens--
}
