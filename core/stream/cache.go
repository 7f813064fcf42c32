package stream

import (
	"sync"
	"sync/atomic"
)

// Cache keeps values read from storage until a published change forgets
// them (its observer calls Forget). A read that raced a Forget is returned
// but not kept, so the cache never holds what a change has made stale —
// whichever process published the change.
type Cache[K comparable, V any] struct {
	m sync.Map // K → V
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
	c.m.Store(k, v)
	if c.gen.Load() != gen {
		c.m.Delete(k) // a Forget landed while storing
	}
	return v, nil
}

// Put keeps v for k (a value this process just wrote).
func (c *Cache[K, V]) Put(k K, v V) { c.m.Store(k, v) }

// Forget drops the keys, and any value being read meanwhile.
func (c *Cache[K, V]) Forget(keys ...K) {
	c.gen.Add(1)
	for _, k := range keys {
		c.m.Delete(k)
	}
}
