package admin

import (
	"context"
	"net/http"
	"strconv"

	"github.com/gin-gonic/gin"
	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/core/httpx"
	"github.com/tributary-hs/tributary/core/media"
	"github.com/tributary-hs/tributary/core/types"
)

// Media is what the media endpoints ask of core/media.
type Media interface {
	List(ctx context.Context, q media.Query) ([]*media.Record, int, error)
	Delete(ctx context.Context, mediaIDs []string) ([]string, error)
	Quarantine(ctx context.Context, mediaIDs []string, by id.UserID) (int, error)
	Protect(ctx context.Context, mediaID string, protected bool) error
	UsageByUser(ctx context.Context, offset, limit int) ([]media.Usage, int, error)
	ServerName() string
	MediaKey(uri string) string
	PurgeRemoteCache(ctx context.Context, beforeTS int64) (int, error)
}

func (a *API) media(c *gin.Context) (Media, bool) {
	if a.opts.Media == nil {
		httpx.Fail(c, types.NewError(http.StatusNotFound, types.CodeUnrecognized, "Unrecognized request"))
		return nil, false
	}
	return a.opts.Media, true
}

// mediaJSON is a media record as Synapse's admin API lists it.
func mediaJSON(m *media.Record) gin.H {
	var quarantinedBy *id.UserID
	if m.QuarantinedBy != "" {
		q := m.QuarantinedBy
		quarantinedBy = &q
	}
	return gin.H{"media_id": m.MediaID, "media_type": m.ContentType, "media_length": m.Size, "upload_name": nonEmpty(m.UploadName),
		"created_ts": m.CreatedAt, "last_access_ts": m.CreatedAt, "quarantined_by": quarantinedBy, "safe_from_quarantine": m.Protected}
}

// mediaPage reads from/limit/order_by/dir for a media list.
func mediaPage(c *gin.Context) (media.Query, bool) {
	var q media.Query
	var ok bool
	if q.Offset, ok = queryInt(c, "from", 0); !ok {
		return q, false
	}
	if q.Limit, ok = queryInt(c, "limit", 100); !ok {
		return q, false
	}
	q.OrderBy = c.DefaultQuery("order_by", "created_ts")
	switch c.DefaultQuery("dir", "f") {
	case "f":
	case "b":
		q.Desc = true
	default:
		httpx.Fail(c, types.InvalidParam("Unknown direction: %s", c.Query("dir")))
		return q, false
	}
	return q, true
}

// localMedia checks the {serverName} of a media path: this server's only.
func (a *API) localMedia(c *gin.Context, m Media) bool {
	if c.Param("serverName") != m.ServerName() {
		httpx.Fail(c, types.InvalidParam("Can only act on local media"))
		return false
	}
	return true
}

// GET /_synapse/admin/v1/users/{userId}/media
func (a *API) userMedia(c *gin.Context) {
	m, ok := a.media(c)
	if !ok {
		return
	}
	userID, ok := a.localUser(c)
	if !ok {
		return
	}
	q, ok := mediaPage(c)
	if !ok {
		return
	}
	q.UserID = userID
	list, total, err := m.List(c.Request.Context(), q)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	out := make([]gin.H, 0, len(list))
	for _, r := range list {
		out = append(out, mediaJSON(r))
	}
	resp := gin.H{"media": out, "total": total}
	if q.Offset+len(list) < total {
		resp["next_token"] = q.Offset + len(list)
	}
	httpx.OK(c, resp)
}

// DELETE /_synapse/admin/v1/users/{userId}/media: the listed page of the
// user's media (all of it by default limit paging, as Synapse).
func (a *API) deleteUserMedia(c *gin.Context) {
	m, ok := a.media(c)
	if !ok {
		return
	}
	userID, ok := a.localUser(c)
	if !ok {
		return
	}
	q, ok := mediaPage(c)
	if !ok {
		return
	}
	q.UserID = userID
	list, _, err := m.List(c.Request.Context(), q)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	ids := make([]string, 0, len(list))
	for _, r := range list {
		ids = append(ids, r.MediaID)
	}
	a.deleteMediaIDs(c, m, ids)
}

func (a *API) deleteMediaIDs(c *gin.Context, m Media, ids []string) {
	deleted, err := m.Delete(c.Request.Context(), ids)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	a.audit(c, "delete media", "count", len(deleted))
	httpx.OK(c, gin.H{"deleted_media": deleted, "total": len(deleted)})
}

// DELETE /_synapse/admin/v1/media/{serverName}/{mediaId}
func (a *API) deleteOneMedia(c *gin.Context) {
	m, ok := a.media(c)
	if !ok || !a.localMedia(c, m) {
		return
	}
	deleted, err := m.Delete(c.Request.Context(), []string{c.Param("mediaId")})
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	if len(deleted) == 0 {
		httpx.Fail(c, types.NotFound("Unknown media"))
		return
	}
	a.audit(c, "delete media", "media", c.Param("mediaId"))
	httpx.OK(c, gin.H{"deleted_media": deleted, "total": len(deleted)})
}

// POST /_synapse/admin/v1/media/delete?before_ts=…&size_gt=…: local media
// older than before_ts (ms) and larger than size_gt bytes. Protected media
// stay (as Synapse keeps media that are safe from quarantine).
func (a *API) deleteOldMedia(c *gin.Context) {
	m, ok := a.media(c)
	if !ok {
		return
	}
	if sn := c.Param("serverName"); sn != "" && sn != m.ServerName() {
		httpx.Fail(c, types.InvalidParam("Can only delete local media"))
		return
	}
	before, err := strconv.ParseInt(c.Query("before_ts"), 10, 64)
	if err != nil || before <= 0 {
		httpx.Fail(c, types.MissingParam("Missing integer query parameter before_ts"))
		return
	}
	sizeGT, ok := queryInt(c, "size_gt", 0)
	if !ok {
		return
	}
	list, _, err := m.List(c.Request.Context(), media.Query{BeforeTS: before, SizeGT: int64(sizeGT)})
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	var ids []string
	for _, r := range list {
		if !r.Protected {
			ids = append(ids, r.MediaID)
		}
	}
	a.deleteMediaIDs(c, m, ids)
}

