package media

// Media of other servers (server-server API, "Content Repository"):
// fetched once through Options.Remote (authenticated
// /_matrix/federation/v1/media/download), kept in the media store like an
// upload under a key no local ID can take ("remote/<server>/<id>"), and
// served from there, thumbnails included. Only the authenticated
// endpoints serve it (the legacy ones are frozen for it, as for new
// local media).

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"

	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/core/types"
	"github.com/tributary-hs/tributary/storage"
)

// RemoteMedia fetches media from the server that holds it
// (federation/outbound implements it).
type RemoteMedia interface {
	// Download fetches server's media mediaID: its content type, file
	// name (from Content-Disposition, "" for none) and body. An error that
	// is a *types.Error is the server's answer (404…).
	Download(ctx context.Context, server, mediaID string) (contentType, fileName string, body io.ReadCloser, err error)
}

// remoteKey is the record of a remote media item.
func remoteKey(server, mediaID string) string { return "remote/" + server + "/" + mediaID }

// validMediaID: the characters the spec allows in a media ID.
func validMediaID(mediaID string) bool {
	if mediaID == "" || len(mediaID) > 255 {
		return false
	}
	for _, c := range mediaID {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// remoteFetches makes concurrent downloads of one remote item one fetch.
type remoteFetches struct {
	mu   sync.Mutex
	busy map[string]chan struct{}
}

// getRemote returns the record of remote media, fetching it first when
// this server has not kept it yet.
func (s *Service) getRemote(ctx context.Context, server, mediaID string, legacy bool) (*storage.Media, error) {
	if s.opts.Remote == nil {
		return nil, types.NotFound("Remote media is not available: federation is off")
	}
	if legacy {
		return nil, errNotFound // frozen: remote media only through the authenticated endpoints
	}
	if !id.ValidateServerName(server) || !validMediaID(mediaID) {
		return nil, errNotFound
	}
	key := remoteKey(server, mediaID)
	for {
		m, err := s.records.GetMedia(ctx, key)
		if err == nil {
			return m, nil
		} else if !errors.Is(err, storage.ErrNotFound) {
			return nil, err
		}
		s.remote.mu.Lock()
		if s.remote.busy == nil {
			s.remote.busy = map[string]chan struct{}{}
		}
		if ch, ok := s.remote.busy[key]; ok {
			s.remote.mu.Unlock()
			select {
			case <-ch: // the other fetch is done: read what it kept
				continue
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		ch := make(chan struct{})
		s.remote.busy[key] = ch
		s.remote.mu.Unlock()
		m, err = s.fetchRemote(ctx, server, mediaID, key)
		s.remote.mu.Lock()
		delete(s.remote.busy, key)
		close(ch)
		s.remote.mu.Unlock()
		return m, err
	}
}

// fetchRemote downloads remote media into the store and records it.
func (s *Service) fetchRemote(ctx context.Context, server, mediaID, key string) (*storage.Media, error) {
	contentType, fileName, body, err := s.opts.Remote.Download(ctx, server, mediaID)
	if err != nil {
		var me *types.Error
		if errors.As(err, &me) && me.Status == http.StatusNotFound {
			return nil, errNotFound
		}
		s.log.InfoContext(ctx, "remote media download failed", "server", server, "media", mediaID, "err", err)
		return nil, types.NewError(http.StatusBadGateway, types.CodeUnknown, "Could not fetch the media from %s", server)
	}
	defer body.Close()
	sha, size, err := s.files.Put(body, s.opts.MaxUploadBytes)
	if errors.Is(err, ErrTooLarge) {
		return nil, errTooLarge(s.opts.MaxUploadBytes)
	} else if err != nil {
		return nil, fmt.Errorf("store remote media: %w", err)
	}
	m := &storage.Media{MediaID: key, ContentType: cleanContentType(contentType), UploadName: SanitizeFileName(fileName),
		Size: size, SHA256: sha, CreatedAt: s.opts.Now().UnixMilli(), Authenticated: true}
	if err := s.records.CreateMedia(ctx, m); errors.Is(err, storage.ErrConflict) {
		return s.records.GetMedia(ctx, key) // another process kept it first
	} else if err != nil {
		return nil, err
	}
	return m, nil
}

// isRemoteKey reports whether a local media ID is one remote media is
// kept under (never a client's to ask for as local media).
func isRemoteKey(mediaID string) bool { return strings.Contains(mediaID, "/") }
