package sqldb

import (
	"context"
	"database/sql"

	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/storage"
)

// UnreadCounts counts notifications after the user's read position: their
// own last event in the room and their receipts (an unthreaded receipt
// reads every thread, a threaded one its thread). The count itself is one
// aggregate over the (user, room, position) key — no per-row subquery, as
// this runs for every room of every incremental sync.
func (db *DB) UnreadCounts(ctx context.Context, roomID id.RoomID, userID id.UserID) ([]storage.UnreadCount, error) {
	read, own, err := db.ReadPositions(ctx, roomID, userID)
	if err != nil {
		return nil, err
	}
	maxPos, err := db.MaxStreamPos(ctx)
	if err != nil {
		return nil, err
	}
	floor := max(read[""], own)
	all, err := db.PushActionCounts(ctx, roomID, userID, "", floor, maxPos)
	if err != nil {
		return nil, err
	}
	out := all[:0]
	for _, c := range all {
		if pos, ok := read[c.ThreadID]; ok && pos > floor {
			// The thread has a receipt of its own further on: count after it.
			counts, err := db.PushActionCounts(ctx, roomID, userID, c.ThreadID, pos, maxPos)
			if err != nil {
				return nil, err
			}
			c = storage.UnreadCount{ThreadID: c.ThreadID}
			if len(counts) > 0 {
				c = counts[0]
			}
		}
		if c.Notifications > 0 {
			out = append(out, c)
		}
	}
	return out, nil
}

func (db *DB) ReadPositions(ctx context.Context, roomID id.RoomID, userID id.UserID) (map[string]int64, int64, error) {
	// One round trip: the receipts per thread, then (thread NULL) the
	// user's own last event.
	rows, err := db.r(ctx).QueryContext(ctx, `SELECT r.thread_id, MAX(e.stream_pos) FROM receipts r
		JOIN events e ON e.event_id = r.event_id
		WHERE r.room_id = $1 AND r.user_id = $2 AND r.receipt_type IN ('m.read', 'm.read.private')
		GROUP BY r.thread_id
		UNION ALL
		SELECT NULL, (SELECT stream_pos FROM room_senders WHERE room_id = $1 AND sender = $2)`, roomID, userID)
	if err != nil {
		return nil, 0, err
	}
	defer rows.Close()
	read := map[string]int64{}
	var own int64
	for rows.Next() {
		var thread sql.NullString
		var pos sql.NullInt64
		if err := rows.Scan(&thread, &pos); err != nil {
			return nil, 0, err
		}
		if thread.Valid {
			read[thread.String] = pos.Int64
		} else {
			own = pos.Int64
		}
	}
	return read, own, rows.Err()
}

func (db *DB) PushActionCounts(ctx context.Context, roomID id.RoomID, userID id.UserID, thread string, after, upto int64) ([]storage.UnreadCount, error) {
	// The event defaults the user has no row of their own for (of others'
	// events), and their own rows that notify.
	defaults := `SELECT d.thread_id, d.highlight FROM event_push_defaults d
		WHERE d.room_id = $2 AND d.stream_pos > $3 AND d.stream_pos <= $4 AND d.sender <> $1
		AND NOT EXISTS (SELECT 1 FROM event_push_actions x
			WHERE x.user_id = $1 AND x.room_id = $2 AND x.stream_pos = d.stream_pos)`
	own := `SELECT thread_id, highlight FROM event_push_actions
		WHERE user_id = $1 AND room_id = $2 AND stream_pos > $3 AND stream_pos <= $4 AND notify = 1`
	args := []any{userID, roomID, after, upto}
	if thread != "" {
		defaults += ` AND d.thread_id = $5`
		own += ` AND thread_id = $5`
		args = append(args, thread)
	}
	rows, err := db.r(ctx).QueryContext(ctx, `SELECT thread_id, COUNT(*), COALESCE(CAST(SUM(highlight) AS BIGINT), 0)
		FROM (`+defaults+` UNION ALL `+own+`) n GROUP BY thread_id ORDER BY thread_id`, args...)
	if err != nil {
		return nil, err
	}
	return collect(rows, func(row interface{ Scan(...any) error }) (storage.UnreadCount, error) {
		var c storage.UnreadCount
		return c, row.Scan(&c.ThreadID, &c.Notifications, &c.Highlights)
	})
}

func (db *DB) PushActionsBetween(ctx context.Context, roomID id.RoomID, after, upto int64) ([]storage.PushDefault, []storage.PushException, error) {
	rows, err := db.r(ctx).QueryContext(ctx, `SELECT stream_pos, thread_id, highlight, sender FROM event_push_defaults
		WHERE room_id = $1 AND stream_pos > $2 AND stream_pos <= $3 ORDER BY stream_pos`, roomID, after, upto)
	if err != nil {
		return nil, nil, err
	}
	defaults, err := collect(rows, func(row interface{ Scan(...any) error }) (storage.PushDefault, error) {
		var d storage.PushDefault
		var hl int64
		err := row.Scan(&d.StreamPos, &d.ThreadID, &hl, &d.Sender)
		d.Highlight = hl != 0
		return d, err
	})
	if err != nil {
		return nil, nil, err
	}
	rows, err = db.r(ctx).QueryContext(ctx, `SELECT user_id, stream_pos, thread_id, highlight, notify FROM event_push_actions
		WHERE room_id = $1 AND stream_pos > $2 AND stream_pos <= $3 ORDER BY stream_pos, user_id`, roomID, after, upto)
	if err != nil {
		return nil, nil, err
	}
	exceptions, err := collect(rows, func(row interface{ Scan(...any) error }) (storage.PushException, error) {
		var x storage.PushException
		var hl, notify int64
		err := row.Scan(&x.UserID, &x.StreamPos, &x.ThreadID, &hl, &notify)
		x.Highlight, x.Notify = hl != 0, notify != 0
		return x, err
	})
	return defaults, exceptions, err
}
