package sqldb

import (
	"context"

	"github.com/tributary-hs/tributary/storage"
)

func (db *DB) CreateAccessToken(ctx context.Context, t *storage.AccessToken) error {
	return db.insertNew(ctx, "access token", `INSERT INTO access_tokens
		(token_hash, user_id, device_id, expires_at, refresh_hash, prev_refresh_hash, created_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7)`,
		t.TokenHash, t.UserID, t.DeviceID, t.ExpiresAt, t.RefreshHash, t.PrevRefreshHash, t.CreatedAt)
}

func (db *DB) GetAccessToken(ctx context.Context, tokenHash string) (*storage.AccessToken, error) {
	var t storage.AccessToken
	err := db.r(ctx).QueryRowContext(ctx, `SELECT token_hash, user_id, device_id, expires_at, refresh_hash, prev_refresh_hash, created_at
		FROM access_tokens WHERE token_hash = $1`, tokenHash).
		Scan(&t.TokenHash, &t.UserID, &t.DeviceID, &t.ExpiresAt, &t.RefreshHash, &t.PrevRefreshHash, &t.CreatedAt)
	if err != nil {
		return nil, notFound(err)
	}
	return &t, nil
}

func (db *DB) DeleteAccessToken(ctx context.Context, tokenHash string) error {
	_, err := db.exec(ctx, `DELETE FROM access_tokens WHERE token_hash = $1`, tokenHash)
	return err
}

func (db *DB) DeleteAccessTokensByRefresh(ctx context.Context, refreshHash string) error {
	if refreshHash == "" {
		// Tokens issued without a refresh token have refresh_hash ''; they
		// were not issued with "this" refresh token.
		return nil
	}
	_, err := db.exec(ctx, `DELETE FROM access_tokens WHERE refresh_hash = $1`, refreshHash)
	return err
}

func (db *DB) ClearPrevRefresh(ctx context.Context, tokenHash string) error {
	_, err := db.exec(ctx, `UPDATE access_tokens SET prev_refresh_hash = '' WHERE token_hash = $1`, tokenHash)
	return err
}

func (db *DB) CreateRefreshToken(ctx context.Context, t *storage.RefreshToken) error {
	return db.insertNew(ctx, "refresh token", `INSERT INTO refresh_tokens (token_hash, user_id, device_id, prev_hash, created_at)
		VALUES ($1, $2, $3, $4, $5)`, t.TokenHash, t.UserID, t.DeviceID, t.PrevHash, t.CreatedAt)
}

func (db *DB) GetRefreshToken(ctx context.Context, tokenHash string) (*storage.RefreshToken, error) {
	var t storage.RefreshToken
	err := db.r(ctx).QueryRowContext(ctx, `SELECT token_hash, user_id, device_id, prev_hash, created_at
		FROM refresh_tokens WHERE token_hash = $1`, tokenHash).
		Scan(&t.TokenHash, &t.UserID, &t.DeviceID, &t.PrevHash, &t.CreatedAt)
	if err != nil {
		return nil, notFound(err)
	}
	return &t, nil
}

func (db *DB) DeleteRefreshToken(ctx context.Context, tokenHash string) error {
	_, err := db.exec(ctx, `DELETE FROM refresh_tokens WHERE token_hash = $1`, tokenHash)
	return err
}

func (db *DB) CreateLoginToken(ctx context.Context, t *storage.LoginToken) error {
	return db.insertNew(ctx, "login token", `INSERT INTO login_tokens (token_hash, user_id, expires_at) VALUES ($1, $2, $3)`,
		t.TokenHash, t.UserID, t.ExpiresAt)
}

func (db *DB) ConsumeLoginToken(ctx context.Context, tokenHash string) (*storage.LoginToken, error) {
	var t storage.LoginToken
	err := db.w(ctx).QueryRowContext(ctx, `DELETE FROM login_tokens WHERE token_hash = $1
		RETURNING token_hash, user_id, expires_at`, tokenHash).Scan(&t.TokenHash, &t.UserID, &t.ExpiresAt)
	if err != nil {
		return nil, notFound(err)
	}
	return &t, nil
}

func (db *DB) DeleteExpiredTokens(ctx context.Context, now int64) error {
	return db.WithTx(ctx, func(ctx context.Context) error {
		if _, err := db.exec(ctx, `DELETE FROM login_tokens WHERE expires_at < $1`, now); err != nil {
			return err
		}
		if _, err := db.exec(ctx, `DELETE FROM openid_tokens WHERE expires_at < $1`, now); err != nil {
			return err
		}
		_, err := db.exec(ctx, `DELETE FROM access_tokens WHERE expires_at > 0 AND expires_at < $1`, now)
		return err
	})
}

func (db *DB) DeleteRefreshSuccessors(ctx context.Context, prevHash string) error {
	if prevHash == "" {
		return nil
	}
	return db.WithTx(ctx, func(ctx context.Context) error {
		if _, err := db.exec(ctx, `DELETE FROM access_tokens WHERE refresh_hash IN
			(SELECT token_hash FROM refresh_tokens WHERE prev_hash = $1)`, prevHash); err != nil {
			return err
		}
		_, err := db.exec(ctx, `DELETE FROM refresh_tokens WHERE prev_hash = $1`, prevHash)
		return err
	})
}
