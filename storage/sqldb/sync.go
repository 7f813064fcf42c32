package sqldb

import (
	"context"
	"strconv"

	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/storage"
)

func (db *DB) StateEventsBetween(ctx context.Context, roomID id.RoomID, after, before int64) ([]*storage.Event, error) {
	rows, err := db.r(ctx).QueryContext(ctx, `SELECT `+eventCols+` FROM events
		WHERE room_id = $1 AND state_key IS NOT NULL AND rejected = 0 AND soft_failed = 0 AND outlier IN (0, `+purgedOutlier+`)
		  AND stream_pos > $2 AND stream_pos < $3 ORDER BY stream_pos`, roomID, after, before)
	if err != nil {
		return nil, err
	}
	return collect(rows, scanEvent)
}

func (db *DB) HasMessages(ctx context.Context, roomID id.RoomID) (bool, error) {
	var n int
	err := db.r(ctx).QueryRowContext(ctx, `SELECT COUNT(*) FROM (SELECT 1 FROM events
		WHERE room_id = $1 AND state_key IS NULL AND rejected = 0 AND soft_failed = 0 AND outlier = 0 LIMIT 1) AS m`, roomID).Scan(&n)
	return n > 0, err
}

func (db *DB) MemberEventsBetween(ctx context.Context, after, upto int64) ([]*storage.Event, error) {
	rows, err := db.r(ctx).QueryContext(ctx, `SELECT `+eventCols+` FROM events
		WHERE stream_pos > $1 AND stream_pos <= $2 AND type = 'm.room.member' AND state_key IS NOT NULL
		  AND rejected = 0 AND soft_failed = 0 AND outlier = 0 ORDER BY stream_pos`, after, upto)
	if err != nil {
		return nil, err
	}
	return collect(rows, scanEvent)
}

func (db *DB) LastEventBefore(ctx context.Context, roomID id.RoomID, before int64) (*storage.Event, error) {
	return scanEvent(db.r(ctx).QueryRowContext(ctx, `SELECT `+eventCols+` FROM events
		WHERE room_id = $1 AND rejected = 0 AND soft_failed = 0 AND outlier = 0 AND stream_pos < $2
		ORDER BY stream_pos DESC LIMIT 1`, roomID, before))
}

func (db *DB) CountRoomEvents(ctx context.Context, roomID id.RoomID, after, upto int64) (int64, error) {
	var n int64
	err := db.r(ctx).QueryRowContext(ctx, `SELECT COUNT(*) FROM events
		WHERE room_id = $1 AND rejected = 0 AND soft_failed = 0 AND outlier = 0 AND stream_pos > $2 AND stream_pos <= $3`,
		roomID, after, upto).Scan(&n)
	return n, err
}

func (db *DB) MaxAccountDataPos(ctx context.Context) (int64, error) {
	var pos int64
	err := db.r(ctx).QueryRowContext(ctx, `SELECT pos FROM stream_positions WHERE name = 'account_data'`).Scan(&pos)
	return pos, err
}

func (db *DB) CreateFilter(ctx context.Context, userID id.UserID, filterJSON []byte) (string, error) {
	var id string
	err := db.WithTx(ctx, func(ctx context.Context) error {
		var n int64
		if err := db.w(ctx).QueryRowContext(ctx, `SELECT COUNT(*) FROM filters WHERE user_id = $1`, userID).Scan(&n); err != nil {
			return err
		}
		id = strconv.FormatInt(n, 10)
		_, err := db.exec(ctx, `INSERT INTO filters (user_id, filter_id, filter_json) VALUES ($1, $2, $3)`,
			userID, id, string(filterJSON))
		return err
	})
	return id, err
}

func (db *DB) GetFilter(ctx context.Context, userID id.UserID, filterID string) ([]byte, error) {
	var js string
	err := db.r(ctx).QueryRowContext(ctx, `SELECT filter_json FROM filters WHERE user_id = $1 AND filter_id = $2`,
		userID, filterID).Scan(&js)
	if err != nil {
		return nil, notFound(err)
	}
	return []byte(js), nil
}

func (db *DB) RoomsWithEventsBetween(ctx context.Context, after, upto int64) ([]id.RoomID, error) {
	return queryStrings[id.RoomID](db, ctx, `SELECT DISTINCT room_id FROM events WHERE stream_pos > $1 AND stream_pos <= $2`, after, upto)
}
