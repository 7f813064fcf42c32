package sqldb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"

	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/storage"
)

const mediaCols = `media_id, user_id, content_type, upload_name, size, sha256, created_at, pending_until, authenticated,
	quarantined_by, protected`

func (db *DB) CreateMedia(ctx context.Context, m *storage.Media) error {
	return db.insertNew(ctx, "media "+m.MediaID, `INSERT INTO media (`+mediaCols+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`, m.MediaID, m.UserID, m.ContentType, m.UploadName, m.Size, m.SHA256,
		m.CreatedAt, m.PendingUntil, b2i(m.Authenticated), m.QuarantinedBy, b2i(m.Protected))
}

func scanMedia(row interface{ Scan(...any) error }) (*storage.Media, error) {
	var m storage.Media
	var auth, prot int64
	if err := row.Scan(&m.MediaID, &m.UserID, &m.ContentType, &m.UploadName, &m.Size, &m.SHA256, &m.CreatedAt,
		&m.PendingUntil, &auth, &m.QuarantinedBy, &prot); err != nil {
		return nil, err
	}
	m.Authenticated, m.Protected = auth != 0, prot != 0
	return &m, nil
}

func (db *DB) GetMedia(ctx context.Context, mediaID string) (*storage.Media, error) {
	m, err := scanMedia(db.r(ctx).QueryRowContext(ctx, `SELECT `+mediaCols+` FROM media WHERE media_id = $1`, mediaID))
	if err != nil {
		return nil, notFound(err)
	}
	return m, nil
}

// mediaOrder maps the admin API's order_by names to columns.
var mediaOrder = map[string]string{"media_id": "media_id", "upload_name": "upload_name", "created_ts": "created_at",
	"media_length": "size", "media_type": "content_type", "quarantined_by": "quarantined_by",
	"safe_from_quarantine": "protected", "": "created_at"}

func (db *DB) ListMedia(ctx context.Context, q storage.MediaQuery) ([]*storage.Media, int, error) {
	col, ok := mediaOrder[q.OrderBy]
	if !ok {
		return nil, 0, fmt.Errorf("unknown media order %q", q.OrderBy)
	}
	// Each parameter is compared with its column first: PostgreSQL takes
	// a parameter's type from where it first appears, and "$2 = 0" would
	// make a millisecond timestamp an int4.
	// Cached remote media are kept under "remote/<server>/<id>"; no local
	// media ID has a slash.
	where := ` WHERE pending_until = 0 AND ($1 = '' OR user_id = $1) AND (created_at < $2 OR $2 = 0) AND size > $3`
	if q.Remote {
		where += ` AND media_id LIKE 'remote/%'`
	} else {
		where += ` AND media_id NOT LIKE 'remote/%'`
	}
	args := []any{q.UserID, q.BeforeTS, q.SizeGT}
	var total int
	if err := db.r(ctx).QueryRowContext(ctx, `SELECT COUNT(*) FROM media`+where, args...).Scan(&total); err != nil {
		return nil, 0, err
	}
	dir := ""
	if q.Desc {
		dir = " DESC"
	}
	limit := q.Limit
	if limit <= 0 {
		limit = total + 1
	}
	rows, err := db.r(ctx).QueryContext(ctx, `SELECT `+mediaCols+` FROM media`+where+` ORDER BY `+col+dir+`, media_id`+dir+
		` LIMIT $4 OFFSET $5`, append(args, limit, q.Offset)...)
	if err != nil {
		return nil, 0, err
	}
	out, err := collect(rows, scanMedia)
	return out, total, err
}

func (db *DB) DeleteMedia(ctx context.Context, mediaIDs []string) ([]string, error) {
	var unreferenced []string
	err := db.WithTx(ctx, func(ctx context.Context) error {
		shas := map[string]bool{}
		for _, mid := range mediaIDs {
			var sha string
			err := db.r(ctx).QueryRowContext(ctx, `SELECT sha256 FROM media WHERE media_id = $1`, mid).Scan(&sha)
			if errors.Is(err, sql.ErrNoRows) {
				continue
			} else if err != nil {
				return err
			}
			if sha != "" {
				shas[sha] = true
			}
			thumbs, err := queryStrings[string](db, ctx, `SELECT sha256 FROM media_thumbnails WHERE media_id = $1`, mid)
			if err != nil {
				return err
			}
			for _, t := range thumbs {
				shas[t] = true
			}
			if _, err := db.exec(ctx, `DELETE FROM media_thumbnails WHERE media_id = $1`, mid); err != nil {
				return err
			}
			if _, err := db.exec(ctx, `DELETE FROM media WHERE media_id = $1`, mid); err != nil {
				return err
			}
		}
		for sha := range shas {
			var n int
			if err := db.r(ctx).QueryRowContext(ctx, `SELECT (SELECT COUNT(*) FROM media WHERE sha256 = $1) +
				(SELECT COUNT(*) FROM media_thumbnails WHERE sha256 = $1)`, sha).Scan(&n); err != nil {
				return err
			}
			if n == 0 {
				unreferenced = append(unreferenced, sha)
			}
		}
		return nil
	})
	slices.Sort(unreferenced)
	return unreferenced, err
}

func (db *DB) QuarantineMedia(ctx context.Context, mediaIDs []string, by id.UserID) (int, error) {
	n := 0
	err := db.WithTx(ctx, func(ctx context.Context) error {
		n = 0
		for _, mid := range mediaIDs {
			res, err := db.exec(ctx, `UPDATE media SET quarantined_by = $1 WHERE media_id = $2 AND protected = 0
				AND quarantined_by <> $1`, by, mid)
			if err != nil {
				return err
			}
			c, err := res.RowsAffected()
			if err != nil {
				return err
			}
			n += int(c)
		}
		return nil
	})
	return n, err
}

func (db *DB) ProtectMedia(ctx context.Context, mediaID string, protected bool) error {
	return db.execOne(ctx, `UPDATE media SET protected = $1 WHERE media_id = $2`, b2i(protected), mediaID)
}

func (db *DB) MediaUsageByUser(ctx context.Context, offset, limit int) ([]storage.MediaUsage, int, error) {
	var total int
	if err := db.r(ctx).QueryRowContext(ctx, `SELECT COUNT(DISTINCT user_id) FROM media WHERE pending_until = 0
		AND media_id NOT LIKE 'remote/%'`).Scan(&total); err != nil {
		return nil, 0, err
	}
	if limit <= 0 {
		limit = total + 1
	}
	rows, err := db.r(ctx).QueryContext(ctx, `SELECT user_id, COUNT(*), COALESCE(SUM(size), 0) FROM media WHERE pending_until = 0
		AND media_id NOT LIKE 'remote/%' GROUP BY user_id ORDER BY COALESCE(SUM(size), 0) DESC, user_id LIMIT $1 OFFSET $2`, limit, offset)
	if err != nil {
		return nil, 0, err
	}
	out, err := collect(rows, func(row interface{ Scan(...any) error }) (storage.MediaUsage, error) {
		var u storage.MediaUsage
		return u, row.Scan(&u.UserID, &u.Count, &u.Bytes)
	})
	return out, total, err
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
