package keys

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"maunium.net/go/mautrix/federation"
)

// RequestKeys adapts the Ring to mautrix's federation.KeyCache, which
// federation.ServerAuth (the X-Matrix check of inbound requests) reads. It
// wraps mautrix where it falls short: ServerAuth on its own fetches only
// from the origin and keeps nothing across restarts; through this cache
// it gets the Ring's persisted keys and notary fallback. ServerAuth's own
// fetch (for a key ID missing from a valid response) still happens, and
// StoreKeys checks and persists what it brings.
type RequestKeys struct{ Ring *Ring }

var _ federation.KeyCache = RequestKeys{}

// LoadKeys returns the freshest stored response of serverName that is
// still valid, fetching when there is none; nil when nothing is known.
func (c RequestKeys) LoadKeys(ctx context.Context, serverName string, _ time.Duration) (*federation.ServerKeyResponse, error) {
	skr, err := c.current(ctx, serverName)
	if err != nil || skr != nil {
		return skr, err
	}
	if ferr := c.Ring.Fetch(ctx, serverName, false); ferr != nil {
		if errors.Is(ferr, errRecentFetch) {
			return nil, fmt.Errorf("%w: %w", federation.ErrRecentKeyQueryFailed, ferr)
		}
		return nil, ferr
	}
	return c.current(ctx, serverName)
}

func (c RequestKeys) current(ctx context.Context, serverName string) (*federation.ServerKeyResponse, error) {
	keys, err := c.Ring.opts.Store.GetServerKeys(ctx, serverName)
	if err != nil {
		return nil, err
	}
	now := c.Ring.opts.Now()
	var best []byte
	var bestUntil int64
	for _, k := range keys {
		if k.ExpiredTS == 0 && k.ValidUntilTS > now.UnixMilli() && k.ValidUntilTS > bestUntil {
			best, bestUntil = k.Response, k.ValidUntilTS
		}
	}
	if best == nil {
		return nil, nil
	}
	var skr federation.ServerKeyResponse
	if err := json.Unmarshal(best, &skr); err != nil {
		return nil, err
	}
	return &skr, nil
}

// StoreKeys checks (server name, self-signatures) and stores a response
// ServerAuth fetched itself.
func (c RequestKeys) StoreKeys(ctx context.Context, skr *federation.ServerKeyResponse) error {
	if skr == nil {
		return errors.New("no key response")
	}
	return c.Ring.store(ctx, skr.ServerName, skr)
}

// StoreFetchError: the Ring already spaces out fetches (refetchAfter).
func (c RequestKeys) StoreFetchError(context.Context, string, error) error { return nil }

// ShouldReQuery lets ServerAuth ask again for a key ID missing from a
// valid response when the Ring has not fetched the server within
// refetchAfter.
func (c RequestKeys) ShouldReQuery(_ context.Context, serverName string) (bool, error) {
	r := c.Ring
	r.mu.Lock()
	defer r.mu.Unlock()
	last, ok := r.lastFetch[serverName]
	if ok && r.opts.Now().Sub(last) < refetchAfter {
		return false, nil
	}
	r.lastFetch[serverName] = r.opts.Now()
	return true, nil
}
