package users

import (
	"sync"
	"sync/atomic"

	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/storage"
)

// maxCachedTokens bounds the token cache; past it, it starts afresh.
const maxCachedTokens = 200_000

// tokenCache keeps the access tokens in use, so that an authenticated
// request (every /sync of every client) reads no database row. An entry
// holds until its user's tokens change: whatever deletes tokens (logout,
// device deletion, a new login on the same device, a password change,
// deactivation, refresh) calls tokensChanged, which forgets the user's
// entries here and publishes an account change that makes other processes
// forget theirs. A read that raced a forget is not kept. Expiry is checked
// on every use; entries unused between two sweeps (housekeeping) go.
//
// A hit takes no lock: every authenticated request of every client looks
// its token up, and under a crowd's load a mutex there queued the requests
// behind whichever holder the scheduler had put aside (an unrelated
// /sync?timeout=0 waited 130 ms in 20 s for it). Writes (put, forget,
// sweep) take mu among themselves.
type tokenCache struct {
	mu sync.Mutex
	// gen counts forgets: a read is kept only if none landed meanwhile
	// (written under mu).
	gen atomic.Uint64
	// tokens: hash → *cachedToken; n counts them (under mu).
	tokens sync.Map
	n      int
	byUser map[id.UserID]map[string]struct{} // under mu
}

type cachedToken struct {
	at   storage.AccessToken
	used atomic.Bool // since the last sweep
}

// get returns a copy of the cached token; on a miss, the generation to
// hand put with what is read.
func (c *tokenCache) get(hash string) (*storage.AccessToken, uint64, bool) {
	if v, ok := c.tokens.Load(hash); ok {
		t := v.(*cachedToken)
		if !t.used.Load() {
			t.used.Store(true)
		}
		at := t.at
		return &at, 0, true
	}
	// Read after the miss: a forget since then is seen by put.
	return nil, c.gen.Load(), false
}

// put keeps a token read since generation gen, unless a forget came since.
func (c *tokenCache) put(gen uint64, at *storage.AccessToken) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen != c.gen.Load() {
		return
	}
	if c.byUser == nil || c.n >= maxCachedTokens {
		c.tokens.Clear()
		c.n, c.byUser = 0, map[id.UserID]map[string]struct{}{}
	}
	t := &cachedToken{at: *at}
	t.used.Store(true)
	if _, loaded := c.tokens.Swap(at.TokenHash, t); !loaded {
		c.n++
	}
	hashes := c.byUser[at.UserID]
	if hashes == nil {
		hashes = map[string]struct{}{}
		c.byUser[at.UserID] = hashes
	}
	hashes[at.TokenHash] = struct{}{}
}

// forget drops the users' tokens, and any token being read meanwhile.
func (c *tokenCache) forget(users ...id.UserID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen.Add(1)
	for _, u := range users {
		for h := range c.byUser[u] {
			if _, ok := c.tokens.LoadAndDelete(h); ok {
				c.n--
			}
		}
		delete(c.byUser, u)
	}
}

// sweep drops the tokens unused since the last sweep.
func (c *tokenCache) sweep() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.tokens.Range(func(k, v any) bool {
		h, t := k.(string), v.(*cachedToken)
		if t.used.Load() {
			t.used.Store(false)
			return true
		}
		c.tokens.Delete(h)
		c.n--
		if hashes := c.byUser[t.at.UserID]; hashes != nil {
			delete(hashes, h)
			if len(hashes) == 0 {
				delete(c.byUser, t.at.UserID)
			}
		}
		return true
	})
}
