package sqldb

import (
	"context"

	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/storage"
)

const mediaCols = `media_id, user_id, content_type, upload_name, size, sha256, created_at, pending_until, authenticated`

func (db *DB) CreateMedia(ctx context.Context, m *storage.Media) error {
	return db.insertNew(ctx, "media "+m.MediaID, `INSERT INTO media (`+mediaCols+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`, m.MediaID, m.UserID, m.ContentType, m.UploadName, m.Size, m.SHA256,
		m.CreatedAt, m.PendingUntil, b2i(m.Authenticated))
}

func (db *DB) GetMedia(ctx context.Context, mediaID string) (*storage.Media, error) {
	var m storage.Media
	var auth int64
	err := db.r(ctx).QueryRowContext(ctx, `SELECT `+mediaCols+` FROM media WHERE media_id = $1`, mediaID).Scan(
		&m.MediaID, &m.UserID, &m.ContentType, &m.UploadName, &m.Size, &m.SHA256, &m.CreatedAt, &m.PendingUntil, &auth)
	if err != nil {
		return nil, notFound(err)
	}
	m.Authenticated = auth != 0
	return &m, nil
}

func (db *DB) FillMedia(ctx context.Context, m *storage.Media) error {
	return db.execOne(ctx, `UPDATE media SET content_type = $1, upload_name = $2, size = $3, sha256 = $4, pending_until = 0
		WHERE media_id = $5 AND pending_until > 0`, m.ContentType, m.UploadName, m.Size, m.SHA256, m.MediaID)
}

func (db *DB) UserMediaUsage(ctx context.Context, userID id.UserID, now int64) (int64, int64, error) {
	var bytes, pending int64
	err := db.r(ctx).QueryRowContext(ctx, `SELECT COALESCE(SUM(size), 0),
		COALESCE(SUM(CASE WHEN pending_until > $2 THEN 1 ELSE 0 END), 0) FROM media WHERE user_id = $1`,
		userID, now).Scan(&bytes, &pending)
	return bytes, pending, err
}

func (db *DB) PutThumbnail(ctx context.Context, t *storage.Thumbnail) error {
	_, err := db.exec(ctx, `INSERT INTO media_thumbnails (media_id, width, height, method, animated, content_type, size, sha256)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING`,
		t.MediaID, t.Width, t.Height, t.Method, b2i(t.Animated), t.ContentType, t.Size, t.SHA256)
	return err
}

func (db *DB) Thumbnails(ctx context.Context, mediaID string) ([]*storage.Thumbnail, error) {
	rows, err := db.r(ctx).QueryContext(ctx, `SELECT media_id, width, height, method, animated, content_type, size, sha256
		FROM media_thumbnails WHERE media_id = $1 ORDER BY width, height`, mediaID)
	if err != nil {
		return nil, err
	}
	return collect(rows, func(row interface{ Scan(...any) error }) (*storage.Thumbnail, error) {
		var t storage.Thumbnail
		var anim int64
		err := row.Scan(&t.MediaID, &t.Width, &t.Height, &t.Method, &anim, &t.ContentType, &t.Size, &t.SHA256)
		t.Animated = anim != 0
		return &t, err
	})
}

func (db *DB) PutURLPreview(ctx context.Context, url string, fetchedAt int64, og []byte) error {
	_, err := db.exec(ctx, `INSERT INTO url_previews (url, fetched_at, og) VALUES ($1, $2, $3)
		ON CONFLICT (url) DO UPDATE SET fetched_at = excluded.fetched_at, og = excluded.og`, url, fetchedAt, string(og))
	return err
}

func (db *DB) GetURLPreview(ctx context.Context, url string, notBefore int64) ([]byte, error) {
	var og string
	err := db.r(ctx).QueryRowContext(ctx, `SELECT og FROM url_previews WHERE url = $1 AND fetched_at >= $2`, url, notBefore).Scan(&og)
	if err != nil {
		return nil, notFound(err)
	}
	return []byte(og), nil
}
