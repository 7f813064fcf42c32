package clientapi

import (
	"github.com/gin-gonic/gin"

	"github.com/tributary-hs/tributary/core/httpx"
	"github.com/tributary-hs/tributary/core/push"
)

func (a *API) registerPushers(g gin.IRouter, auth gin.HandlerFunc) {
	g.GET("/pushers", auth, a.getPushers)
	g.POST("/pushers/set", auth, a.setPusher)
	g.GET("/notifications", auth, a.getNotifications)
}

// GET /_matrix/client/v3/pushers
func (a *API) getPushers(c *gin.Context) {
	ps, err := a.push.Pushers(c.Request.Context(), me(c))
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	httpx.OK(c, gin.H{"pushers": ps})
}

// POST /_matrix/client/v3/pushers/set
func (a *API) setPusher(c *gin.Context) {
	var body push.PusherBody
	if err := httpx.DecodeJSON(c, &body); err != nil {
		httpx.Fail(c, err)
		return
	}
	if err := a.push.SetPusher(c.Request.Context(), me(c), httpx.PrincipalOf(c).DeviceID, &body); err != nil {
		httpx.Fail(c, err)
		return
	}
	httpx.OK(c, httpx.Empty)
}

// notificationJSON is one entry of GET /notifications.
type notificationJSON struct {
	Actions []any  `json:"actions"`
	Event   any    `json:"event"`
	Read    bool   `json:"read"`
	RoomID  string `json:"room_id"`
	TS      int64  `json:"ts"`
}

// GET /_matrix/client/v3/notifications
func (a *API) getNotifications(c *gin.Context) {
	ctx, user := c.Request.Context(), me(c)
	page, err := a.push.Notifications(ctx, user, c.Query("from"), c.Query("limit"), c.Query("only"))
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	positions := make([]int64, len(page.Notifications))
	for i, n := range page.Notifications {
		positions[i] = n.StreamPos
	}
	evs, err := a.rooms.NotifiedEvents(ctx, user, positions)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	out := make([]notificationJSON, 0, len(page.Notifications))
	for _, n := range page.Notifications {
		ev, ok := evs[n.StreamPos]
		if !ok {
			continue // not (or no longer) visible to the user
		}
		out = append(out, notificationJSON{Actions: n.Actions(), Event: ev, Read: n.Read, RoomID: string(n.RoomID),
			TS: ev.OriginServerTS})
	}
	body := gin.H{"notifications": out}
	if page.NextToken != "" {
		body["next_token"] = page.NextToken
	}
	httpx.OK(c, body)
}
