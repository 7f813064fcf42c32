package sqldb

import (
	"context"
	"database/sql"
	"errors"

	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/storage"
)

const delayedCols = `delay_id, user_id, device_id, room_id, type, state_key, content, delay_ms, running_since, send_ts,
	stream_pos, txn_key`

func scanDelayed(row interface{ Scan(...any) error }) (*storage.DelayedEvent, error) {
	var e storage.DelayedEvent
	var key sql.NullString
	var content string
	if err := row.Scan(&e.DelayID, &e.UserID, &e.DeviceID, &e.RoomID, &e.Type, &key, &content, &e.DelayMS,
		&e.RunningSince, &e.SendTS, &e.StreamPos, &e.TxnKey); err != nil {
		return nil, err
	}
	if key.Valid {
		e.StateKey = &key.String
	}
	e.Content = []byte(content)
	return &e, nil
}

func (db *DB) AddDelayedEvent(ctx context.Context, e *storage.DelayedEvent) (*storage.DelayedEvent, error) {
	var existing *storage.DelayedEvent
	err := db.WithTx(ctx, func(ctx context.Context) error {
		if e.TxnKey != "" {
			got, err := scanDelayed(db.r(ctx).QueryRowContext(ctx, `SELECT `+delayedCols+` FROM delayed_events
				WHERE user_id = $1 AND device_id = $2 AND txn_key = $3`, e.UserID, e.DeviceID, e.TxnKey))
			if err == nil {
				existing = got
				return nil
			} else if !errors.Is(err, sql.ErrNoRows) {
				return err
			}
		}
		pos, err := db.MaxStreamPos(ctx)
		if err != nil {
			return err
		}
		e.StreamPos = pos
		_, err = db.exec(ctx, `INSERT INTO delayed_events (`+delayedCols+`)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`, e.DelayID, e.UserID, e.DeviceID, e.RoomID,
			e.Type, e.StateKey, string(e.Content), e.DelayMS, e.RunningSince, e.SendTS, e.StreamPos, e.TxnKey)
		return err
	})
	return existing, err
}

func (db *DB) CountDelayedEvents(ctx context.Context, user id.UserID) (int, error) {
	var n int
	err := db.r(ctx).QueryRowContext(ctx, `SELECT COUNT(*) FROM delayed_events WHERE user_id = $1`, user).Scan(&n)
	return n, err
}

func (db *DB) GetDelayedEvent(ctx context.Context, delayID string) (*storage.DelayedEvent, error) {
	e, err := scanDelayed(db.r(ctx).QueryRowContext(ctx, `SELECT `+delayedCols+` FROM delayed_events WHERE delay_id = $1`,
		delayID))
	return e, notFound(err)
}

func (db *DB) ListDelayedEvents(ctx context.Context, user id.UserID, from string, limit int) ([]*storage.DelayedEvent, error) {
	rows, err := db.r(ctx).QueryContext(ctx, `SELECT `+delayedCols+` FROM delayed_events
		WHERE user_id = $1 AND delay_id > $2 ORDER BY delay_id LIMIT $3`, user, from, limit)
	if err != nil {
		return nil, err
	}
	return collect(rows, scanDelayed)
}

func (db *DB) RestartDelayedEvent(ctx context.Context, delayID string, now int64) error {
	return db.execOne(ctx, `UPDATE delayed_events SET running_since = $2, send_ts = $2 + delay_ms WHERE delay_id = $1`,
		delayID, now)
}

func (db *DB) DeleteDelayedEvent(ctx context.Context, delayID string) error {
	return db.execOne(ctx, `DELETE FROM delayed_events WHERE delay_id = $1`, delayID)
}

func (db *DB) DueDelayedEvents(ctx context.Context, now int64, limit int) ([]*storage.DelayedEvent, error) {
	rows, err := db.r(ctx).QueryContext(ctx, `SELECT `+delayedCols+` FROM delayed_events
		WHERE send_ts <= $1 ORDER BY send_ts, delay_id LIMIT $2`, now, limit)
	if err != nil {
		return nil, err
	}
	return collect(rows, scanDelayed)
}

func (db *DB) NextDelayedEventTS(ctx context.Context) (int64, bool, error) {
	var ts sql.NullInt64
	err := db.r(ctx).QueryRowContext(ctx, `SELECT MIN(send_ts) FROM delayed_events`).Scan(&ts)
	return ts.Int64, ts.Valid, err
}

func (db *DB) CancelOverriddenDelayedState(ctx context.Context, roomID id.RoomID) (int64, error) {
	// State another sender set after the delayed event was scheduled: an
	// accepted state event of the same type and key, later in the stream.
	res, err := db.exec(ctx, `DELETE FROM delayed_events WHERE room_id = $1 AND state_key IS NOT NULL AND EXISTS (
		SELECT 1 FROM events e WHERE e.room_id = delayed_events.room_id AND e.stream_pos > delayed_events.stream_pos
			AND e.type = delayed_events.type AND e.state_key = delayed_events.state_key
			AND e.sender <> delayed_events.user_id AND e.rejected = 0 AND e.soft_failed = 0 AND e.outlier = 0)`, roomID)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

func (db *DB) DelayedStateRooms(ctx context.Context) ([]id.RoomID, error) {
	return queryStrings[id.RoomID](db, ctx, `SELECT DISTINCT room_id FROM delayed_events WHERE state_key IS NOT NULL
		ORDER BY room_id`)
}

func (db *DB) GetThreadSubscription(ctx context.Context, user id.UserID, roomID id.RoomID, root id.EventID) (*storage.ThreadSubscription, error) {
	s := storage.ThreadSubscription{UserID: user, RoomID: roomID, RootID: root}
	var subscribed, automatic int64
	err := db.r(ctx).QueryRowContext(ctx, `SELECT subscribed, automatic, unsubscribed_at FROM thread_subscriptions
		WHERE user_id = $1 AND room_id = $2 AND root_id = $3`, user, roomID, root).Scan(&subscribed, &automatic,
		&s.UnsubscribedAt)
	if err != nil {
		return nil, notFound(err)
	}
	s.Subscribed, s.Automatic = subscribed != 0, automatic != 0
	return &s, nil
}

func (db *DB) PutThreadSubscription(ctx context.Context, s *storage.ThreadSubscription) error {
	_, err := db.exec(ctx, `INSERT INTO thread_subscriptions (user_id, room_id, root_id, subscribed, automatic,
		unsubscribed_at) VALUES ($1, $2, $3, $4, $5, $6)
		ON CONFLICT (user_id, room_id, root_id) DO UPDATE SET subscribed = excluded.subscribed,
			automatic = excluded.automatic, unsubscribed_at = excluded.unsubscribed_at`,
		s.UserID, s.RoomID, s.RootID, b2i(s.Subscribed), b2i(s.Automatic), s.UnsubscribedAt)
	return err
}

func (db *DB) ThreadSubscribers(ctx context.Context, roomID id.RoomID, root id.EventID) ([]id.UserID, error) {
	return queryStrings[id.UserID](db, ctx, `SELECT user_id FROM thread_subscriptions
		WHERE room_id = $1 AND root_id = $2 AND subscribed = 1 ORDER BY user_id`, roomID, root)
}
