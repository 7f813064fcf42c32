// Package media owns the media repository: uploads (plain and
// asynchronous), downloads, thumbnails, URL previews, the content-addressed
// media store, and their limits. It imports core/types and the storage
// interfaces; handlers live in core/clientapi.
package media

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/core/types"
	"github.com/tributary-hs/tributary/storage"
)

// Options configure the service.
type Options struct {
	ServerName     string
	MaxUploadBytes int64
	// UserQuotaBytes caps what one user may upload in all (0: no cap).
	UserQuotaBytes int64
	// MaxImagePixels refuses to decode larger images (decompression bombs).
	MaxImagePixels int64
	// LegacyUnauthenticated lets the old /_matrix/media/v3 download and
	// thumbnail endpoints serve media uploaded from now on ("frozen" when off).
	LegacyUnauthenticated bool
	// MaxPendingUploads bounds a user's unused async uploads.
	MaxPendingUploads int64
	PendingLifetime   time.Duration
	Preview           PreviewOptions
	Logger            *slog.Logger
	Now               func() time.Time
	// Remote fetches other servers' media (nil: federation is off).
	Remote RemoteMedia
}

// Service implements the media repository.
type Service struct {
	records storage.MediaRecords
	files   Store
	opts    Options
	log     *slog.Logger
	preview *previewer
	// uploaded has a channel per awaited media ID, closed when it is uploaded.
	mu       sync.Mutex
	uploaded map[string]*uploadWaiters
	// remote holds the remote media being fetched.
	remote remoteFetches
}

// New builds the service.
func New(records storage.MediaRecords, files Store, opts Options) (*Service, error) {
	if records == nil || files == nil || opts.ServerName == "" {
		return nil, errors.New("media: records, files and server name are required")
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.MaxPendingUploads == 0 {
		opts.MaxPendingUploads = 50
	}
	if opts.PendingLifetime == 0 {
		opts.PendingLifetime = 24 * time.Hour
	}
	s := &Service{records: records, files: files, opts: opts, log: opts.Logger, uploaded: map[string]*uploadWaiters{}}
	s.preview = newPreviewer(s, opts.Preview)
	return s, nil
}

// MaxUploadBytes is the upload size limit (for /media/config).
func (s *Service) MaxUploadBytes() int64 { return s.opts.MaxUploadBytes }

func newMediaID() string {
	const alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}

// MXC is the content URI of a local media ID.
func (s *Service) MXC(mediaID string) string { return "mxc://" + s.opts.ServerName + "/" + mediaID }

func errTooLarge(limit int64) error {
	return types.TooLarge("Uploads are limited to %d bytes", limit)
}

// checkQuota refuses an upload that would take the user past their quota.
func (s *Service) checkQuota(ctx context.Context, user id.UserID, adding int64) error {
	if s.opts.UserQuotaBytes <= 0 {
		return nil
	}
	used, _, err := s.records.UserMediaUsage(ctx, user, s.opts.Now().UnixMilli())
	if err != nil {
		return err
	}
	if used+adding > s.opts.UserQuotaBytes {
		return types.Forbidden("Upload would exceed your media quota of %d bytes", s.opts.UserQuotaBytes)
	}
	return nil
}

// store writes a body to the media store within the upload limit and the quota.
func (s *Service) store(ctx context.Context, user id.UserID, body io.Reader, declared int64) (string, int64, error) {
	if declared > s.opts.MaxUploadBytes {
		return "", 0, errTooLarge(s.opts.MaxUploadBytes)
	}
	if err := s.checkQuota(ctx, user, max(declared, 0)); err != nil {
		return "", 0, err
	}
	sha, size, err := s.files.Put(body, s.opts.MaxUploadBytes)
	if errors.Is(err, ErrTooLarge) {
		return "", 0, errTooLarge(s.opts.MaxUploadBytes)
	} else if err != nil {
		return "", 0, fmt.Errorf("store upload: %w", err)
	}
	if declared < 0 {
		if err := s.checkQuota(ctx, user, size); err != nil {
			return "", 0, err
		}
	}
	return sha, size, nil
}

func cleanContentType(ct string) string {
	ct = strings.TrimSpace(ct)
	if ct == "" || len(ct) > 255 {
		return "application/octet-stream"
	}
	return ct
}

// Upload stores a file (POST /_matrix/media/v3/upload) and returns its mxc URI.
func (s *Service) Upload(ctx context.Context, user id.UserID, contentType, fileName string, body io.Reader, declared int64) (string, error) {
	sha, size, err := s.store(ctx, user, body, declared)
	if err != nil {
		return "", err
	}
	m := &storage.Media{MediaID: newMediaID(), UserID: user, ContentType: cleanContentType(contentType),
		UploadName: SanitizeFileName(fileName), Size: size, SHA256: sha, CreatedAt: s.opts.Now().UnixMilli(),
		Authenticated: !s.opts.LegacyUnauthenticated}
	if err := s.records.CreateMedia(ctx, m); err != nil {
		return "", err
	}
	s.pregenerate(ctx, m)
	return s.MXC(m.MediaID), nil
}

// Create reserves an mxc URI for a later upload (POST /_matrix/media/v1/create).
func (s *Service) Create(ctx context.Context, user id.UserID) (string, int64, error) {
	now := s.opts.Now()
	_, pending, err := s.records.UserMediaUsage(ctx, user, now.UnixMilli())
	if err != nil {
		return "", 0, err
	}
	if pending >= s.opts.MaxPendingUploads {
		return "", 0, types.LimitExceeded(s.opts.PendingLifetime.Milliseconds())
	}
	expires := now.Add(s.opts.PendingLifetime).UnixMilli()
	m := &storage.Media{MediaID: newMediaID(), UserID: user, CreatedAt: now.UnixMilli(), PendingUntil: expires,
		Authenticated: !s.opts.LegacyUnauthenticated}
	if err := s.records.CreateMedia(ctx, m); err != nil {
		return "", 0, err
	}
	return s.MXC(m.MediaID), expires, nil
}

// UploadTo fills an mxc URI made by Create (PUT /_matrix/media/v3/upload/{server}/{id}).
func (s *Service) UploadTo(ctx context.Context, user id.UserID, server, mediaID, contentType, fileName string, body io.Reader, declared int64) error {
	if server != s.opts.ServerName {
		return types.NotFound("Unknown media ID")
	}
	m, err := s.records.GetMedia(ctx, mediaID)
	if errors.Is(err, storage.ErrNotFound) {
		return types.NotFound("Unknown media ID")
	} else if err != nil {
		return err
	}
	switch {
	case m.PendingUntil == 0:
		return types.NewError(http.StatusConflict, "M_CANNOT_OVERWRITE_MEDIA", "Media already uploaded")
	case m.UserID != user:
		return types.Forbidden("This media ID was created by another user")
	case m.PendingUntil < s.opts.Now().UnixMilli():
		return types.NotFound("The media ID has expired")
	}
	sha, size, err := s.store(ctx, user, body, declared)
	if err != nil {
		return err
	}
	m.ContentType, m.UploadName, m.Size, m.SHA256 = cleanContentType(contentType), SanitizeFileName(fileName), size, sha
	if err := s.records.FillMedia(ctx, m); errors.Is(err, storage.ErrNotFound) {
		return types.NewError(http.StatusConflict, "M_CANNOT_OVERWRITE_MEDIA", "Media already uploaded")
	} else if err != nil {
		return err
	}
	s.announceUpload(mediaID)
	s.pregenerate(ctx, m)
	return nil
}

// Content is media to send to a client.
type Content struct {
	Body        io.ReadSeekCloser
	ContentType string
	FileName    string
	Size        int64
	ModTime     time.Time
}

// errNotFound does not tell unknown from forbidden.
var errNotFound = types.NotFound("Media not found")

// get returns a local media record ready to serve.
// wait is how long to wait for media created but not yet uploaded.
func (s *Service) get(ctx context.Context, server, mediaID string, legacy bool, wait time.Duration) (*storage.Media, error) {
	if server != s.opts.ServerName {
		return s.getRemote(ctx, server, mediaID, legacy)
	}
	if isRemoteKey(mediaID) {
		return nil, errNotFound
	}
	m, err := s.records.GetMedia(ctx, mediaID)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, errNotFound
	} else if err != nil {
		return nil, err
	}
	if legacy && m.Authenticated {
		return nil, errNotFound // frozen: only the authenticated endpoints serve new media
	}
	if m.QuarantinedBy != "" {
		return nil, errNotFound // an admin quarantined it: served to nobody
	}
	if m.PendingUntil != 0 && wait > 0 && s.awaitUpload(ctx, mediaID, wait) {
		if m, err = s.records.GetMedia(ctx, mediaID); err != nil {
			return nil, err
		}
	}
	if m.PendingUntil != 0 {
		return nil, types.NewError(http.StatusGatewayTimeout, "M_NOT_YET_UPLOADED", "The media has not been uploaded yet")
	}
	return m, nil
}

