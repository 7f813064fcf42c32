package sqldb

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"

	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/storage"
)

func (db *DB) PutReceipt(ctx context.Context, r *storage.Receipt) (int64, error) {
	var pos int64
	err := db.WithTx(ctx, func(ctx context.Context) error {
		// Receipts only move forward in the room's stream.
		var newer int
		err := db.w(ctx).QueryRowContext(ctx, `SELECT COUNT(*) FROM receipts r
			JOIN events old ON old.event_id = r.event_id
			JOIN events cur ON cur.event_id = $5
			WHERE r.room_id = $1 AND r.user_id = $2 AND r.receipt_type = $3 AND r.thread_id = $4
			  AND old.stream_pos >= cur.stream_pos`, r.RoomID, r.UserID, r.Type, r.ThreadID, r.EventID).Scan(&newer)
		if err != nil || newer > 0 {
			return err
		}
		if pos, err = db.nextStreamPos(ctx, "receipts"); err != nil {
			return err
		}
		r.StreamPos = pos
		_, err = db.exec(ctx, `INSERT INTO receipts (room_id, user_id, receipt_type, thread_id, event_id, ts, stream_pos)
			VALUES ($1, $2, $3, $4, $5, $6, $7)
			ON CONFLICT (room_id, user_id, receipt_type, thread_id)
			DO UPDATE SET event_id = excluded.event_id, ts = excluded.ts, stream_pos = excluded.stream_pos`,
			r.RoomID, r.UserID, r.Type, r.ThreadID, r.EventID, r.TS, pos)
		return err
	})
	return pos, err
}

func (db *DB) ReceiptsSince(ctx context.Context, roomIDs []id.RoomID, since, upto int64) ([]*storage.Receipt, error) {
	if len(roomIDs) == 0 {
		return nil, nil
	}
	cond, args := inList("room_id", 3, roomIDs)
	rows, err := db.r(ctx).QueryContext(ctx, `SELECT room_id, user_id, receipt_type, thread_id, event_id, ts, stream_pos
		FROM receipts WHERE stream_pos > $1 AND stream_pos <= $2`+cond+` ORDER BY stream_pos`,
		append([]any{since, upto}, args...)...)
	if err != nil {
		return nil, err
	}
	return collect(rows, scanReceipt)
}

func (db *DB) ReceiptsRange(ctx context.Context, since, upto int64, limit int) ([]*storage.Receipt, error) {
	rows, err := db.r(ctx).QueryContext(ctx, `SELECT room_id, user_id, receipt_type, thread_id, event_id, ts, stream_pos
		FROM receipts WHERE stream_pos > $1 AND stream_pos <= $2 ORDER BY stream_pos LIMIT $3`, since, upto, limit)
	if err != nil {
		return nil, err
	}
	return collect(rows, scanReceipt)
}

func scanReceipt(row interface{ Scan(...any) error }) (*storage.Receipt, error) {
	var r storage.Receipt
	return &r, row.Scan(&r.RoomID, &r.UserID, &r.Type, &r.ThreadID, &r.EventID, &r.TS, &r.StreamPos)
}

func (db *DB) streamPos(ctx context.Context, name string) (int64, error) {
	var pos int64
	err := db.r(ctx).QueryRowContext(ctx, `SELECT pos FROM stream_positions WHERE name = $1`, name).Scan(&pos)
	return pos, err
}

func (db *DB) MaxReceiptPos(ctx context.Context) (int64, error) { return db.streamPos(ctx, "receipts") }
func (db *DB) MaxToDevicePos(ctx context.Context) (int64, error) {
	return db.streamPos(ctx, "to_device")
}
func (db *DB) MaxPresencePos(ctx context.Context) (int64, error) {
	return db.streamPos(ctx, "presence")
}

