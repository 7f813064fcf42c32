package users

import (
	"sync"

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
type tokenCache struct {
	mu sync.Mutex
	// gen counts forgets: a read is kept only if none landed meanwhile.
	gen    uint64
	tokens map[string]*cachedToken
	byUser map[id.UserID]map[string]struct{}
}

type cachedToken struct {
	at   storage.AccessToken
	used bool // since the last sweep
}

// get returns a copy of the cached token; on a miss, the generation to
// hand put with what is read.
func (c *tokenCache) get(hash string) (*storage.AccessToken, uint64, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if t, ok := c.tokens[hash]; ok {
		t.used = true
		at := t.at
		return &at, 0, true
	}
	return nil, c.gen, false
}

// put keeps a token read since generation gen, unless a forget came since.
func (c *tokenCache) put(gen uint64, at *storage.AccessToken) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen != c.gen {
		return
	}
	if c.tokens == nil || len(c.tokens) >= maxCachedTokens {
		c.tokens, c.byUser = map[string]*cachedToken{}, map[id.UserID]map[string]struct{}{}
	}
	c.tokens[at.TokenHash] = &cachedToken{at: *at, used: true}
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
	c.gen++
	for _, u := range users {
		for h := range c.byUser[u] {
			delete(c.tokens, h)
		}
		delete(c.byUser, u)
	}
}

// sweep drops the tokens unused since the last sweep.
func (c *tokenCache) sweep() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for h, t := range c.tokens {
		if t.used {
			t.used = false
			continue
		}
		delete(c.tokens, h)
		if hashes := c.byUser[t.at.UserID]; hashes != nil {
			delete(hashes, h)
			if len(hashes) == 0 {
				delete(c.byUser, t.at.UserID)
			}
		}
	}
}