// MaxUploadWait bounds how long a download waits for pending media.
const MaxUploadWait = 60 * time.Second

// awaitUpload waits until mediaID is uploaded in this process, up to wait;
// it reports whether the upload happened.
func (s *Service) awaitUpload(ctx context.Context, mediaID string, wait time.Duration) bool {
	s.mu.Lock()
	w, ok := s.uploaded[mediaID]
	if !ok {
		w = &uploadWaiters{ch: make(chan struct{})}
		s.uploaded[mediaID] = w
	}
	w.n++
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		if w.n--; w.n == 0 && s.uploaded[mediaID] == w {
			delete(s.uploaded, mediaID)
		}
		s.mu.Unlock()
	}()
	// The upload may have landed between the caller's read and now.
	if m, err := s.records.GetMedia(ctx, mediaID); err == nil && m.PendingUntil == 0 {
		return true
	}
	t := time.NewTimer(min(wait, MaxUploadWait))
	defer t.Stop()
	select {
	case <-w.ch:
		return true
	case <-t.C:
	case <-ctx.Done():
	}
	return false
}

// uploadWaiters are the downloads waiting for one media ID.
type uploadWaiters struct {
	ch chan struct{} // closed at upload
	n  int
}

// announceUpload wakes the downloads waiting for mediaID.
func (s *Service) announceUpload(mediaID string) {
	s.mu.Lock()
	if w, ok := s.uploaded[mediaID]; ok {
		close(w.ch)
		delete(s.uploaded, mediaID)
	}
	s.mu.Unlock()
}

// Download opens media for GET …/download/{serverName}/{mediaId}.
func (s *Service) Download(ctx context.Context, server, mediaID string, legacy bool, wait time.Duration) (*Content, error) {
	m, err := s.get(ctx, server, mediaID, legacy, wait)
	if err != nil {
		return nil, err
	}
	f, err := s.files.Open(m.SHA256)
	if err != nil {
		return nil, fmt.Errorf("open media %s: %w", mediaID, err)
	}
	return &Content{Body: f, ContentType: m.ContentType, FileName: m.UploadName, Size: m.Size,
		ModTime: time.UnixMilli(m.CreatedAt)}, nil
}
