package admin

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"
	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/core/httpx"
	"github.com/tributary-hs/tributary/core/rooms"
	"github.com/tributary-hs/tributary/core/types"
)

// RoomAdmin is what the admin API reads of and does to rooms beyond
// listing and deleting them (core/rooms.Service).
type RoomAdmin interface {
	ResolveRoom(ctx context.Context, roomIDOrAlias string) (id.RoomID, error)
	AdminMessages(ctx context.Context, req *rooms.MessagesRequest) (*rooms.Page, error)
	AdminContext(ctx context.Context, roomID id.RoomID, admin id.UserID, eventID id.EventID, limit int,
		filter *rooms.EventFilter) (*rooms.ContextResult, error)
	AdminTimestampToEvent(ctx context.Context, roomID id.RoomID, ts int64, forwards bool) (*rooms.ClientEvent, error)
	MakeRoomAdmin(ctx context.Context, roomID id.RoomID, user id.UserID) error
	AdminExtremities(ctx context.Context, roomID id.RoomID) ([]rooms.Extremity, error)
	DeleteExtremities(ctx context.Context, roomID id.RoomID) (int, error)
	RoomMedia(ctx context.Context, roomID id.RoomID) (local, remote []string, err error)
}

func (a *API) roomAdmin(c *gin.Context) (RoomAdmin, bool) {
	if a.opts.RoomAdmin == nil {
		httpx.Fail(c, types.NewError(http.StatusNotFound, types.CodeUnrecognized, "Unrecognized request"))
		return nil, false
	}
	return a.opts.RoomAdmin, true
}

// roomAdminParam is the room admin interface and the {roomId} parameter.
func (a *API) roomAdminParam(c *gin.Context) (RoomAdmin, id.RoomID, bool) {
	ra, ok := a.roomAdmin(c)
	if !ok {
		return nil, "", false
	}
	roomID, ok := roomParam(c)
	return ra, roomID, ok
}

// roomFilter reads the filter query parameter (a RoomEventFilter as JSON).
func roomFilter(c *gin.Context) (*rooms.EventFilter, bool) {
	raw := c.Query("filter")
	if raw == "" {
		return nil, true
	}
	var f rooms.EventFilter
	if err := json.Unmarshal([]byte(raw), &f); err != nil {
		httpx.Fail(c, types.BadJSON("filter is not a valid RoomEventFilter"))
		return nil, false
	}
	return &f, true
}

// GET /_synapse/admin/v1/rooms/{roomId}/messages?from&to&limit&dir&filter:
// the room's timeline as /messages pages it, every event whatever the
// admin's membership and the room's history visibility.
func (a *API) roomMessages(c *gin.Context) {
	ra, roomID, ok := a.roomAdminParam(c)
	if !ok {
		return
	}
	dir := c.DefaultQuery("dir", "f")
	if dir != "f" && dir != "b" {
		httpx.Fail(c, types.InvalidParam("Unknown direction: %s", dir))
		return
	}
	limit, ok := queryInt(c, "limit", 10)
	if !ok {
		return
	}
	filter, ok := roomFilter(c)
	if !ok {
		return
	}
	for _, tok := range []string{c.Query("from"), c.Query("to")} {
		if tok != "" {
			if _, err := rooms.ParseToken(tok); err != nil {
				httpx.Fail(c, err)
				return
			}
		}
	}
	a.audit(c, "read room messages", "room", roomID)
	page, err := ra.AdminMessages(c.Request.Context(), &rooms.MessagesRequest{RoomID: roomID, User: httpx.PrincipalOf(c).UserID,
		From: c.Query("from"), To: c.Query("to"), Backwards: dir == "b", Limit: limit, Filter: filter})
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	httpx.OK(c, page)
}

// GET /_synapse/admin/v1/rooms/{roomId}/context/{eventId}?limit&filter
func (a *API) roomContext(c *gin.Context) {
	ra, roomID, ok := a.roomAdminParam(c)
	if !ok {
		return
	}
	limit, ok := queryInt(c, "limit", 10)
	if !ok {
		return
	}
	filter, ok := roomFilter(c)
	if !ok {
		return
	}
	eventID := id.EventID(c.Param("eventId"))
	if err := types.CheckEventID(eventID); err != nil {
		httpx.Fail(c, err)
		return
	}
	a.audit(c, "read event context", "room", roomID, "event", eventID)
	res, err := ra.AdminContext(c.Request.Context(), roomID, httpx.PrincipalOf(c).UserID, eventID, limit, filter)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	httpx.OK(c, res)
}

// GET /_synapse/admin/v1/rooms/{roomId}/timestamp_to_event?ts=&dir=f|b
func (a *API) roomTimestampToEvent(c *gin.Context) {
	ra, roomID, ok := a.roomAdminParam(c)
	if !ok {
		return
	}
	ts, err := strconv.ParseInt(c.Query("ts"), 10, 64)
	if err != nil || ts < 0 {
		httpx.Fail(c, types.MissingParam("Missing integer query parameter ts"))
		return
	}
	dir := c.DefaultQuery("dir", "f")
	if dir != "f" && dir != "b" {
		httpx.Fail(c, types.InvalidParam("Unknown direction: %s", dir))
		return
	}
	ev, err := ra.AdminTimestampToEvent(c.Request.Context(), roomID, ts, dir == "f")
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	httpx.OK(c, gin.H{"event_id": ev.EventID, "origin_server_ts": ev.OriginServerTS})
}

