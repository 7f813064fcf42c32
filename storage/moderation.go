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
	// AccountLimits reads whether an account is shadow-banned and its
	// rate-limit override (nil: none); ErrNotFound if there is no such account.
	AccountLimits(ctx context.Context, userID id.UserID) (shadowBanned bool, override *RateOverride, err error)
	// SetShadowBanned and SetRateOverride (nil removes it) change them;
	// ErrNotFound if there is no such account.
	SetShadowBanned(ctx context.Context, userID id.UserID, banned bool) error
	SetRateOverride(ctx context.Context, userID id.UserID, override *RateOverride) error
}

// RateOverride replaces the server's message rate limit for one account:
// PerSecond actions a second, Burst at once; a PerSecond of 0 is no limit.
type RateOverride struct {
	PerSecond int64
	Burst     int64
}
