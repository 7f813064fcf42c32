package outbound

import (
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"

	"maunium.net/go/mautrix/federation"

	"github.com/tributary-hs/tributary/core/media"
	"github.com/tributary-hs/tributary/core/rooms"
	"github.com/tributary-hs/tributary/core/types"
)

// Media downloads other servers' media with the authenticated
// GET /_matrix/federation/v1/media/download/{mediaId}: a multipart/mixed
// answer of metadata (JSON) then the content, or a Location to fetch it
// from. Written here rather than with mautrix's DownloadMedia, which
// returns no error when the request fails and follows redirects with a
// client the SSRF guard does not cover.
type Media struct {
	Client *federation.Client
	// Redirects fetches the https URL a server redirects a download to
	// (a client dialing through core/netguard).
	Redirects *http.Client
}

var _ media.RemoteMedia = Media{}

// maxMetadata bounds the metadata part of a download.
const maxMetadata = 64 << 10

// Download implements media.RemoteMedia.
func (m Media) Download(ctx context.Context, server, mediaID string) (string, string, io.ReadCloser, error) {
	_, resp, err := m.Client.MakeFullRequest(ctx, federation.RequestParams{ServerName: server, Method: http.MethodGet,
		Path: federation.URLPath{"v1", "media", "download", mediaID}, Authenticate: true, DontReadBody: true})
	if err != nil {
		err = remoteError(server, err)
		var re *rooms.RemoteError
		if errors.As(err, &re) && re.Status == http.StatusNotFound {
			return "", "", nil, types.NotFound("%s has no media %s", server, mediaID)
		}
		return "", "", nil, err
	}
	ok := false
	defer func() {
		if !ok {
			resp.Body.Close()
		}
	}()
	mt, params, err := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/mixed" || params["boundary"] == "" {
		return "", "", nil, fmt.Errorf("%s answered a media download with %q, not multipart/mixed", server, resp.Header.Get("Content-Type"))
	}
	mr := multipart.NewReader(resp.Body, params["boundary"])
	meta, err := mr.NextPart()
	if err != nil {
		return "", "", nil, fmt.Errorf("media download from %s: metadata: %w", server, err)
	}
	if _, err := io.Copy(io.Discard, io.LimitReader(meta, maxMetadata)); err != nil {
		return "", "", nil, fmt.Errorf("media download from %s: metadata: %w", server, err)
	}
	part, err := mr.NextPart()
	if err != nil {
		return "", "", nil, fmt.Errorf("media download from %s: content: %w", server, err)
	}
	if loc := part.Header.Get("Location"); loc != "" {
		return m.redirect(ctx, server, loc)
	}
	ok = true
	return part.Header.Get("Content-Type"), fileName(part.Header.Get("Content-Disposition")),
		readCloser{Reader: part, closer: resp.Body}, nil
}

// redirect fetches the content from where the server sent the download.
func (m Media) redirect(ctx context.Context, server, loc string) (string, string, io.ReadCloser, error) {
	if m.Redirects == nil {
		return "", "", nil, fmt.Errorf("%s redirects media downloads, which this server does not follow", server)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, loc, nil)
	if err != nil || req.URL.Scheme != "https" {
		return "", "", nil, fmt.Errorf("%s redirects a media download to %q, not an https URL", server, loc)
	}
	resp, err := m.Redirects.Do(req)
	if err != nil {
		return "", "", nil, fmt.Errorf("media redirect of %s: %w", server, err)
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		return "", "", nil, fmt.Errorf("media redirect of %s answered %d", server, resp.StatusCode)
	}
	return resp.Header.Get("Content-Type"), fileName(resp.Header.Get("Content-Disposition")), resp.Body, nil
}

// fileName is the file name of a Content-Disposition ("" for none).
func fileName(cd string) string {
	if cd == "" {
		return ""
	}
	_, params, err := mime.ParseMediaType(cd)
	if err != nil {
		return ""
	}
	return params["filename"]
}

// readCloser reads a part and closes the response it came in.
type readCloser struct {
	io.Reader
	closer io.Closer
}

func (r readCloser) Close() error { return r.closer.Close() }
