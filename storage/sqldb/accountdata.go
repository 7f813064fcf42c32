package sqldb

import (
	"context"
	"encoding/json"

	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/storage"
)

// nextStreamPos takes the next position of a named stream inside the
// context's transaction; the row lock serialises writers on PostgreSQL.
func (db *DB) nextStreamPos(ctx context.Context, stream string) (int64, error) {
	var pos int64
	err := db.w(ctx).QueryRowContext(ctx,
		`UPDATE stream_positions SET pos = pos + 1 WHERE name = $1 RETURNING pos`, stream).Scan(&pos)
	return pos, err
}

func (db *DB) PutAccountData(ctx context.Context, userID id.UserID, roomID id.RoomID, dataType string, content json.RawMessage) (int64, error) {
	var pos int64
	err := db.WithTx(ctx, func(ctx context.Context) error {
		var err error
		if pos, err = db.nextStreamPos(ctx, "account_data"); err != nil {
			return err
		}
		_, err = db.exec(ctx, `INSERT INTO account_data (user_id, room_id, data_type, content, stream_pos)
			VALUES ($1, $2, $3, $4, $5)
			ON CONFLICT (user_id, room_id, data_type) DO UPDATE SET content = excluded.content, stream_pos = excluded.stream_pos`,
			userID, roomID, dataType, string(content), pos)
		return err
	})
	return pos, err
}

func scanAccountData(row interface{ Scan(...any) error }) (*storage.AccountDataEntry, error) {
	var e storage.AccountDataEntry
	var content string
	if err := row.Scan(&e.UserID, &e.RoomID, &e.Type, &content, &e.StreamPos); err != nil {
		return nil, notFound(err)
	}
	e.Content = json.RawMessage(content)
	return &e, nil
}

func (db *DB) GetAccountData(ctx context.Context, userID id.UserID, roomID id.RoomID, dataType string) (*storage.AccountDataEntry, error) {
	return scanAccountData(db.r(ctx).QueryRowContext(ctx, `SELECT user_id, room_id, data_type, content, stream_pos
		FROM account_data WHERE user_id = $1 AND room_id = $2 AND data_type = $3`, userID, roomID, dataType))
}

func (db *DB) AccountDataSince(ctx context.Context, userID id.UserID, since int64) ([]*storage.AccountDataEntry, error) {
	rows, err := db.r(ctx).QueryContext(ctx, `SELECT user_id, room_id, data_type, content, stream_pos
		FROM account_data WHERE user_id = $1 AND stream_pos > $2 ORDER BY stream_pos`, userID, since)
	if err != nil {
		return nil, err
	}
	return collect(rows, scanAccountData)
}
