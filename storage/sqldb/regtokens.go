package sqldb

import (
	"context"
	"database/sql"

	"github.com/tributary-hs/tributary/storage"
)

const regTokenCols = `token, uses_allowed, pending, completed, expiry_time`

func scanRegToken(row interface{ Scan(...any) error }) (*storage.RegistrationToken, error) {
	var t storage.RegistrationToken
	var uses, expiry sql.NullInt64
	if err := row.Scan(&t.Token, &uses, &t.Pending, &t.Completed, &expiry); err != nil {
		return nil, notFound(err)
	}
	if uses.Valid {
		t.UsesAllowed = &uses.Int64
	}
	if expiry.Valid {
		t.ExpiryTime = &expiry.Int64
	}
	return &t, nil
}

func (db *DB) CreateRegistrationToken(ctx context.Context, t *storage.RegistrationToken) error {
	return db.insertNew(ctx, "registration token", `INSERT INTO registration_tokens (`+regTokenCols+`) VALUES ($1, $2, $3, $4, $5)`,
		t.Token, t.UsesAllowed, t.Pending, t.Completed, t.ExpiryTime)
}

func (db *DB) GetRegistrationToken(ctx context.Context, token string) (*storage.RegistrationToken, error) {
	return scanRegToken(db.r(ctx).QueryRowContext(ctx,
		`SELECT `+regTokenCols+` FROM registration_tokens WHERE token = $1`, token))
}

func (db *DB) ListRegistrationTokens(ctx context.Context) ([]*storage.RegistrationToken, error) {
	rows, err := db.r(ctx).QueryContext(ctx, `SELECT `+regTokenCols+` FROM registration_tokens ORDER BY token`)
	if err != nil {
		return nil, err
	}
	return collect(rows, scanRegToken)
}

func (db *DB) UpdateRegistrationToken(ctx context.Context, t *storage.RegistrationToken) error {
	return db.execOne(ctx, `UPDATE registration_tokens SET uses_allowed = $1, expiry_time = $2 WHERE token = $3`,
		t.UsesAllowed, t.ExpiryTime, t.Token)
}

func (db *DB) DeleteRegistrationToken(ctx context.Context, token string) error {
	return db.execOne(ctx, `DELETE FROM registration_tokens WHERE token = $1`, token)
}

func (db *DB) UseRegistrationToken(ctx context.Context, token string, now int64) error {
	return db.execOne(ctx, `UPDATE registration_tokens SET completed = completed + 1
		WHERE token = $1
		  AND (uses_allowed IS NULL OR completed + pending < uses_allowed)
		  AND (expiry_time IS NULL OR expiry_time > $2)`, token, now)
}
