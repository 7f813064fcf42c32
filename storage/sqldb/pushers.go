package sqldb

import (
	"context"
	"database/sql"
	"errors"
	"strings"

	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/storage"
)

const pusherCols = `pusher_id, user_id, device_id, kind, app_id, pushkey, app_display_name, device_display_name,
	profile_tag, lang, data, pushkey_ts`

func scanPusher(row interface{ Scan(...any) error }, extra ...any) (*storage.Pusher, error) {
	var p storage.Pusher
	var data string
	dest := append([]any{&p.PusherID, &p.UserID, &p.DeviceID, &p.Kind, &p.AppID, &p.PushKey, &p.AppDisplayName,
		&p.DeviceDisplayName, &p.ProfileTag, &p.Lang, &data, &p.PushKeyTS}, extra...)
	if err := row.Scan(dest...); err != nil {
		return nil, notFound(err)
	}
	p.Data = []byte(data)
	return &p, nil
}

func (db *DB) SetPusher(ctx context.Context, p *storage.Pusher, keepOthers bool) error {
	return db.WithTx(ctx, func(ctx context.Context) error {
		if !keepOthers {
			if err := db.deletePushersWhere(ctx, `app_id = $1 AND pushkey = $2 AND user_id <> $3`,
				p.AppID, p.PushKey, p.UserID); err != nil {
				return err
			}
		}
		var next int64
		if err := db.w(ctx).QueryRowContext(ctx, `UPDATE stream_positions SET pos = pos + 1 WHERE name = 'pushers'
			RETURNING pos`).Scan(&next); err != nil {
			return err
		}
		// One statement, so that two requests setting the same pusher at
		// once update it rather than conflict.
		return db.w(ctx).QueryRowContext(ctx, `INSERT INTO pushers (`+pusherCols+`)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
			ON CONFLICT (user_id, app_id, pushkey) DO UPDATE SET device_id = excluded.device_id,
				kind = excluded.kind, app_display_name = excluded.app_display_name,
				device_display_name = excluded.device_display_name, profile_tag = excluded.profile_tag,
				lang = excluded.lang, data = excluded.data, pushkey_ts = excluded.pushkey_ts
			RETURNING pusher_id`,
			next, p.UserID, p.DeviceID, p.Kind, p.AppID, p.PushKey, p.AppDisplayName, p.DeviceDisplayName,
			p.ProfileTag, p.Lang, string(p.Data), p.PushKeyTS).Scan(&p.PusherID)
	})
}

// deletePushersWhere deletes the pushers matching cond and their queues.
func (db *DB) deletePushersWhere(ctx context.Context, cond string, args ...any) error {
	return db.WithTx(ctx, func(ctx context.Context) error {
		if _, err := db.exec(ctx, `DELETE FROM push_queue WHERE pusher_id IN (SELECT pusher_id FROM pushers WHERE `+
			cond+`)`, args...); err != nil {
			return err
		}
		_, err := db.exec(ctx, `DELETE FROM pushers WHERE `+cond, args...)
		return err
	})
}

func (db *DB) DeletePusher(ctx context.Context, userID id.UserID, appID, pushKey string) error {
	return db.deletePushersWhere(ctx, `user_id = $1 AND app_id = $2 AND pushkey = $3`, userID, appID, pushKey)
}

func (db *DB) DeletePusherByID(ctx context.Context, pusherID int64) error {
	return db.deletePushersWhere(ctx, `pusher_id = $1`, pusherID)
}

func (db *DB) ListPushers(ctx context.Context, userID id.UserID) ([]*storage.Pusher, error) {
	rows, err := db.r(ctx).QueryContext(ctx, `SELECT `+pusherCols+` FROM pushers WHERE user_id = $1
		ORDER BY pusher_id`, userID)
	if err != nil {
		return nil, err
	}
	return collect(rows, func(row interface{ Scan(...any) error }) (*storage.Pusher, error) { return scanPusher(row) })
}

func (db *DB) UsersWithPushers(ctx context.Context, kind string) ([]id.UserID, error) {
	rows, err := db.r(ctx).QueryContext(ctx, `SELECT DISTINCT user_id FROM pushers WHERE kind = $1 ORDER BY user_id`, kind)
	if err != nil {
		return nil, err
	}
	return collect(rows, func(row interface{ Scan(...any) error }) (id.UserID, error) {
		var u id.UserID
		return u, row.Scan(&u)
	})
}

// enqueuePushes queues events for the HTTP pushers of the users they
// notified, in the transaction that persists them. Rows are (user ID,
// stream position, tweaks, queued at); one statement per chunk joins them
// to the users' pushers.
func (db *DB) enqueuePushes(ctx context.Context, rows [][]any) error {
	// The WHERE clause also keeps SQLite from reading ON CONFLICT as the
	// join's ON.
	return db.insertValues(ctx, `INSERT INTO push_queue (pusher_id, stream_pos, tweaks, queued_at, attempts, next_attempt)
			SELECT p.pusher_id, v.column2, v.column3, v.column4, 0, 0 FROM pushers p JOIN (VALUES `,
		`(?, CAST(? AS BIGINT), ?, CAST(? AS BIGINT))`,
		`) v ON p.user_id = v.column1 WHERE p.kind = 'http' ON CONFLICT DO NOTHING`, rows)
}