// POST /_synapse/admin/v1/rooms/{roomIdOrAlias}/make_room_admin {"user_id"}:
// the user (the admin by default) gets the highest power a local member
// of the room holds.
func (a *API) makeRoomAdmin(c *gin.Context) {
	ra, ok := a.roomAdmin(c)
	if !ok {
		return
	}
	var body struct {
		UserID id.UserID `json:"user_id"`
	}
	if err := httpx.DecodeOptionalJSON(c, &body); err != nil {
		httpx.Fail(c, err)
		return
	}
	user := body.UserID
	if user == "" {
		user = httpx.PrincipalOf(c).UserID
	}
	if _, _, err := user.ParseAndValidateRelaxed(); err != nil {
		httpx.Fail(c, types.InvalidParam("Invalid user ID"))
		return
	}
	if user.Homeserver() != a.users.ServerName() {
		httpx.Fail(c, types.InvalidParam("Only local users can be admins of rooms"))
		return
	}
	if _, err := a.users.GetAccount(c.Request.Context(), user); err != nil {
		httpx.Fail(c, err)
		return
	}
	ref := c.Param("roomId")
	if !strings.HasPrefix(ref, "!") && !strings.HasPrefix(ref, "#") {
		httpx.Fail(c, types.InvalidParam("%s is not a room ID or alias", ref))
		return
	}
	ctx := context.WithoutCancel(c.Request.Context())
	roomID, err := ra.ResolveRoom(ctx, ref)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	a.audit(c, "make room admin", "room", roomID, "user", user)
	if err := ra.MakeRoomAdmin(ctx, roomID, user); err != nil {
		httpx.Fail(c, err)
		return
	}
	httpx.OK(c, httpx.Empty)
}

// resolvedRoom is the {roomId} parameter, a room ID or an alias.
func (a *API) resolvedRoom(c *gin.Context) (RoomAdmin, id.RoomID, bool) {
	ra, ok := a.roomAdmin(c)
	if !ok {
		return nil, "", false
	}
	ref := c.Param("roomId")
	if !strings.HasPrefix(ref, "!") && !strings.HasPrefix(ref, "#") {
		httpx.Fail(c, types.InvalidParam("%s is not a room ID or alias", ref))
		return nil, "", false
	}
	roomID, err := ra.ResolveRoom(c.Request.Context(), ref)
	if err != nil {
		httpx.Fail(c, err)
		return nil, "", false
	}
	return ra, roomID, true
}

// GET /_synapse/admin/v1/rooms/{roomIdOrAlias}/forward_extremities
func (a *API) forwardExtremities(c *gin.Context) {
	ra, roomID, ok := a.resolvedRoom(c)
	if !ok {
		return
	}
	list, err := ra.AdminExtremities(c.Request.Context(), roomID)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	httpx.OK(c, gin.H{"count": len(list), "results": list})
}

// DELETE /_synapse/admin/v1/rooms/{roomIdOrAlias}/forward_extremities: all
// but the newest go.
func (a *API) deleteForwardExtremities(c *gin.Context) {
	ra, roomID, ok := a.resolvedRoom(c)
	if !ok {
		return
	}
	a.audit(c, "delete forward extremities", "room", roomID)
	n, err := ra.DeleteExtremities(context.WithoutCancel(c.Request.Context()), roomID)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	httpx.OK(c, gin.H{"deleted": n})
}

// GET /_synapse/admin/v1/room/{roomId}/media: the mxc URIs its events hold.
func (a *API) roomMedia(c *gin.Context) {
	ra, roomID, ok := a.roomAdminParam(c)
	if !ok {
		return
	}
	local, remote, err := ra.RoomMedia(c.Request.Context(), roomID)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	httpx.OK(c, gin.H{"local": local, "remote": remote})
}

// POST /_synapse/admin/v1/room/{roomId}/media/quarantine (and the older
// /quarantine_media/{roomId}): every media item the room's events hold,
// this server's and the cached copies of other servers', is quarantined.
func (a *API) quarantineRoomMedia(c *gin.Context) {
	n, err := a.QuarantineRoomMedia(c.Request.Context(), actorOf(c), id.RoomID(c.Param("roomId")))
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	httpx.OK(c, gin.H{"num_quarantined": n})
}

// QuarantineRoomMedia quarantines every medium the room's events refer to,
// this server's and cached copies of others' (the HTTP API and the CLI);
// it returns how many.
func (a *API) QuarantineRoomMedia(ctx context.Context, act Actor, roomID id.RoomID) (int, error) {
	ra, m := a.opts.RoomAdmin, a.opts.Media
	if ra == nil || m == nil {
		return 0, unrecognized()
	}
	if err := checkRoomID(roomID); err != nil {
		return 0, err
	}
	act, err := a.resolve(ctx, act)
	if err != nil {
		return 0, err
	}
	local, remote, err := ra.RoomMedia(ctx, roomID)
	if err != nil {
		return 0, err
	}
	var keys []string
	for _, uri := range append(local, remote...) {
		if k := m.MediaKey(uri); k != "" {
			keys = append(keys, k)
		}
	}
	n, err := m.Quarantine(ctx, keys, act.UserID)
	if err != nil {
		return 0, err
	}
	a.auditAs(ctx, act, "quarantine room media", "room", roomID, "quarantined", n)
	return n, nil
}
