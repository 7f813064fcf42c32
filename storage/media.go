package storage

import (
	"context"

	"maunium.net/go/mautrix/id"
)

// Media is an uploaded file's record; its bytes are in the media store.
type Media struct {
	MediaID     string
	UserID      id.UserID
	ContentType string
	UploadName  string
	Size        int64
	SHA256      string
	CreatedAt   int64
	// PendingUntil: an async upload not filled yet expires then (0: has content).
	PendingUntil int64
	// Authenticated: only the authenticated endpoints serve it.
	Authenticated bool
	// QuarantinedBy is the admin who quarantined it ("" when it is not):
	// it is served to nobody.
	QuarantinedBy id.UserID
	// Protected media cannot be quarantined.
	Protected bool
}

// MediaQuery selects media for the admin API.
type MediaQuery struct {
	UserID id.UserID // "" for anyone's
	// Remote lists the cached copies of other servers' media instead of
	// this server's own.
	Remote bool
	// BeforeTS keeps media created before it (0: any); SizeGT larger than it.
	BeforeTS int64
	SizeGT   int64
	// OrderBy is a column (media_id, upload_name, created_ts, media_length,
	// media_type, quarantined_by, safe_from_quarantine); Desc reverses it.
	OrderBy       string
	Desc          bool
	Offset, Limit int // Limit 0: all
}

// MediaUsage is what one user stores.
type MediaUsage struct {
	UserID id.UserID
	Count  int64
	Bytes  int64
}

// Thumbnail is a stored thumbnail of a media item.
type Thumbnail struct {
	MediaID     string
	Width       int64
	Height      int64
	Method      string // "scale" or "crop"
	Animated    bool
	ContentType string
	Size        int64
	SHA256      string
}

// MediaRecords stores media records, thumbnails and URL previews.
type MediaRecords interface {
	// CreateMedia stores a record; ErrConflict if the ID exists.
	CreateMedia(ctx context.Context, m *Media) error
	GetMedia(ctx context.Context, mediaID string) (*Media, error)
	// FillMedia gives a pending record its content; ErrNotFound unless it is pending.
	FillMedia(ctx context.Context, m *Media) error
	// UserMediaUsage is the bytes a user has uploaded and their pending uploads.
	UserMediaUsage(ctx context.Context, userID id.UserID, now int64) (bytes int64, pending int64, err error)
	// ListMedia lists media as the query says, with the total that match.
	ListMedia(ctx context.Context, q MediaQuery) ([]*Media, int, error)
	// DeleteMedia deletes the records and their thumbnails and returns the
	// content hashes no record or thumbnail refers to any more.
	DeleteMedia(ctx context.Context, mediaIDs []string) (unreferenced []string, err error)
	// QuarantineMedia quarantines (by non-empty) or releases the media
	// that are not protected; it returns how many changed.
	QuarantineMedia(ctx context.Context, mediaIDs []string, by id.UserID) (int, error)
	// ProtectMedia protects media from quarantine, or stops.
	ProtectMedia(ctx context.Context, mediaID string, protected bool) error
	// MediaUsageByUser is each user's media, most bytes first.
	MediaUsageByUser(ctx context.Context, offset, limit int) ([]MediaUsage, int, error)
	PutThumbnail(ctx context.Context, t *Thumbnail) error
	Thumbnails(ctx context.Context, mediaID string) ([]*Thumbnail, error)
	PutURLPreview(ctx context.Context, url string, fetchedAt int64, og []byte) error
	// GetURLPreview returns a preview fetched at or after notBefore.
	GetURLPreview(ctx context.Context, url string, notBefore int64) ([]byte, error)
}