func (db *DB) QueueToDevice(ctx context.Context, sender id.UserID, senderDevice id.DeviceID, evType, txnID string, msgs []*storage.ToDeviceMessage) (int64, error) {
	var last int64
	err := db.WithTx(ctx, func(ctx context.Context) error {
		if txnID != "" {
			// Transaction IDs are scoped by the path, event type included;
			// those stored before that (event_type '') stand for any type.
			res, err := db.exec(ctx, `INSERT INTO to_device_txns (sender, device_id, event_type, txn_id)
				SELECT $1, $2, $3, $4 WHERE NOT EXISTS (SELECT 1 FROM to_device_txns
					WHERE sender = $1 AND device_id = $2 AND event_type = '' AND txn_id = $4)
				ON CONFLICT DO NOTHING`, sender, senderDevice, evType, txnID)
			if err != nil {
				return err
			}
			if n, err := res.RowsAffected(); err != nil || n == 0 {
				return err // a retry: already queued
			}
		}
		if len(msgs) == 0 {
			return nil
		}
		if err := db.w(ctx).QueryRowContext(ctx, `UPDATE stream_positions SET pos = pos + $1 WHERE name = 'to_device'
			RETURNING pos`, int64(len(msgs))).Scan(&last); err != nil {
			return err
		}
		first := last - int64(len(msgs)) + 1
		for i, m := range msgs {
			m.StreamPos = first + int64(i)
			if _, err := db.exec(ctx, `INSERT INTO to_device (stream_pos, user_id, device_id, sender, type, content)
				VALUES ($1, $2, $3, $4, $5, $6)`, m.StreamPos, m.UserID, m.DeviceID, m.Sender, m.Type, string(m.Content)); err != nil {
				return err
			}
		}
		return nil
	})
	return last, err
}

func (db *DB) ToDeviceSince(ctx context.Context, userID id.UserID, deviceID id.DeviceID, since, upto int64, limit int) ([]*storage.ToDeviceMessage, error) {
	rows, err := db.r(ctx).QueryContext(ctx, `SELECT stream_pos, user_id, device_id, sender, type, content FROM to_device
		WHERE user_id = $1 AND device_id = $2 AND stream_pos > $3 AND stream_pos <= $4 ORDER BY stream_pos LIMIT $5`,
		userID, deviceID, since, upto, limit)
	if err != nil {
		return nil, err
	}
	return collect(rows, scanToDevice)
}

func (db *DB) ToDeviceRange(ctx context.Context, since, upto int64, limit int) ([]*storage.ToDeviceMessage, error) {
	rows, err := db.r(ctx).QueryContext(ctx, `SELECT stream_pos, user_id, device_id, sender, type, content FROM to_device
		WHERE stream_pos > $1 AND stream_pos <= $2 ORDER BY stream_pos LIMIT $3`, since, upto, limit)
	if err != nil {
		return nil, err
	}
	return collect(rows, scanToDevice)
}

func scanToDevice(row interface{ Scan(...any) error }) (*storage.ToDeviceMessage, error) {
	var m storage.ToDeviceMessage
	var content string
	err := row.Scan(&m.StreamPos, &m.UserID, &m.DeviceID, &m.Sender, &m.Type, &content)
	m.Content = json.RawMessage(content)
	return &m, err
}

func (db *DB) AckToDevice(ctx context.Context, userID id.UserID, deviceID id.DeviceID, upto int64) error {
	_, err := db.exec(ctx, `DELETE FROM to_device WHERE user_id = $1 AND device_id = $2 AND stream_pos <= $3`,
		userID, deviceID, upto)
	return err
}

