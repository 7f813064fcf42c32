package sqldb

import (
	"context"

	"github.com/tributary-hs/tributary/storage"
)

func (db *DB) PutServerKeys(ctx context.Context, keys []storage.ServerKey) error {
	return db.WithTx(ctx, func(ctx context.Context) error {
		for _, k := range keys {
			// Newer news only: a later valid_until_ts, or the first report
			// that the key has expired (which then stays).
			if _, err := db.exec(ctx, `INSERT INTO server_keys (server_name, key_id, public_key, valid_until_ts,
				expired_ts, fetched_ts, response) VALUES ($1, $2, $3, $4, $5, $6, $7)
				ON CONFLICT (server_name, key_id) DO UPDATE SET public_key = excluded.public_key,
					valid_until_ts = excluded.valid_until_ts, expired_ts = excluded.expired_ts,
					fetched_ts = excluded.fetched_ts, response = excluded.response
				WHERE (server_keys.expired_ts = 0 AND excluded.expired_ts <> 0)
					OR (server_keys.expired_ts = 0 AND excluded.valid_until_ts > server_keys.valid_until_ts)
					OR (server_keys.expired_ts <> 0 AND excluded.expired_ts <> 0
						AND excluded.valid_until_ts > server_keys.valid_until_ts)`,
				k.ServerName, k.KeyID, k.PublicKey, k.ValidUntilTS, k.ExpiredTS, k.FetchedTS, string(k.Response)); err != nil {
				return err
			}
		}
		return nil
	})
}

func (db *DB) GetServerKeys(ctx context.Context, serverName string) ([]storage.ServerKey, error) {
	rows, err := db.r(ctx).QueryContext(ctx, `SELECT server_name, key_id, public_key, valid_until_ts, expired_ts,
		fetched_ts, response FROM server_keys WHERE server_name = $1 ORDER BY key_id`, serverName)
	if err != nil {
		return nil, err
	}
	return collect(rows, func(row interface{ Scan(...any) error }) (storage.ServerKey, error) {
		var k storage.ServerKey
		var resp string
		err := row.Scan(&k.ServerName, &k.KeyID, &k.PublicKey, &k.ValidUntilTS, &k.ExpiredTS, &k.FetchedTS, &resp)
		k.Response = []byte(resp)
		return k, err
	})
}
