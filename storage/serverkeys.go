package storage

import (
	"context"

	"maunium.net/go/mautrix/id"
)

// ServerKey is one signing key of another server, as a key response (from
// the server itself or through a notary) published it.
type ServerKey struct {
	ServerName string
	KeyID      id.KeyID
	PublicKey  id.SigningKey
	// ValidUntilTS is the valid_until_ts of the response that carried the
	// key (ms since the epoch).
	ValidUntilTS int64
	// ExpiredTS is 0 for a key listed in verify_keys; for one listed in
	// old_verify_keys, its expired_ts: the server stopped signing with it
	// then.
	ExpiredTS int64
	// FetchedTS is when this server received the response.
	FetchedTS int64
	// Response is the key response as its server signed it (what a notary
	// hands on).
	Response []byte
}

// ServerKeys caches other servers' signing keys (federation/keys).
type ServerKeys interface {
	// PutServerKeys stores keys. A key already stored for the same server
	// and key ID is replaced by one with a later valid_until_ts, or by the
	// report that it has expired (old_verify_keys); never by older news.
	PutServerKeys(ctx context.Context, keys []ServerKey) error
	// GetServerKeys returns the keys stored for a server, by key ID; an
	// empty slice if there are none.
	GetServerKeys(ctx context.Context, serverName string) ([]ServerKey, error)
}
