package inbound

// The federation media endpoints: other servers download and thumbnail
// this server's media (authenticated, multipart/mixed: metadata then the
// content). Only local media is served: a server never fetches a third
// server's media on another's behalf.

import (
	"context"
	"io"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/tributary-hs/tributary/core/httpx"
	"github.com/tributary-hs/tributary/core/media"
	"github.com/tributary-hs/tributary/core/types"
)

// Media reads local media (core/media.Service implements it).
type Media interface {
	Download(ctx context.Context, server, mediaID string, legacy bool, wait time.Duration) (*media.Content, error)
	Thumbnail(ctx context.Context, server, mediaID string, w, h int, method string, animated, legacy bool,
		wait time.Duration) (*media.Content, error)
}

var _ Media = (*media.Service)(nil)

// GET /_matrix/federation/v1/media/download/{mediaId}
func (a *API) mediaDownload(c *gin.Context) {
	content, err := a.opts.Media.Download(c.Request.Context(), a.opts.ServerName, c.Param("mediaID"), false, 0)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	serveMultipart(c, content, content.FileName)
}

// GET /_matrix/federation/v1/media/thumbnail/{mediaId}?width=…&height=…
func (a *API) mediaThumbnail(c *gin.Context) {
	w, err1 := strconv.Atoi(c.Query("width"))
	h, err2 := strconv.Atoi(c.Query("height"))
	if err1 != nil || err2 != nil {
		httpx.Fail(c, types.InvalidParam("width and height are required integers"))
		return
	}
	content, err := a.opts.Media.Thumbnail(c.Request.Context(), a.opts.ServerName, c.Param("mediaID"), w, h,
		c.Query("method"), c.Query("animated") == "true", false, 0)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	serveMultipart(c, content, "thumbnail")
}

// serveMultipart writes the federation media answer: {} as the metadata,
// then the content with its type and a safe disposition.
func serveMultipart(c *gin.Context, content *media.Content, fileName string) {
	defer content.Body.Close()
	mw := multipart.NewWriter(c.Writer)
	c.Writer.Header().Set("Content-Type", "multipart/mixed; boundary="+mw.Boundary())
	c.Writer.WriteHeader(http.StatusOK)
	meta, err := mw.CreatePart(textproto.MIMEHeader{"Content-Type": {"application/json"}})
	if err == nil {
		_, err = meta.Write([]byte("{}"))
	}
	if err != nil {
		return
	}
	ct, inline := media.SafeContentType(content.ContentType)
	part, err := mw.CreatePart(textproto.MIMEHeader{"Content-Type": {ct},
		"Content-Disposition": {media.ContentDisposition(inline, fileName)}})
	if err != nil {
		return
	}
	if _, err := io.Copy(part, content.Body); err != nil {
		return
	}
	_ = mw.Close()
}
