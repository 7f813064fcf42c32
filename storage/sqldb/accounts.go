package sqldb

import (
	"context"
	"database/sql"

	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/storage"
)

const accountCols = `user_id, localpart, password_hash, is_admin, deactivated, user_type, appservice_id, created_at`

func scanAccount(row interface{ Scan(...any) error }) (*storage.Account, error) {
	var a storage.Account
	var admin, deact int64
	if err := row.Scan(&a.UserID, &a.Localpart, &a.PasswordHash, &admin, &deact, &a.UserType, &a.AppServiceID, &a.CreatedAt); err != nil {
		return nil, notFound(err)
	}
	a.IsAdmin, a.Deactivated = admin != 0, deact != 0
	return &a, nil
}

func (db *DB) CreateAccount(ctx context.Context, a *storage.Account) error {
	return db.insertNew(ctx, "account "+a.UserID.String(), `INSERT INTO accounts (`+accountCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
		a.UserID, a.Localpart, a.PasswordHash, b2i(a.IsAdmin), b2i(a.Deactivated), a.UserType, a.AppServiceID, a.CreatedAt)
}

func (db *DB) GetAccount(ctx context.Context, userID id.UserID) (*storage.Account, error) {
	return scanAccount(db.r(ctx).QueryRowContext(ctx, `SELECT `+accountCols+` FROM accounts WHERE user_id = $1`, userID))
}

func (db *DB) ListAccounts(ctx context.Context) ([]*storage.Account, error) {
	rows, err := db.r(ctx).QueryContext(ctx, `SELECT `+accountCols+` FROM accounts ORDER BY user_id`)
	if err != nil {
		return nil, err
	}
	return collect(rows, scanAccount)
}

func (db *DB) CountAccounts(ctx context.Context) (int64, error) {
	var n int64
	err := db.r(ctx).QueryRowContext(ctx, `SELECT COUNT(*) FROM accounts`).Scan(&n)
	return n, err
}

func (db *DB) SetPasswordHash(ctx context.Context, userID id.UserID, hash string) error {
	return db.execOne(ctx, `UPDATE accounts SET password_hash = $1 WHERE user_id = $2`, hash, userID)
}

func (db *DB) SetAdmin(ctx context.Context, userID id.UserID, admin bool) error {
	return db.execOne(ctx, `UPDATE accounts SET is_admin = $1 WHERE user_id = $2`, b2i(admin), userID)
}

func (db *DB) DeactivateAccount(ctx context.Context, userID id.UserID) error {
	return db.WithTx(ctx, func(ctx context.Context) error {
		if err := db.execOne(ctx, `UPDATE accounts SET deactivated = 1, password_hash = '' WHERE user_id = $1`, userID); err != nil {
			return err
		}
		// Nothing is pushed to a deactivated account.
		return db.deletePushersWhere(ctx, `user_id = $1`, userID)
	})
}

// collect scans every row with scan and closes rows. No rows is an empty,
// non-nil slice (it encodes as [] in JSON, not null).
func collect[T any](rows *sql.Rows, scan func(interface{ Scan(...any) error }) (T, error)) ([]T, error) {
	defer rows.Close()
	out := []T{}
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}
