package sqldb

import (
	"context"
	"database/sql"
	"errors"

	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/storage"
)

func (db *DB) SetForgotten(ctx context.Context, userID id.UserID, roomID id.RoomID, forgotten bool) error {
	q := `DELETE FROM room_forgotten WHERE user_id = $1 AND room_id = $2`
	if forgotten {
		q = `INSERT INTO room_forgotten (user_id, room_id) VALUES ($1, $2) ON CONFLICT DO NOTHING`
	}
	_, err := db.exec(ctx, q, userID, roomID)
	return err
}

func (db *DB) IsForgotten(ctx context.Context, userID id.UserID, roomID id.RoomID) (bool, error) {
	var one int
	err := db.r(ctx).QueryRowContext(ctx, `SELECT 1 FROM room_forgotten WHERE user_id = $1 AND room_id = $2`,
		userID, roomID).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	return err == nil, err
}

func (db *DB) CreateReport(ctx context.Context, r *storage.Report) error {
	return db.insertNew(ctx, "report "+r.ReportID, `INSERT INTO reports
		(report_id, room_id, event_id, reported_user, reporter, reason, score, created_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
		r.ReportID, r.RoomID, r.EventID, r.ReportedUser, r.Reporter, r.Reason, r.Score, r.CreatedAt)
}
