package sqldb

import "context"

func (db *DB) GetMeta(ctx context.Context, key string) (string, error) {
	var v string
	err := db.r(ctx).QueryRowContext(ctx, `SELECT value FROM server_meta WHERE key = $1`, key).Scan(&v)
	return v, notFound(err)
}

func (db *DB) SetMeta(ctx context.Context, key, value string) error {
	_, err := db.exec(ctx, `INSERT INTO server_meta (key, value) VALUES ($1, $2)
		ON CONFLICT (key) DO UPDATE SET value = excluded.value`, key, value)
	return err
}

func (db *DB) InitMeta(ctx context.Context, key, value string) (string, error) {
	if _, err := db.exec(ctx, `INSERT INTO server_meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING`,
		key, value); err != nil {
		return "", err
	}
	var v string
	err := db.w(ctx).QueryRowContext(ctx, `SELECT value FROM server_meta WHERE key = $1`, key).Scan(&v)
	return v, err
}
