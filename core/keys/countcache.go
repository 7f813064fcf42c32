package keys

import (
	"maunium.net/go/mautrix/id"

	"sync"
)

// maxCountEntries bounds the key count cache; past it, it starts afresh.
const maxCountEntries = 500_000

// countCache keeps each device's one-time key counts and unused fallback
// key types, which every /sync of the device reads. Whatever changes a
// device's keys forgets its entry after committing; an entry computed while
// something was forgotten is not kept (the epoch moved), so a read that
// raced a change never sticks.
type countCache struct {
	mu    sync.Mutex
	epoch uint64
	m     map[countKey]*deviceCounts
}

// deviceCounts are a device's counts. The map and slice are never changed
// once stored (put stores copies): get hands them out as they are, and
// whoever gets them must not change them.
type deviceCounts struct {
	otk      map[string]int64 // nil: not read yet
	fallback []string
	hasFB    bool
}

type countKey struct {
	user   id.UserID
	device id.DeviceID
}

// get returns what is known of the device (shared: not to be changed), and
// the epoch to hand back to put. Every woken /sync asks: no copies.
func (c *countCache) get(user id.UserID, device id.DeviceID) (deviceCounts, uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e := c.m[countKey{user, device}]; e != nil {
		return *e, c.epoch
	}
	return deviceCounts{}, c.epoch
}

// put records what was read at epoch, unless something changed since.
func (c *countCache) put(user id.UserID, device id.DeviceID, epoch uint64, set func(*deviceCounts)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if epoch != c.epoch {
		return
	}
	if c.m == nil || len(c.m) >= maxCountEntries {
		c.m = map[countKey]*deviceCounts{}
	}
	k := countKey{user, device}
	e := c.m[k]
	if e == nil {
		e = &deviceCounts{}
		c.m[k] = e
	}
	set(e)
}

// forget drops the devices' entries (after their keys changed).
func (c *countCache) forget(user id.UserID, devices ...id.DeviceID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.epoch++
	for _, d := range devices {
		delete(c.m, countKey{user, d})
	}
}