func (db *DB) DuePushDeliveries(ctx context.Context, now int64, limit int) ([]*storage.PushDelivery, error) {
	rows, err := db.r(ctx).QueryContext(ctx, `SELECT p.pusher_id, p.user_id, p.device_id, p.kind, p.app_id, p.pushkey,
		p.app_display_name, p.device_display_name, p.profile_tag, p.lang, p.data, p.pushkey_ts,
		q.stream_pos, q.tweaks, q.attempts
		FROM push_queue q JOIN pushers p ON p.pusher_id = q.pusher_id
		WHERE q.next_attempt <= $1 ORDER BY q.stream_pos, q.pusher_id LIMIT $2`, now, limit)
	if err != nil {
		return nil, err
	}
	return collect(rows, func(row interface{ Scan(...any) error }) (*storage.PushDelivery, error) {
		var d storage.PushDelivery
		var tweaks string
		p, err := scanPusher(row, &d.StreamPos, &tweaks, &d.Attempts)
		if err != nil {
			return nil, err
		}
		d.Pusher, d.Tweaks = *p, []byte(tweaks)
		return &d, nil
	})
}

func (db *DB) NextPushAttempt(ctx context.Context) (int64, bool, error) {
	var next sql.NullInt64
	err := db.r(ctx).QueryRowContext(ctx, `SELECT MIN(next_attempt) FROM push_queue`).Scan(&next)
	return next.Int64, next.Valid, err
}

func (db *DB) AckPushDelivery(ctx context.Context, pusherID, streamPos int64) error {
	_, err := db.exec(ctx, `DELETE FROM push_queue WHERE pusher_id = $1 AND stream_pos = $2`, pusherID, streamPos)
	return err
}

func (db *DB) RetryPushDelivery(ctx context.Context, pusherID, streamPos, nextAttempt int64) error {
	return db.WithTx(ctx, func(ctx context.Context) error {
		if _, err := db.exec(ctx, `UPDATE push_queue SET attempts = attempts + 1 WHERE pusher_id = $1 AND stream_pos = $2`,
			pusherID, streamPos); err != nil {
			return err
		}
		_, err := db.exec(ctx, `UPDATE push_queue SET next_attempt = $2 WHERE pusher_id = $1`, pusherID, nextAttempt)
		return err
	})
}

func (db *DB) Notifications(ctx context.Context, userID id.UserID, before int64, limit int, onlyHighlight bool) ([]storage.Notification, error) {
	if limit <= 0 {
		return nil, errors.New("notifications: limit must be positive")
	}
	hl := ""
	if onlyHighlight {
		hl = ` AND highlight = 1`
	}
	// The defaults of the rooms the user is joined to, after their join,
	// of others' events, that they have no row of their own for; and their
	// rows that notify.
	// Each part is cut to the page before the union is.
	defaults := `SELECT d.room_id, d.stream_pos, d.thread_id, d.highlight FROM event_push_defaults d
		JOIN current_state cs ON cs.room_id = d.room_id AND cs.type = 'm.room.member' AND cs.state_key = $1
			AND cs.membership = 'join'
		JOIN events j ON j.event_id = cs.event_id
		WHERE d.stream_pos > j.stream_pos AND d.stream_pos < $2 AND d.sender <> $1` + strings.ReplaceAll(hl, "highlight", "d.highlight") + `
		AND NOT EXISTS (SELECT 1 FROM event_push_actions x
			WHERE x.user_id = $1 AND x.room_id = d.room_id AND x.stream_pos = d.stream_pos)
		ORDER BY d.stream_pos DESC LIMIT $3`
	own := `SELECT room_id, stream_pos, thread_id, highlight FROM event_push_actions
		WHERE user_id = $1 AND notify = 1 AND stream_pos < $2` + hl + ` ORDER BY stream_pos DESC LIMIT $3`
	rows, err := db.r(ctx).QueryContext(ctx, `SELECT room_id, stream_pos, thread_id, highlight FROM (
		SELECT * FROM (`+defaults+`) a UNION ALL SELECT * FROM (`+own+`) b) n
		ORDER BY stream_pos DESC LIMIT $3`, userID, before, limit)
	if err != nil {
		return nil, err
	}
	return collect(rows, func(row interface{ Scan(...any) error }) (storage.Notification, error) {
		var n storage.Notification
		var h int64
		err := row.Scan(&n.RoomID, &n.StreamPos, &n.ThreadID, &h)
		n.Highlight = h != 0
		return n, err
	})
}
