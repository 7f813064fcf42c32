package sqldb

import (
	"context"
	"encoding/json"

	"maunium.net/go/mautrix/id"
)

func (db *DB) GetProfile(ctx context.Context, userID id.UserID) (map[string]json.RawMessage, error) {
	rows, err := db.r(ctx).QueryContext(ctx, `SELECT field, value FROM profiles WHERE user_id = $1`, userID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]json.RawMessage{}
	for rows.Next() {
		var k, v string
		if err := rows.Scan(&k, &v); err != nil {
			return nil, err
		}
		out[k] = json.RawMessage(v)
	}
	return out, rows.Err()
}

func (db *DB) SetProfileField(ctx context.Context, userID id.UserID, key string, value json.RawMessage) error {
	if value == nil {
		_, err := db.exec(ctx, `DELETE FROM profiles WHERE user_id = $1 AND field = $2`, userID, key)
		return err
	}
	_, err := db.exec(ctx, `INSERT INTO profiles (user_id, field, value) VALUES ($1, $2, $3)
		ON CONFLICT (user_id, field) DO UPDATE SET value = excluded.value`, userID, key, string(value))
	return err
}

func (db *DB) DeleteProfile(ctx context.Context, userID id.UserID) error {
	_, err := db.exec(ctx, `DELETE FROM profiles WHERE user_id = $1`, userID)
	return err
}
