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
	PutThumbnail(ctx context.Context, t *Thumbnail) error
	Thumbnails(ctx context.Context, mediaID string) ([]*Thumbnail, error)
	PutURLPreview(ctx context.Context, url string, fetchedAt int64, og []byte) error
	// GetURLPreview returns a preview fetched at or after notBefore.
	GetURLPreview(ctx context.Context, url string, notBefore int64) ([]byte, error)
}
