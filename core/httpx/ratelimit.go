package httpx

import (
	"math"
	"sync"
	"time"
)

// Limiter is a set of token buckets keyed by a string (an IP address, a user
// ID). A nil *Limiter allows everything, which is how limits are switched off.
type Limiter struct {
	rate  float64 // tokens per second
	burst float64
	now   func() time.Time

	mu      sync.Mutex
	buckets map[string]*bucket
	swept   time.Time
}

type bucket struct {
	tokens float64
	last   time.Time
}

// NewLimiter makes a limiter refilling perSecond tokens up to burst.
func NewLimiter(perSecond float64, burst int) *Limiter {
	return &Limiter{rate: perSecond, burst: float64(burst), now: time.Now, buckets: map[string]*bucket{}}
}

// Allow takes a token for key if there is one. Otherwise it reports how long
// until there will be, in milliseconds.
func (l *Limiter) Allow(key string) (bool, int64) { return l.take(key, true) }

// Check reports whether Allow would succeed, without taking a token.
func (l *Limiter) Check(key string) (bool, int64) { return l.take(key, false) }

func (l *Limiter) take(key string, consume bool) (bool, int64) {
	if l == nil {
		return true, 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	l.sweep(now)
	b, ok := l.buckets[key]
	if !ok {
		b = &bucket{tokens: l.burst, last: now}
		l.buckets[key] = b
	}
	b.tokens = math.Min(l.burst, b.tokens+now.Sub(b.last).Seconds()*l.rate)
	b.last = now
	if b.tokens >= 1 {
		if consume {
			b.tokens--
		}
		return true, 0
	}
	wait := (1 - b.tokens) / l.rate * 1000
	return false, int64(math.Ceil(wait))
}

// sweep drops buckets that have refilled, at most once a minute, so the map
// does not grow with every address ever seen.
func (l *Limiter) sweep(now time.Time) {
	if now.Sub(l.swept) < time.Minute {
		return
	}
	l.swept = now
	for k, b := range l.buckets {
		if b.tokens+now.Sub(b.last).Seconds()*l.rate >= l.burst {
			delete(l.buckets, k)
		}
	}
}
