package storage

import (
	"context"

	"maunium.net/go/mautrix/id"
)

// OpenIDTokens stores the tokens users hand to third parties (widgets,
// integration managers) to prove who they are, by SHA-256 hash.
type OpenIDTokens interface {
	PutOpenIDToken(ctx context.Context, tokenHash string, userID id.UserID, expiresAt int64) error
	// OpenIDTokenUser is the user of a token still valid at now; ErrNotFound if none.
	OpenIDTokenUser(ctx context.Context, tokenHash string, now int64) (id.UserID, error)
}
