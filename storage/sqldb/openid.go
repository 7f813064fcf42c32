package sqldb

import "context"

func (db *DB) PutOpenIDToken(ctx context.Context, tokenHash, userID string, expiresAt int64) error {
	_, err := db.exec(ctx, `INSERT INTO openid_tokens (token_hash, user_id, expires_at) VALUES ($1, $2, $3)`,
		tokenHash, userID, expiresAt)
	return err
}

func (db *DB) OpenIDTokenUser(ctx context.Context, tokenHash string, now int64) (string, error) {
	var user string
	err := db.r(ctx).QueryRowContext(ctx, `SELECT user_id FROM openid_tokens WHERE token_hash = $1 AND expires_at > $2`,
		tokenHash, now).Scan(&user)
	return user, notFound(err)
}
