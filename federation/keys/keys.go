// Package keys owns this server's federation signing keys (and, with the
// federation issue, fetching and caching other servers' keys).
package keys

import (
	"context"
	"errors"
	"fmt"

	"maunium.net/go/mautrix/federation"

	"github.com/tributary-hs/tributary/storage"
)

const metaKey = "signing_key"

// LoadOrCreate returns the server's ed25519 signing key, made and stored on
// first start in Synapse's key file format. It lives in the database so that
// every worker process signs with the same key.
func LoadOrCreate(ctx context.Context, meta storage.Meta) (*federation.SigningKey, error) {
	raw, err := meta.GetMeta(ctx, metaKey)
	if errors.Is(err, storage.ErrNotFound) {
		// Another process starting at the same time may store its key first:
		// InitMeta keeps whichever came first, and both use it.
		if raw, err = meta.InitMeta(ctx, metaKey, federation.GenerateSigningKey().SynapseString()); err != nil {
			return nil, fmt.Errorf("store signing key: %w", err)
		}
	} else if err != nil {
		return nil, err
	}
	key, err := federation.ParseSynapseKey(raw)
	if err != nil {
		return nil, fmt.Errorf("stored signing key: %w", err)
	}
	return key, nil
}
