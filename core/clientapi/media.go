package clientapi

import (
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/tributary-hs/tributary/core/httpx"
	"github.com/tributary-hs/tributary/core/media"
	"github.com/tributary-hs/tributary/core/types"
)

// MediaAPI serves the media repository's endpoints.
type MediaAPI struct {
	media   *media.Service
	auth    httpx.Authenticator
	uploads *httpx.Limiter
	// previews limits URL previews per user (each may fetch a page).
	previews *httpx.Limiter
}

// NewMedia builds the media handlers; auth accepts users' and appservices'
// tokens, uploads rate-limits uploads per user.
func NewMedia(m *media.Service, auth httpx.Authenticator, uploads, previews *httpx.Limiter) *MediaAPI {
	return &MediaAPI{media: m, auth: auth, uploads: uploads, previews: previews}
}

// Register adds the media routes: uploads under /_matrix/media, downloads
// under /_matrix/client/v1/media (authenticated, spec v1.11), and the legacy
// unauthenticated downloads, which serve only media from before the freeze
// unless configured otherwise.
func (a *MediaAPI) Register(r gin.IRouter) {
	auth := httpx.RequireAuth(a.auth)
	for _, p := range []string{"/_matrix/media/v3", "/_matrix/media/r0"} {
		g := r.Group(p)
		g.POST("/upload", auth, a.upload)
		g.PUT("/upload/:serverName/:mediaId", auth, a.uploadTo)
		g.GET("/download/:serverName/:mediaId", a.download(true))
		g.GET("/download/:serverName/:mediaId/:fileName", a.download(true))
		g.GET("/thumbnail/:serverName/:mediaId", a.thumbnail(true))
		g.GET("/config", auth, a.config)
		g.GET("/preview_url", auth, a.previewURL)
	}
	r.POST("/_matrix/media/v1/create", auth, a.create)
	v1 := r.Group("/_matrix/client/v1/media", auth)
	v1.GET("/download/:serverName/:mediaId", a.download(false))
	v1.GET("/download/:serverName/:mediaId/:fileName", a.download(false))
	v1.GET("/thumbnail/:serverName/:mediaId", a.thumbnail(false))
	v1.GET("/config", a.config)
	v1.GET("/preview_url", a.previewURL)
}

// POST /_matrix/media/v3/upload
func (a *MediaAPI) upload(c *gin.Context) {
	if userLimited(c, a.uploads) {
		return
	}
	mxc, err := a.media.Upload(c.Request.Context(), httpx.PrincipalOf(c).UserID, c.GetHeader("Content-Type"),
		c.Query("filename"), c.Request.Body, c.Request.ContentLength)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	httpx.OK(c, gin.H{"content_uri": mxc})
}

// POST /_matrix/media/v1/create
func (a *MediaAPI) create(c *gin.Context) {
	if userLimited(c, a.uploads) {
		return
	}
	mxc, expires, err := a.media.Create(c.Request.Context(), httpx.PrincipalOf(c).UserID)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	httpx.OK(c, gin.H{"content_uri": mxc, "unused_expires_at": expires})
}

// PUT /_matrix/media/v3/upload/{serverName}/{mediaId}
func (a *MediaAPI) uploadTo(c *gin.Context) {
	if err := a.media.UploadTo(c.Request.Context(), httpx.PrincipalOf(c).UserID, c.Param("serverName"), c.Param("mediaId"),
		c.GetHeader("Content-Type"), c.Query("filename"), c.Request.Body, c.Request.ContentLength); err != nil {
		httpx.Fail(c, err)
		return
	}
	httpx.OK(c, httpx.Empty)
}

// serve writes media with the headers that keep it from running in our origin.
func serve(c *gin.Context, content *media.Content, fileName string) {
	defer content.Body.Close()
	ct, inline := media.SafeContentType(content.ContentType)
	if fileName == "" {
		fileName = content.FileName
	}
	h := c.Writer.Header()
	h.Set("Content-Type", ct)
	h.Set("Content-Disposition", media.ContentDisposition(inline, fileName))
	h.Set("Content-Security-Policy", "sandbox; default-src 'none'; script-src 'none'; plugin-types application/pdf; "+
		"style-src 'unsafe-inline'; media-src 'self'; object-src 'self';")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cross-Origin-Resource-Policy", "cross-origin")
	h.Set("Cache-Control", "public, max-age=86400, immutable")
	http.ServeContent(c.Writer, c.Request, "", content.ModTime, content.Body)
}

// uploadWait reads timeout_ms: how long to wait for media not yet uploaded
// (default 20 s, as the spec says; at most media.MaxUploadWait).
func uploadWait(c *gin.Context) (time.Duration, bool) {
	raw := c.Query("timeout_ms")
	if raw == "" {
		return 20 * time.Second, true
	}
	ms, err := strconv.ParseInt(raw, 10, 64)
	if err != nil || ms < 0 {
		httpx.Fail(c, types.InvalidParam("timeout_ms must be a non-negative integer"))
		return 0, false
	}
	return time.Duration(min(ms, media.MaxUploadWait.Milliseconds())) * time.Millisecond, true
}

// GET /_matrix/client/v1/media/download/{serverName}/{mediaId}[/{fileName}]
// GET /_matrix/media/v3/download/{serverName}/{mediaId}[/{fileName}] (legacy)
func (a *MediaAPI) download(legacy bool) gin.HandlerFunc {
	return func(c *gin.Context) {
		wait, ok := uploadWait(c)
		if !ok {
			return
		}
		content, err := a.media.Download(c.Request.Context(), c.Param("serverName"), c.Param("mediaId"), legacy, wait)
		if err != nil {
			httpx.Fail(c, err)
			return
		}
		serve(c, content, c.Param("fileName"))
	}
}

// GET /_matrix/client/v1/media/thumbnail/{serverName}/{mediaId}
// GET /_matrix/media/v3/thumbnail/{serverName}/{mediaId} (legacy)
func (a *MediaAPI) thumbnail(legacy bool) gin.HandlerFunc {
	return func(c *gin.Context) {
		w, err1 := strconv.Atoi(c.Query("width"))
		h, err2 := strconv.Atoi(c.Query("height"))
		if err1 != nil || err2 != nil {
			httpx.Fail(c, types.InvalidParam("width and height are required integers"))
			return
		}
		animated := false
		switch c.Query("animated") {
		case "", "false":
		case "true":
			animated = true
		default:
			httpx.Fail(c, types.InvalidParam("animated must be true or false"))
			return
		}
		wait, ok := uploadWait(c)
		if !ok {
			return
		}
		content, err := a.media.Thumbnail(c.Request.Context(), c.Param("serverName"), c.Param("mediaId"), w, h,
			c.Query("method"), animated, legacy, wait)
		if err != nil {
			httpx.Fail(c, err)
			return
		}
		serve(c, content, "thumbnail")
	}
}

// GET /_matrix/client/v1/media/config
func (a *MediaAPI) config(c *gin.Context) {
	httpx.OK(c, gin.H{"m.upload.size": a.media.MaxUploadBytes()})
}

// GET /_matrix/client/v1/media/preview_url
func (a *MediaAPI) previewURL(c *gin.Context) {
	if userLimited(c, a.previews) {
		return
	}
	raw, err := a.media.PreviewURL(c.Request.Context(), httpx.PrincipalOf(c).UserID, c.Query("url"))
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	c.Data(http.StatusOK, "application/json", raw)
}
