package sqldb

import (
	"context"

	"github.com/tributary-hs/tributary/storage"
)

// UnreadCounts is one query: a notification is unread when it is after the
// user's last own event in the room and after their read receipt — an
// unthreaded one, or one of the notification's thread.
func (db *DB) UnreadCounts(ctx context.Context, roomID, userID string) ([]storage.UnreadCount, error) {
	rows, err := db.r(ctx).QueryContext(ctx, `SELECT a.thread_id, COUNT(*), CAST(SUM(a.highlight) AS BIGINT) FROM event_push_actions a
		WHERE a.room_id = $1 AND a.user_id = $2
		  AND a.stream_pos > COALESCE((SELECT MAX(stream_pos) FROM events WHERE room_id = $1 AND sender = $2), 0)
		  AND a.stream_pos > COALESCE((SELECT MAX(e.stream_pos) FROM receipts r JOIN events e ON e.event_id = r.event_id
		        WHERE r.room_id = $1 AND r.user_id = $2 AND r.receipt_type IN ('m.read', 'm.read.private')
		          AND (r.thread_id = '' OR r.thread_id = a.thread_id)), 0)
		GROUP BY a.thread_id ORDER BY a.thread_id`, roomID, userID)
	if err != nil {
		return nil, err
	}
	return collect(rows, func(row interface{ Scan(...any) error }) (storage.UnreadCount, error) {
		var c storage.UnreadCount
		return c, row.Scan(&c.ThreadID, &c.Notifications, &c.Highlights)
	})
}
