package sqldb

import (
	"context"
	"encoding/json"

	"github.com/tributary-hs/tributary/storage"
)

func (db *DB) CreateUIASession(ctx context.Context, s *storage.UIASession) error {
	return db.insertNew(ctx, "UIA session", `INSERT INTO uia_sessions (session_id, user_id, endpoint, data, created_at)
		VALUES ($1, $2, $3, $4, $5)`, s.SessionID, s.UserID, s.Endpoint, string(s.Data), s.CreatedAt)
}

func (db *DB) GetUIASession(ctx context.Context, sessionID string) (*storage.UIASession, error) {
	var s storage.UIASession
	var data string
	err := db.r(ctx).QueryRowContext(ctx, `SELECT session_id, user_id, endpoint, data, created_at
		FROM uia_sessions WHERE session_id = $1`, sessionID).Scan(&s.SessionID, &s.UserID, &s.Endpoint, &data, &s.CreatedAt)
	if err != nil {
		return nil, notFound(err)
	}
	s.Data = json.RawMessage(data)
	return &s, nil
}

func (db *DB) UpdateUIASession(ctx context.Context, sessionID string, data json.RawMessage) error {
	return db.execOne(ctx, `UPDATE uia_sessions SET data = $1 WHERE session_id = $2`, string(data), sessionID)
}

func (db *DB) DeleteUIASession(ctx context.Context, sessionID string) error {
	_, err := db.exec(ctx, `DELETE FROM uia_sessions WHERE session_id = $1`, sessionID)
	return err
}

func (db *DB) DeleteUIASessionsBefore(ctx context.Context, createdBefore int64) error {
	_, err := db.exec(ctx, `DELETE FROM uia_sessions WHERE created_at < $1`, createdBefore)
	return err
}
