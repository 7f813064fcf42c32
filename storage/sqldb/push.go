package sqldb

import (
	"context"
	"database/sql"

	"github.com/tributary-hs/tributary/storage"
)

func (db *DB) UnreadCounts(ctx context.Context, roomID, userID string) ([]storage.UnreadCount, error) {
	q := db.r(ctx)
	// Where the user has read to: receipts per thread, and their own last event.
	rows, err := q.QueryContext(ctx, `SELECT r.thread_id, MAX(e.stream_pos) FROM receipts r
		JOIN events e ON e.event_id = r.event_id
		WHERE r.room_id = $1 AND r.user_id = $2 AND r.receipt_type IN ('m.read', 'm.read.private')
		GROUP BY r.thread_id`, roomID, userID)
	if err != nil {
		return nil, err
	}
	read := map[string]int64{}
	for rows.Next() {
		var thread string
		var pos int64
		if err := rows.Scan(&thread, &pos); err != nil {
			rows.Close()
			return nil, err
		}
		read[thread] = pos
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	var own sql.NullInt64
	if err := q.QueryRowContext(ctx, `SELECT MAX(stream_pos) FROM events WHERE room_id = $1 AND sender = $2`,
		roomID, userID).Scan(&own); err != nil {
		return nil, err
	}
	// An unthreaded receipt or the user's own event reads every thread.
	floor := max(read[""], own.Int64)
	rows, err = q.QueryContext(ctx, `SELECT thread_id, stream_pos, highlight FROM event_push_actions
		WHERE room_id = $1 AND user_id = $2 AND stream_pos > $3`, roomID, userID, floor)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	counts := map[string]*storage.UnreadCount{}
	var order []string
	for rows.Next() {
		var thread string
		var pos, hl int64
		if err := rows.Scan(&thread, &pos, &hl); err != nil {
			return nil, err
		}
		if pos <= read[thread] {
			continue
		}
		c := counts[thread]
		if c == nil {
			c = &storage.UnreadCount{ThreadID: thread}
			counts[thread] = c
			order = append(order, thread)
		}
		c.Notifications++
		c.Highlights += hl
	}
	out := make([]storage.UnreadCount, 0, len(order))
	for _, t := range order {
		out = append(out, *counts[t])
	}
	return out, rows.Err()
}
