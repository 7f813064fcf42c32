package sqldb

import (
	"context"

	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/storage"
)

func (db *DB) AccountRestrictions(ctx context.Context, userID id.UserID) (bool, bool, error) {
	var suspended, locked int64
	err := db.r(ctx).QueryRowContext(ctx, `SELECT suspended, locked FROM accounts WHERE user_id = $1`, userID).
		Scan(&suspended, &locked)
	return suspended != 0, locked != 0, notFound(err)
}

func (db *DB) SetAccountSuspended(ctx context.Context, userID id.UserID, suspended bool) error {
	return db.execOne(ctx, `UPDATE accounts SET suspended = $1 WHERE user_id = $2`, b2i(suspended), userID)
}

func (db *DB) SetAccountLocked(ctx context.Context, userID id.UserID, locked bool) error {
	return db.execOne(ctx, `UPDATE accounts SET locked = $1 WHERE user_id = $2`, b2i(locked), userID)
}

func (db *DB) AccountLimits(ctx context.Context, userID id.UserID) (bool, *storage.RateOverride, error) {
	var banned, override, perSecond, burst int64
	err := db.r(ctx).QueryRowContext(ctx, `SELECT shadow_banned, ratelimit_override, ratelimit_per_second, ratelimit_burst
		FROM accounts WHERE user_id = $1`, userID).Scan(&banned, &override, &perSecond, &burst)
	if err != nil {
		return false, nil, notFound(err)
	}
	var o *storage.RateOverride
	if override != 0 {
		o = &storage.RateOverride{PerSecond: perSecond, Burst: burst}
	}
	return banned != 0, o, nil
}

func (db *DB) SetShadowBanned(ctx context.Context, userID id.UserID, banned bool) error {
	return db.execOne(ctx, `UPDATE accounts SET shadow_banned = $1 WHERE user_id = $2`, b2i(banned), userID)
}

func (db *DB) SetRateOverride(ctx context.Context, userID id.UserID, o *storage.RateOverride) error {
	if o == nil {
		return db.execOne(ctx, `UPDATE accounts SET ratelimit_override = 0, ratelimit_per_second = 0, ratelimit_burst = 0
			WHERE user_id = $1`, userID)
	}
	return db.execOne(ctx, `UPDATE accounts SET ratelimit_override = 1, ratelimit_per_second = $1, ratelimit_burst = $2
		WHERE user_id = $3`, o.PerSecond, o.Burst, userID)
}
