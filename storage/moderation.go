package storage

import (
	"context"

	"maunium.net/go/mautrix/id"
)

// AccountModeration stores whether accounts are suspended or locked.
type AccountModeration interface {
	// AccountRestrictions reads an account's flags; ErrNotFound if there is no such account.
	AccountRestrictions(ctx context.Context, userID id.UserID) (suspended, locked bool, err error)
	// SetAccountSuspended and SetAccountLocked change them; ErrNotFound if
	// there is no such account.
	SetAccountSuspended(ctx context.Context, userID id.UserID, suspended bool) error
	SetAccountLocked(ctx context.Context, userID id.UserID, locked bool) error
}
