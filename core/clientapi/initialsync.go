package clientapi

import (
	"strconv"
	"time"

	"github.com/gin-gonic/gin"
	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/core/httpx"
	tsync "github.com/tributary-hs/tributary/core/sync"
	"github.com/tributary-hs/tributary/core/types"
)

// registerInitialSync adds the sync-era endpoints: the initial syncs and
// the old event stream (with room_id, how clients follow a room they peek into).
func (a *API) registerInitialSync(g gin.IRouter, auth gin.HandlerFunc) {
	g.GET("/initialSync", auth, a.initialSync)
	g.GET("/rooms/:roomId/initialSync", auth, a.roomInitialSync)
	g.GET("/events", auth, a.eventStream)
}

// defaultEventsTimeout is how long GET /events waits without a timeout
// parameter (as Synapse does).
const defaultEventsTimeout = 30 * time.Second

// initialSyncLimit reads the limit of messages per room: 10 when absent.
func initialSyncLimit(c *gin.Context) (int, bool) {
	if c.Query("limit") == "" {
		return 10, true
	}
	return queryLimit(c)
}

// GET /_matrix/client/v3/initialSync (deprecated)
func (a *API) initialSync(c *gin.Context) {
	limit, ok := initialSyncLimit(c)
	if !ok {
		return
	}
	archived := false
	switch c.Query("archived") {
	case "", "false":
	case "true":
		archived = true
	default:
		httpx.Fail(c, types.InvalidParam("archived must be true or false"))
		return
	}
	p := httpx.PrincipalOf(c)
	resp, err := a.sync_.InitialSync(c.Request.Context(), &tsync.InitialSyncRequest{User: p.UserID,
		Device: p.DeviceID, Limit: limit, Archived: archived})
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	httpx.OK(c, resp)
}

// GET /_matrix/client/v3/rooms/{roomId}/initialSync
func (a *API) roomInitialSync(c *gin.Context) {
	roomID, ok := roomParam(c)
	if !ok {
		return
	}
	limit, ok := initialSyncLimit(c)
	if !ok {
		return
	}
	p := httpx.PrincipalOf(c)
	info, err := a.sync_.RoomInitialSync(c.Request.Context(), &tsync.RoomInitialSyncRequest{User: p.UserID,
		Device: p.DeviceID, RoomID: roomID, Limit: limit})
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	httpx.OK(c, info)
}

// GET /_matrix/client/v3/events (deprecated; with room_id, the peeking
// variant, where the spec since v1.17 requires room_id)
func (a *API) eventStream(c *gin.Context) {
	timeout := defaultEventsTimeout
	if t := c.Query("timeout"); t != "" {
		ms, err := strconv.ParseInt(t, 10, 64)
		if err != nil || ms < 0 {
			httpx.Fail(c, types.InvalidParam("timeout must be a non-negative number of milliseconds"))
			return
		}
		timeout = time.Duration(min(ms, int64(time.Hour/time.Millisecond))) * time.Millisecond
	}
	var roomID id.RoomID
	if _, present := c.GetQuery("room_id"); present {
		r := c.Query("room_id")
		if len(r) < 2 || r[0] != '!' || len(r) > 255 {
			httpx.Fail(c, types.InvalidParam("Invalid room ID %q", r))
			return
		}
		roomID = id.RoomID(r)
	}
	p := httpx.PrincipalOf(c)
	ctx := c.Request.Context()
	resp, err := a.sync_.Events(ctx, &tsync.EventsRequest{User: p.UserID, Device: p.DeviceID,
		From: c.Query("from"), Timeout: timeout, RoomID: roomID})
	if err != nil {
		if ctx.Err() != nil {
			return // the client went away
		}
		httpx.Fail(c, err)
		return
	}
	httpx.OK(c, resp)
}
