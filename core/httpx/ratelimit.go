package httpx

import (
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/tributary-hs/tributary/core/types"
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
	// rate and burst are the bucket's own (an override) when set.
	rate, burst float64
}

// NewLimiter makes a limiter refilling perSecond tokens up to burst.
func NewLimiter(perSecond float64, burst int) *Limiter {
	return &Limiter{rate: perSecond, burst: float64(burst), now: time.Now, buckets: map[string]*bucket{}}
}

// Allow takes a token for key if there is one. Otherwise it reports how long
// until there will be, in milliseconds.
func (l *Limiter) Allow(key string) (bool, int64) { return l.take(key, true, nil) }

// Check reports whether Allow would succeed, without taking a token.
func (l *Limiter) Check(key string) (bool, int64) { return l.take(key, false, nil) }

// AllowWith is Allow with the key's own rate and burst instead of the
// limiter's (an admin's override for one user); a rate of 0 allows
// everything, as in Synapse. The limiter must be on (not nil) for any limit.
func (l *Limiter) AllowWith(key string, r types.RateLimit) (bool, int64) {
	if r.PerSecond <= 0 {
		return true, 0
	}
	return l.take(key, true, &r)
}

func (l *Limiter) take(key string, consume bool, own *types.RateLimit) (bool, int64) {
	if l == nil {
		return true, 0
	}
	rate, burst := l.rate, l.burst
	if own != nil {
		// An override's bucket is its own: changing it starts afresh.
		rate, burst = own.PerSecond, float64(max(own.Burst, 1))
		key = fmt.Sprintf("%s|%g|%g", key, rate, burst)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	l.sweep(now)
	b, ok := l.buckets[key]
	if !ok {
		b = &bucket{tokens: burst, last: now}
		if own != nil {
			b.rate, b.burst = rate, burst
		}
		l.buckets[key] = b
	}
	b.tokens = math.Min(burst, b.tokens+now.Sub(b.last).Seconds()*rate)
	b.last = now
	if b.tokens >= 1 {
		if consume {
			b.tokens--
		}
		return true, 0
	}
	wait := (1 - b.tokens) / rate * 1000
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
		rate, burst := l.rate, l.burst
		if b.burst > 0 {
			rate, burst = b.rate, b.burst
		}
		if b.tokens+now.Sub(b.last).Seconds()*rate >= burst {
			delete(l.buckets, k)
		}
	}
}
