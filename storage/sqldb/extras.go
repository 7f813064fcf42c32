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

const reportCols = `report_id, room_id, event_id, reported_user, reporter, reason, score, created_at`

func scanReport(row interface{ Scan(...any) error }) (*storage.Report, error) {
	var r storage.Report
	var score sql.NullInt64
	if err := row.Scan(&r.ReportID, &r.RoomID, &r.EventID, &r.ReportedUser, &r.Reporter, &r.Reason, &score, &r.CreatedAt); err != nil {
		return nil, err
	}
	if score.Valid {
		r.Score = &score.Int64
	}
	return &r, nil
}

func (db *DB) EventReports(ctx context.Context, roomID id.RoomID, reporter id.UserID, oldestFirst bool, offset, limit int) ([]*storage.Report, int, error) {
	where := ` WHERE event_id <> '' AND ($1 = '' OR room_id = $1) AND ($2 = '' OR reporter = $2)`
	var total int
	if err := db.r(ctx).QueryRowContext(ctx, `SELECT COUNT(*) FROM reports`+where, roomID, reporter).Scan(&total); err != nil {
		return nil, 0, err
	}
	order := ` ORDER BY created_at DESC, report_id DESC`
	if oldestFirst {
		order = ` ORDER BY created_at, report_id`
	}
	rows, err := db.r(ctx).QueryContext(ctx, `SELECT `+reportCols+` FROM reports`+where+order+` LIMIT $3 OFFSET $4`,
		roomID, reporter, limit, offset)
	if err != nil {
		return nil, 0, err
	}
	out, err := collect(rows, scanReport)
	return out, total, err
}

func (db *DB) GetReport(ctx context.Context, reportID string) (*storage.Report, error) {
	r, err := scanReport(db.r(ctx).QueryRowContext(ctx, `SELECT `+reportCols+` FROM reports WHERE report_id = $1`, reportID))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, storage.ErrNotFound
	}
	return r, err
}

func (db *DB) DeleteReport(ctx context.Context, reportID string) error {
	return db.execOne(ctx, `DELETE FROM reports WHERE report_id = $1`, reportID)
}

func (db *DB) SetRoomBlocked(ctx context.Context, roomID id.RoomID, blocked bool, by id.UserID, at int64) error {
	if !blocked {
		_, err := db.exec(ctx, `DELETE FROM blocked_rooms WHERE room_id = $1`, roomID)
		return err
	}
	_, err := db.exec(ctx, `INSERT INTO blocked_rooms (room_id, blocked_by, blocked_at) VALUES ($1, $2, $3)
		ON CONFLICT (room_id) DO NOTHING`, roomID, by, at)
	return err
}

func (db *DB) RoomBlockedBy(ctx context.Context, roomID id.RoomID) (id.UserID, error) {
	var by id.UserID
	err := db.r(ctx).QueryRowContext(ctx, `SELECT blocked_by FROM blocked_rooms WHERE room_id = $1`, roomID).Scan(&by)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	return by, err
}
