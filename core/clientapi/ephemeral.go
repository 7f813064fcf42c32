package clientapi

import (
	"encoding/json"
	"time"

	"github.com/gin-gonic/gin"
	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/core/httpx"
	"github.com/tributary-hs/tributary/core/types"
)

func (a *API) registerEphemeral(g gin.IRouter, auth gin.HandlerFunc) {
	g.PUT("/rooms/:roomId/typing/:userId", auth, a.typing)
	g.POST("/rooms/:roomId/receipt/:receiptType/:eventId", auth, a.receipt)
	g.POST("/rooms/:roomId/read_markers", auth, a.readMarkers)
	g.PUT("/sendToDevice/:eventType/:txnId", auth, a.sendToDevice)
	g.PUT("/presence/:userId/status", auth, a.putPresence)
	g.GET("/presence/:userId/status", auth, a.getPresence)
}

// PUT /_matrix/client/v3/rooms/{roomId}/typing/{userId}
func (a *API) typing(c *gin.Context) {
	roomID, ok := roomParam(c)
	if !ok {
		return
	}
	var body struct {
		Typing  *bool `json:"typing"`
		Timeout int64 `json:"timeout"`
	}
	if err := httpx.DecodeJSON(c, &body); err != nil {
		httpx.Fail(c, err)
		return
	}
	if body.Typing == nil {
		httpx.Fail(c, types.MissingParam("typing is required"))
		return
	}
	me := httpx.PrincipalOf(c).UserID
	if id.UserID(c.Param("userId")) != me {
		httpx.Fail(c, types.Forbidden("You can only set your own typing state"))
		return
	}
	if err := a.eph.SetTyping(c.Request.Context(), roomID, me, *body.Typing,
		time.Duration(body.Timeout)*time.Millisecond); err != nil {
		httpx.Fail(c, err)
		return
	}
	httpx.OK(c, httpx.Empty)
}

// POST /_matrix/client/v3/rooms/{roomId}/receipt/{receiptType}/{eventId}
func (a *API) receipt(c *gin.Context) {
	roomID, ok := roomParam(c)
	if !ok {
		return
	}
	var body struct {
		ThreadID *string `json:"thread_id"`
	}
	if err := httpx.DecodeOptionalJSON(c, &body); err != nil {
		httpx.Fail(c, err)
		return
	}
	if body.ThreadID != nil && *body.ThreadID == "" {
		httpx.Fail(c, types.InvalidParam("thread_id field must be a non-empty string"))
		return
	}
	threadID := ""
	if body.ThreadID != nil {
		threadID = *body.ThreadID
	}
	me := httpx.PrincipalOf(c).UserID
	eventID := id.EventID(c.Param("eventId"))
	ctx := c.Request.Context()
	var err error
	if c.Param("receiptType") == "m.fully_read" {
		if threadID != "" {
			httpx.Fail(c, types.InvalidParam("m.fully_read cannot be threaded"))
			return
		}
		if _, err = a.rooms.Event(ctx, roomID, me, eventID); err == nil {
			err = a.users.SetFullyRead(ctx, me, roomID, eventID)
		}
	} else {
		err = a.eph.SetReceipt(ctx, roomID, me, c.Param("receiptType"), eventID, threadID)
	}
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	httpx.OK(c, httpx.Empty)
}

// POST /_matrix/client/v3/rooms/{roomId}/read_markers
func (a *API) readMarkers(c *gin.Context) {
	roomID, ok := roomParam(c)
	if !ok {
		return
	}
	var body struct {
		FullyRead   id.EventID `json:"m.fully_read"`
		Read        id.EventID `json:"m.read"`
		ReadPrivate id.EventID `json:"m.read.private"`
	}
	if err := httpx.DecodeJSON(c, &body); err != nil {
		httpx.Fail(c, err)
		return
	}
	me := httpx.PrincipalOf(c).UserID
	ctx := c.Request.Context()
	if body.FullyRead != "" {
		if _, err := a.rooms.Event(ctx, roomID, me, body.FullyRead); err != nil {
			httpx.Fail(c, err)
			return
		}
		if err := a.users.SetFullyRead(ctx, me, roomID, body.FullyRead); err != nil {
			httpx.Fail(c, err)
			return
		}
	}
	for typ, eid := range map[string]id.EventID{"m.read": body.Read, "m.read.private": body.ReadPrivate} {
		if eid == "" {
			continue
		}
		if err := a.eph.SetReceipt(ctx, roomID, me, typ, eid, ""); err != nil {
			httpx.Fail(c, err)
			return
		}
	}
	httpx.OK(c, httpx.Empty)
}

// PUT /_matrix/client/v3/sendToDevice/{eventType}/{txnId}
func (a *API) sendToDevice(c *gin.Context) {
	var body struct {
		Messages map[id.UserID]map[string]json.RawMessage `json:"messages"`
	}
	if err := httpx.DecodeJSON(c, &body); err != nil {
		httpx.Fail(c, err)
		return
	}
	if body.Messages == nil {
		httpx.Fail(c, types.MissingParam("messages is required"))
		return
	}
	p := httpx.PrincipalOf(c)
	if err := a.eph.SendToDevice(c.Request.Context(), p.UserID, p.DeviceID, c.Param("txnId"),
		c.Param("eventType"), body.Messages); err != nil {
		httpx.Fail(c, err)
		return
	}
	httpx.OK(c, httpx.Empty)
}

// PUT /_matrix/client/v3/presence/{userId}/status
func (a *API) putPresence(c *gin.Context) {
	var body struct {
		Presence  string `json:"presence"`
		StatusMsg string `json:"status_msg"`
	}
	if err := httpx.DecodeJSON(c, &body); err != nil {
		httpx.Fail(c, err)
		return
	}
	if err := a.eph.SetPresence(c.Request.Context(), httpx.PrincipalOf(c).UserID, id.UserID(c.Param("userId")),
		body.Presence, body.StatusMsg); err != nil {
		httpx.Fail(c, err)
		return
	}
	httpx.OK(c, httpx.Empty)
}

// GET /_matrix/client/v3/presence/{userId}/status
func (a *API) getPresence(c *gin.Context) {
	user := id.UserID(c.Param("userId"))
	if _, _, err := user.Parse(); err != nil {
		httpx.Fail(c, types.InvalidParam("Invalid user ID"))
		return
	}
	// Another server's user: their presence as their server last said
	// (offline when it said nothing).
	if user.Homeserver() == a.opts.ServerName {
		if _, err := a.users.GetAccount(c.Request.Context(), user); err != nil {
			httpx.Fail(c, err)
			return
		}
	}
	p, err := a.eph.GetPresence(c.Request.Context(), user)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	httpx.OK(c, p)
}
