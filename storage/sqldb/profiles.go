package sqldb

import (
	"context"
	"encoding/json"
	"slices"

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

func (db *DB) GetProfileFields(ctx context.Context, field string, userIDs []id.UserID) (map[id.UserID]json.RawMessage, error) {
	out := map[id.UserID]json.RawMessage{}
	for chunk := range slices.Chunk(userIDs, 1000) {
		cond, args := inList("user_id", 2, chunk)
		rows, err := db.r(ctx).QueryContext(ctx, `SELECT user_id, value FROM profiles WHERE field = $1`+cond,
			append([]any{field}, args...)...)
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			var u id.UserID
			var v string
			if err := rows.Scan(&u, &v); err != nil {
				rows.Close()
				return nil, err
			}
			out[u] = json.RawMessage(v)
		}
		if err := rows.Close(); err != nil {
			return nil, err
		}
		if err := rows.Err(); err != nil {
			return nil, err
		}
	}
	return out, nil
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
