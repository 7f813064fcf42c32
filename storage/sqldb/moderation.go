package sqldb

import (
	"context"

	"maunium.net/go/mautrix/id"
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
