package media

import (
	"context"
	"strings"

	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/core/types"
	"github.com/tributary-hs/tributary/storage"
)

// What the admin API does with media (core/admin).

// Record is a media record as the admin API lists it.
type Record = storage.Media

// Query selects media records.
type Query = storage.MediaQuery

// Usage is what one user stores.
type Usage = storage.MediaUsage

// List lists this server's media records.
func (s *Service) List(ctx context.Context, q Query) ([]*Record, int, error) {
	if _, ok := adminOrders[q.OrderBy]; !ok {
		return nil, 0, types.InvalidParam("Unknown value for order_by: %s", q.OrderBy)
	}
	return s.records.ListMedia(ctx, q)
}

var adminOrders = map[string]bool{"": true, "media_id": true, "upload_name": true, "created_ts": true, "media_length": true,
	"media_type": true, "quarantined_by": true, "safe_from_quarantine": true}

// Delete deletes media of this server, their thumbnails, and the stored
// content nothing else refers to; it returns the IDs that were deleted.
func (s *Service) Delete(ctx context.Context, mediaIDs []string) ([]string, error) {
	var existing []string
	for _, mid := range mediaIDs {
		if _, err := s.records.GetMedia(ctx, mid); err == nil {
			existing = append(existing, mid)
		}
	}
	unreferenced, err := s.records.DeleteMedia(ctx, existing)
	if err != nil {
		return nil, err
	}
	for _, sha := range unreferenced {
		if err := s.files.Delete(sha); err != nil {
			s.log.WarnContext(ctx, "deleting media content", "sha256", sha, "err", err)
		}
	}
	if existing == nil {
		existing = []string{}
	}
	return existing, nil
}

// Quarantine quarantines (by an admin) or releases (by "") media of this
// server that are not protected; it returns how many changed.
func (s *Service) Quarantine(ctx context.Context, mediaIDs []string, by id.UserID) (int, error) {
	return s.records.QuarantineMedia(ctx, mediaIDs, by)
}

// Protect keeps media from quarantine, or stops.
func (s *Service) Protect(ctx context.Context, mediaID string, protected bool) error {
	err := s.records.ProtectMedia(ctx, mediaID, protected)
	if err == storage.ErrNotFound {
		return types.NotFound("Unknown media")
	}
	return err
}

// UsageByUser is each user's stored media, most bytes first.
func (s *Service) UsageByUser(ctx context.Context, offset, limit int) ([]Usage, int, error) {
	return s.records.MediaUsageByUser(ctx, offset, limit)
}

// LocalMediaID is the media ID of an mxc URI of this server ("" for
// others' and for anything else).
func (s *Service) LocalMediaID(uri string) string {
	rest, ok := strings.CutPrefix(uri, "mxc://"+s.opts.ServerName+"/")
	if !ok || rest == "" || strings.Contains(rest, "/") {
		return ""
	}
	return rest
}

// ServerName is the server part of this server's mxc URIs.
func (s *Service) ServerName() string { return s.opts.ServerName }

// MediaKey is the record key of an mxc URI: the media ID of this server's,
// where the cached copy of another server's is kept ("remote/<server>/<id>")
// for theirs; "" for anything that is not an mxc URI.
func (s *Service) MediaKey(uri string) string {
	rest, ok := strings.CutPrefix(uri, "mxc://")
	if !ok {
		return ""
	}
	server, mediaID, ok := strings.Cut(rest, "/")
	if !ok || server == "" || mediaID == "" || strings.Contains(mediaID, "/") {
		return ""
	}
	if server == s.opts.ServerName {
		return mediaID
	}
	return remoteKey(server, mediaID)
}

// PurgeRemoteCache deletes the cached copies of other servers' media
// fetched before beforeTS (ms), and their thumbnails; they are fetched
// again when next asked for. It returns how many went.
func (s *Service) PurgeRemoteCache(ctx context.Context, beforeTS int64) (int, error) {
	list, _, err := s.records.ListMedia(ctx, Query{Remote: true, BeforeTS: beforeTS})
	if err != nil {
		return 0, err
	}
	keys := make([]string, 0, len(list))
	for _, m := range list {
		keys = append(keys, m.MediaID)
	}
	deleted, err := s.Delete(ctx, keys)
	return len(deleted), err
}
