package clientapi

import (
	"strconv"

	"github.com/gin-gonic/gin"
	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/core/httpx"
	"github.com/tributary-hs/tributary/core/rooms"
	"github.com/tributary-hs/tributary/core/types"
)

func (a *API) registerRelations(v1 gin.IRouter, auth gin.HandlerFunc) {
	v1.GET("/rooms/:roomId/relations/:eventId", auth, a.relations)
	v1.GET("/rooms/:roomId/relations/:eventId/:relType", auth, a.relations)
	v1.GET("/rooms/:roomId/relations/:eventId/:relType/:eventType", auth, a.relations)
	v1.GET("/rooms/:roomId/threads", auth, a.threads)
	v1.GET("/rooms/:roomId/hierarchy", auth, a.hierarchy)
}

// GET /_matrix/client/v1/rooms/{roomId}/relations/{eventId}[/{relType}[/{eventType}]]
func (a *API) relations(c *gin.Context) {
	roomID, ok := roomParam(c)
	if !ok {
		return
	}
	limit, ok := queryLimit(c)
	if !ok {
		return
	}
	dir := c.DefaultQuery("dir", "b")
	if dir != "b" && dir != "f" {
		httpx.Fail(c, types.InvalidParam("dir must be b or f"))
		return
	}
	page, err := a.rooms.Relations(c.Request.Context(), &rooms.RelationsRequest{RoomID: roomID,
		User: httpx.PrincipalOf(c).UserID, EventID: id.EventID(c.Param("eventId")),
		RelType: c.Param("relType"), EventType: c.Param("eventType"), From: c.Query("from"),
		Forwards: dir == "f", Limit: limit})
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	httpx.OK(c, page)
}

// GET /_matrix/client/v1/rooms/{roomId}/threads
func (a *API) threads(c *gin.Context) {
	roomID, ok := roomParam(c)
	if !ok {
		return
	}
	limit, ok := queryLimit(c)
	if !ok {
		return
	}
	include := c.DefaultQuery("include", "all")
	if include != "all" && include != "participated" {
		httpx.Fail(c, types.InvalidParam("include must be all or participated"))
		return
	}
	page, err := a.rooms.Threads(c.Request.Context(), roomID, httpx.PrincipalOf(c).UserID,
		c.Query("from"), limit, include == "participated")
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	httpx.OK(c, page)
}

// GET /_matrix/client/v1/rooms/{roomId}/hierarchy
func (a *API) hierarchy(c *gin.Context) {
	roomID, ok := roomParam(c)
	if !ok {
		return
	}
	limit, ok := queryLimit(c)
	if !ok {
		return
	}
	maxDepth := -1
	if s := c.Query("max_depth"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			httpx.Fail(c, types.InvalidParam("max_depth must be a non-negative integer"))
			return
		}
		maxDepth = n
	}
	list, next, err := a.rooms.Hierarchy(c.Request.Context(), &rooms.HierarchyRequest{RoomID: roomID,
		User: httpx.PrincipalOf(c).UserID, SuggestedOnly: c.Query("suggested_only") == "true",
		Limit: limit, MaxDepth: maxDepth, From: c.Query("from")})
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	body := gin.H{"rooms": list}
	if next != "" {
		body["next_batch"] = next
	}
	httpx.OK(c, body)
}

// POST /_matrix/client/v3/rooms/{roomId}/upgrade
func (a *API) upgrade(c *gin.Context) {
	roomID, ok := roomParam(c)
	if !ok {
		return
	}
	var body struct {
		NewVersion         id.RoomVersion `json:"new_version"`
		AdditionalCreators []id.UserID    `json:"additional_creators"`
	}
	if err := httpx.DecodeJSON(c, &body); err != nil {
		httpx.Fail(c, err)
		return
	}
	if body.NewVersion == "" {
		httpx.Fail(c, types.MissingParam("new_version is required"))
		return
	}
	newRoom, err := a.rooms.Upgrade(c.Request.Context(), roomID, httpx.PrincipalOf(c).UserID,
		body.NewVersion, body.AdditionalCreators)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	httpx.OK(c, gin.H{"replacement_room": newRoom})
}