// POST /_synapse/admin/v1/media/quarantine/{serverName}/{mediaId} (and
// unquarantine)
func (a *API) quarantineOne(on bool) gin.HandlerFunc {
	return func(c *gin.Context) {
		if _, err := a.QuarantineMedia(c.Request.Context(), actorOf(c), c.Param("serverName"), c.Param("mediaId"), on); err != nil {
			httpx.Fail(c, err)
			return
		}
		httpx.OK(c, httpx.Empty)
	}
}

// QuarantineMedia quarantines one of this server's media, or lifts its
// quarantine (the HTTP API and the CLI). It returns how many records
// changed: 0 for media that are unknown, protected, or already so.
func (a *API) QuarantineMedia(ctx context.Context, act Actor, serverName, mediaID string, on bool) (int, error) {
	m := a.opts.Media
	if m == nil {
		return 0, unrecognized()
	}
	if serverName != m.ServerName() {
		return 0, types.InvalidParam("Can only act on local media")
	}
	if mediaID == "" {
		return 0, types.InvalidParam("Missing media ID")
	}
	act, err := a.resolve(ctx, act)
	if err != nil {
		return 0, err
	}
	var by id.UserID
	if on {
		by = act.UserID
	}
	n, err := m.Quarantine(ctx, []string{mediaID}, by)
	if err != nil {
		return 0, err
	}
	a.auditAs(ctx, act, "quarantine media", "media", mediaID, "quarantined", on, "changed", n)
	return n, nil
}

// POST /_synapse/admin/v1/user/{userId}/media/quarantine
func (a *API) quarantineUserMedia(c *gin.Context) {
	n, err := a.QuarantineUserMedia(c.Request.Context(), actorOf(c), id.UserID(c.Param("userId")))
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	httpx.OK(c, gin.H{"num_quarantined": n})
}

// QuarantineUserMedia quarantines every medium a local user uploaded but
// the protected ones (the HTTP API and the CLI); it returns how many.
func (a *API) QuarantineUserMedia(ctx context.Context, act Actor, userID id.UserID) (int, error) {
	m := a.opts.Media
	if m == nil {
		return 0, unrecognized()
	}
	if err := a.checkLocalUser(userID); err != nil {
		return 0, err
	}
	act, err := a.resolve(ctx, act)
	if err != nil {
		return 0, err
	}
	list, _, err := m.List(ctx, media.Query{UserID: userID})
	if err != nil {
		return 0, err
	}
	ids := make([]string, 0, len(list))
	for _, r := range list {
		ids = append(ids, r.MediaID)
	}
	n, err := m.Quarantine(ctx, ids, act.UserID)
	if err != nil {
		return 0, err
	}
	a.auditAs(ctx, act, "quarantine media of user", "user", userID, "count", n)
	return n, nil
}

// POST /_synapse/admin/v1/media/protect/{mediaId} (and unprotect)
func (a *API) protect(on bool) gin.HandlerFunc {
	return func(c *gin.Context) {
		m, ok := a.media(c)
		if !ok {
			return
		}
		if err := m.Protect(c.Request.Context(), c.Param("mediaId"), on); err != nil {
			httpx.Fail(c, err)
			return
		}
		a.audit(c, "protect media", "media", c.Param("mediaId"), "protected", on)
		httpx.OK(c, httpx.Empty)
	}
}

// GET /_synapse/admin/v1/statistics/users/media
func (a *API) mediaStatistics(c *gin.Context) {
	m, ok := a.media(c)
	if !ok {
		return
	}
	from, ok := queryInt(c, "from", 0)
	if !ok {
		return
	}
	limit, ok := queryInt(c, "limit", 100)
	if !ok {
		return
	}
	usage, total, err := m.UsageByUser(c.Request.Context(), from, limit)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	out := make([]gin.H, 0, len(usage))
	for _, u := range usage {
		name, _, err := a.users.Profile(c.Request.Context(), u.UserID)
		if err != nil {
			httpx.Fail(c, err)
			return
		}
		out = append(out, gin.H{"user_id": u.UserID, "displayname": nonEmpty(name), "media_count": u.Count, "media_length": u.Bytes})
	}
	resp := gin.H{"users": out, "total": total}
	if from+len(usage) < total {
		resp["next_token"] = from + len(usage)
	}
	httpx.OK(c, resp)
}

// POST /_synapse/admin/v1/purge_media_cache?before_ts=…: the cached copies
// of other servers' media fetched before before_ts (ms) are deleted.
func (a *API) purgeMediaCache(c *gin.Context) {
	m, ok := a.media(c)
	if !ok {
		return
	}
	before, err := strconv.ParseInt(c.Query("before_ts"), 10, 64)
	if err != nil || before <= 0 {
		httpx.Fail(c, types.MissingParam("Missing integer query parameter before_ts"))
		return
	}
	n, err := m.PurgeRemoteCache(context.WithoutCancel(c.Request.Context()), before)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	a.audit(c, "purge remote media cache", "before_ts", before, "deleted", n)
	httpx.OK(c, gin.H{"deleted": n})
}
