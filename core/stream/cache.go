package stream

import (
	"sync"
	"sync/atomic"
)

// DefaultCacheMax is how many values a Cache keeps unless told otherwise.
const DefaultCacheMax = 100_000

// Cache keeps values read from storage until a published change forgets
// them (its observer calls Forget). A read that raced a Forget is returned
// but not kept, so the cache never holds what a change has made stale —
// whichever process published the change. It is bounded: past Max values
// (DefaultCacheMax when 0) a quarter of them, whichever come first, go.
type Cache[K comparable, V any] struct {
	Max int
	m   sync.Map // K → V
	n   atomic.Int64
	// gen counts Forget calls: a read kept only if none landed meanwhile.
	gen atomic.Int64
}

// Get returns the cached value of k, or load's. load reports whether its
// value may be kept (false: answer it, but read again next time).
func (c *Cache[K, V]) Get(k K, load func() (v V, keep bool, err error)) (V, error) {
	if v, ok := c.m.Load(k); ok {
		return v.(V), nil
	}
	gen := c.gen.Load()
	v, keep, err := load()
	if err != nil || !keep || c.gen.Load() != gen {
		return v, err
	}
	c.store(k, v)
	if c.gen.Load() != gen {
		c.drop(k) // a Forget landed while storing
	}
	return v, nil
}

// Put keeps v for k (a value this process just wrote).
func (c *Cache[K, V]) Put(k K, v V) { c.store(k, v) }

// Forget drops the keys, and any value being read meanwhile.
func (c *Cache[K, V]) Forget(keys ...K) {
	c.gen.Add(1)
	for _, k := range keys {
		c.drop(k)
	}
}

// Len is how many values the cache holds.
func (c *Cache[K, V]) Len() int { return int(c.n.Load()) }

func (c *Cache[K, V]) store(k K, v V) {
	if _, loaded := c.m.Swap(k, v); loaded {
		return
	}
	max := int64(c.Max)
	if max <= 0 {
		max = DefaultCacheMax
	}
	if c.n.Add(1) <= max {
		return
	}
	evict := max / 4
	c.m.Range(func(key, _ any) bool {
		if _, ok := c.m.LoadAndDelete(key); ok {
			c.n.Add(-1)
			evict--
		}
		return evict > 0
	})
}

func (c *Cache[K, V]) drop(k K) {
	if _, ok := c.m.LoadAndDelete(k); ok {
		c.n.Add(-1)
	}
}