func (db *DB) SetPresence(ctx context.Context, p *storage.Presence) (int64, error) {
	var pos int64
	err := db.WithTx(ctx, func(ctx context.Context) error {
		var cur, status string
		err := db.w(ctx).QueryRowContext(ctx, `SELECT presence, status_msg FROM presence WHERE user_id = $1`,
			p.UserID).Scan(&cur, &status)
		if err == nil && cur == p.Presence && status == p.StatusMsg {
			return nil // unchanged: no position, no write
		} else if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		if pos, err = db.nextStreamPos(ctx, "presence"); err != nil {
			return err
		}
		p.StreamPos = pos
		_, err = db.exec(ctx, `INSERT INTO presence (user_id, presence, status_msg, last_active_ts, stream_pos)
			VALUES ($1, $2, $3, $4, $5) ON CONFLICT (user_id) DO UPDATE SET presence = excluded.presence,
			status_msg = excluded.status_msg, last_active_ts = excluded.last_active_ts, stream_pos = excluded.stream_pos`,
			p.UserID, p.Presence, p.StatusMsg, p.LastActiveTS, pos)
		return err
	})
	return pos, err
}

const presenceColumns = `user_id, presence, status_msg, last_active_ts, stream_pos`

func scanPresence(row interface{ Scan(...any) error }) (*storage.Presence, error) {
	var p storage.Presence
	if err := row.Scan(&p.UserID, &p.Presence, &p.StatusMsg, &p.LastActiveTS, &p.StreamPos); err != nil {
		return nil, notFound(err)
	}
	return &p, nil
}

func (db *DB) GetPresence(ctx context.Context, userID id.UserID) (*storage.Presence, error) {
	return scanPresence(db.r(ctx).QueryRowContext(ctx, `SELECT `+presenceColumns+` FROM presence WHERE user_id = $1`, userID))
}

func (db *DB) PresenceOf(ctx context.Context, users []id.UserID) ([]*storage.Presence, error) {
	var out []*storage.Presence
	for len(users) > 0 {
		chunk := users[:min(len(users), 500)]
		users = users[len(chunk):]
		cond, args := inList("user_id", 1, chunk)
		rows, err := db.r(ctx).QueryContext(ctx, `SELECT `+presenceColumns+` FROM presence WHERE 1 = 1`+cond+
			` ORDER BY stream_pos`, args...)
		if err != nil {
			return nil, err
		}
		ps, err := collect(rows, scanPresence)
		if err != nil {
			return nil, err
		}
		out = append(out, ps...)
	}
	return out, nil
}

func (db *DB) PresenceSince(ctx context.Context, since, upto int64, limit int) ([]*storage.Presence, error) {
	rows, err := db.r(ctx).QueryContext(ctx, `SELECT `+presenceColumns+`
		FROM presence WHERE stream_pos > $1 AND stream_pos <= $2 ORDER BY stream_pos LIMIT $3`, since, upto, limit)
	if err != nil {
		return nil, err
	}
	return collect(rows, scanPresence)
}

func (db *DB) PresenceVisibleTo(ctx context.Context, viewer id.UserID, since, upto int64) ([]*storage.Presence, error) {
	// For each changed row, the rooms its user is joined to (the
	// current_state_members index), each looked up for the viewer's join
	// (the primary key): the cost follows the changes, not the rooms.
	rows, err := db.r(ctx).QueryContext(ctx, `SELECT `+presenceColumns+` FROM presence p
		WHERE p.stream_pos > $1 AND p.stream_pos <= $2 AND (p.user_id = $3 OR EXISTS (
			SELECT 1 FROM current_state theirs JOIN current_state mine ON mine.room_id = theirs.room_id
				AND mine.type = 'm.room.member' AND mine.state_key = $3 AND mine.membership = 'join'
			WHERE theirs.state_key = p.user_id AND theirs.type = 'm.room.member' AND theirs.membership = 'join'))
		ORDER BY p.stream_pos`, since, upto, viewer)
	if err != nil {
		return nil, err
	}
	return collect(rows, scanPresence)
}

func (db *DB) PresenceNotOffline(ctx context.Context) ([]*storage.Presence, error) {
	rows, err := db.r(ctx).QueryContext(ctx, `SELECT `+presenceColumns+` FROM presence WHERE presence <> 'offline'
		ORDER BY stream_pos`)
	if err != nil {
		return nil, err
	}
	return collect(rows, scanPresence)
}
