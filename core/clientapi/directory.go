package clientapi

import (
	"net/http"
	"strconv"

	"github.com/gin-gonic/gin"
	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/core/httpx"
	"github.com/tributary-hs/tributary/core/rooms"
	"github.com/tributary-hs/tributary/core/types"
)

func (a *API) registerDirectory(g gin.IRouter, auth gin.HandlerFunc) {
	g.PUT("/directory/room/:alias", auth, a.putAlias)
	g.GET("/directory/room/:alias", a.getAlias)
	g.DELETE("/directory/room/:alias", auth, a.deleteAlias)
	g.GET("/rooms/:roomId/aliases", auth, a.roomAliases)
	g.GET("/directory/list/room/:roomId", a.getVisibility)
	g.PUT("/directory/list/room/:roomId", auth, a.putVisibility)
	g.GET("/publicRooms", a.publicRoomsGet)
	g.POST("/publicRooms", auth, a.publicRoomsPost)
	g.PUT("/directory/list/appservice/:networkId/:roomId", a.appServiceRoomList)
	g.POST("/users/:userId/report", auth, a.reportUser)
	g.POST("/rooms/:roomId/forget", auth, a.forget)
	g.POST("/rooms/:roomId/report/:eventId", auth, a.reportEvent)
	g.POST("/rooms/:roomId/report", auth, a.reportRoom)
}

func (a *API) registerRoomsV1(v1 gin.IRouter, auth gin.HandlerFunc) {
	v1.GET("/rooms/:roomId/timestamp_to_event", auth, a.timestampToEvent)
	v1.GET("/mutual_rooms", auth, a.mutualRooms)
}

// PUT /_matrix/client/v3/directory/room/{roomAlias}
func (a *API) putAlias(c *gin.Context) {
	var body struct {
		RoomID id.RoomID `json:"room_id"`
	}
	if err := httpx.DecodeJSON(c, &body); err != nil {
		httpx.Fail(c, err)
		return
	}
	if body.RoomID == "" {
		httpx.Fail(c, types.MissingParam("room_id is required"))
		return
	}
	if err := a.rooms.CreateAlias(c.Request.Context(), httpx.PrincipalOf(c).UserID, id.RoomAlias(c.Param("alias")), body.RoomID); err != nil {
		httpx.Fail(c, err)
		return
	}
	httpx.OK(c, httpx.Empty)
}

// GET /_matrix/client/v3/directory/room/{roomAlias}
func (a *API) getAlias(c *gin.Context) {
	roomID, servers, err := a.rooms.GetAlias(c.Request.Context(), id.RoomAlias(c.Param("alias")))
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	httpx.OK(c, gin.H{"room_id": roomID, "servers": servers})
}

// DELETE /_matrix/client/v3/directory/room/{roomAlias}
func (a *API) deleteAlias(c *gin.Context) {
	ctx := c.Request.Context()
	user := httpx.PrincipalOf(c).UserID
	admin, err := a.users.IsAdmin(ctx, user)
	if err == nil {
		err = a.rooms.DeleteAlias(ctx, user, admin, id.RoomAlias(c.Param("alias")))
	}
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	httpx.OK(c, httpx.Empty)
}

// GET /_matrix/client/v3/rooms/{roomId}/aliases
func (a *API) roomAliases(c *gin.Context) {
	roomID, ok := roomParam(c)
	if !ok {
		return
	}
	aliases, err := a.rooms.RoomAliases(c.Request.Context(), roomID, httpx.PrincipalOf(c).UserID)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	httpx.OK(c, gin.H{"aliases": aliases})
}

// GET /_matrix/client/v3/directory/list/room/{roomId}
func (a *API) getVisibility(c *gin.Context) {
	roomID, ok := roomParam(c)
	if !ok {
		return
	}
	v, err := a.rooms.Visibility(c.Request.Context(), roomID)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	httpx.OK(c, gin.H{"visibility": v})
}

// PUT /_matrix/client/v3/directory/list/room/{roomId}
func (a *API) putVisibility(c *gin.Context) {
	roomID, ok := roomParam(c)
	if !ok {
		return
	}
	var body struct {
		Visibility string `json:"visibility"`
	}
	if err := httpx.DecodeJSON(c, &body); err != nil {
		httpx.Fail(c, err)
		return
	}
	ctx := c.Request.Context()
	user := httpx.PrincipalOf(c).UserID
	admin, err := a.users.IsAdmin(ctx, user)
	if err == nil {
		err = a.rooms.SetVisibility(ctx, roomID, user, admin, body.Visibility)
	}
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	httpx.OK(c, httpx.Empty)
}

// GET /_matrix/client/v3/publicRooms
func (a *API) publicRoomsGet(c *gin.Context) {
	req := &rooms.PublicRoomsRequest{Since: c.Query("since")}
	if s := c.Query("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			httpx.Fail(c, types.InvalidParam("limit must be a non-negative integer"))
			return
		}
		req.Limit = n
	}
	a.publicRooms(c, req, c.Query("server"))
}

// POST /_matrix/client/v3/publicRooms
func (a *API) publicRoomsPost(c *gin.Context) {
	var body struct {
		Limit  int    `json:"limit"`
		Since  string `json:"since"`
		Filter struct {
			GenericSearchTerm string    `json:"generic_search_term"`
			RoomTypes         []*string `json:"room_types"`
		} `json:"filter"`
		ThirdPartyInstanceID string `json:"third_party_instance_id"`
		IncludeAllNetworks   bool   `json:"include_all_networks"`
	}
	if err := httpx.DecodeOptionalJSON(c, &body); err != nil {
		httpx.Fail(c, err)
		return
	}
	if body.Limit < 0 {
		httpx.Fail(c, types.InvalidParam("limit must not be negative"))
		return
	}
	a.publicRooms(c, &rooms.PublicRoomsRequest{Limit: body.Limit, Since: body.Since,
		SearchTerm: body.Filter.GenericSearchTerm, RoomTypes: body.Filter.RoomTypes,
		ThirdPartyInstanceID: body.ThirdPartyInstanceID, IncludeAllNetworks: body.IncludeAllNetworks}, c.Query("server"))
}

// PUT /_matrix/client/v3/directory/list/appservice/{networkId}/{roomId}:
// an appservice publishes a room in one of its networks' room lists.
func (a *API) appServiceRoomList(c *gin.Context) {
	p, err := a.appService(c)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	roomID, ok := roomParam(c)
	if !ok {
		return
	}
	network := c.Param("networkId")
	if network == "" || len(network) > 255 {
		httpx.Fail(c, types.InvalidParam("Invalid network ID"))
		return
	}
	var body struct {
		Visibility string `json:"visibility"`
	}
	if err := httpx.DecodeJSON(c, &body); err != nil {
		httpx.Fail(c, err)
		return
	}
	if body.Visibility != "public" && body.Visibility != "private" {
		httpx.Fail(c, types.InvalidParam("visibility must be public or private"))
		return
	}
	if err := a.rooms.SetNetworkListed(c.Request.Context(), p.AppServiceID, network, roomID, body.Visibility == "public"); err != nil {
		httpx.Fail(c, err)
		return
	}
	httpx.OK(c, httpx.Empty)
}

func (a *API) publicRooms(c *gin.Context, req *rooms.PublicRoomsRequest, server string) {
	if server != "" && server != a.opts.ServerName {
		// Other servers' directories come with federation.
		httpx.Fail(c, types.NotFound("Cannot query the room directory of %s", server))
		return
	}
	out, err := a.rooms.PublicRooms(c.Request.Context(), req)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	httpx.OK(c, out)
}

// POST /_matrix/client/v3/rooms/{roomId}/forget
func (a *API) forget(c *gin.Context) {
	roomID, ok := roomParam(c)
	if !ok {
		return
	}
	if err := a.rooms.Forget(c.Request.Context(), roomID, httpx.PrincipalOf(c).UserID); err != nil {
		httpx.Fail(c, err)
		return
	}
	httpx.OK(c, httpx.Empty)
}

type reportBody struct {
	Reason string `json:"reason"`
	Score  *int64 `json:"score"`
}

// POST /_matrix/client/v3/rooms/{roomId}/report/{eventId}
func (a *API) reportEvent(c *gin.Context) { a.report(c, id.EventID(c.Param("eventId"))) }

// POST /_matrix/client/v3/rooms/{roomId}/report
func (a *API) reportRoom(c *gin.Context) { a.report(c, "") }

func (a *API) report(c *gin.Context, eventID id.EventID) {
	roomID, ok := roomParam(c)
	if !ok {
		return
	}
	var body reportBody
	if err := httpx.DecodeOptionalJSON(c, &body); err != nil {
		httpx.Fail(c, err)
		return
	}
	if err := a.rooms.Report(c.Request.Context(), roomID, httpx.PrincipalOf(c).UserID, eventID,
		body.Reason, body.Score); err != nil {
		httpx.Fail(c, err)
		return
	}
	httpx.OK(c, httpx.Empty)
}

// POST /_matrix/client/v3/users/{userId}/report
func (a *API) reportUser(c *gin.Context) {
	var body struct {
		Reason *string `json:"reason"`
	}
	if err := httpx.DecodeJSON(c, &body); err != nil {
		httpx.Fail(c, err)
		return
	}
	if body.Reason == nil {
		httpx.Fail(c, types.MissingParam("reason is required (it may be empty)"))
		return
	}
	ctx := c.Request.Context()
	user := id.UserID(c.Param("userId"))
	// Users of other servers are always recorded; local ones if they exist.
	known := user.Homeserver() != a.opts.ServerName
	if !known {
		_, err := a.users.GetAccount(ctx, user)
		if me, ok := types.AsError(err); err != nil && (!ok || me.Status != http.StatusNotFound) {
			httpx.Fail(c, err)
			return
		}
		known = err == nil
	}
	if err := a.rooms.ReportUser(ctx, httpx.PrincipalOf(c).UserID, user, *body.Reason, known); err != nil {
		httpx.Fail(c, err)
		return
	}
	httpx.OK(c, httpx.Empty)
}

// GET /_matrix/client/v1/rooms/{roomId}/timestamp_to_event
func (a *API) timestampToEvent(c *gin.Context) {
	roomID, ok := roomParam(c)
	if !ok {
		return
	}
	ts, err := strconv.ParseInt(c.Query("ts"), 10, 64)
	if err != nil {
		httpx.Fail(c, types.InvalidParam("ts must be a timestamp in milliseconds"))
		return
	}
	dir := c.Query("dir")
	if dir != "f" && dir != "b" {
		httpx.Fail(c, types.InvalidParam("dir must be f or b"))
		return
	}
	ev, err := a.rooms.TimestampToEvent(c.Request.Context(), roomID, httpx.PrincipalOf(c).UserID, ts, dir == "f")
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	httpx.OK(c, gin.H{"event_id": ev.EventID, "origin_server_ts": ev.OriginServerTS})
}

// GET /_matrix/client/v1/mutual_rooms
func (a *API) mutualRooms(c *gin.Context) {
	other, ok := c.GetQuery("user_id")
	if !ok {
		httpx.Fail(c, types.MissingParam("user_id is required"))
		return
	}
	if from := c.Query("from"); from != "" {
		httpx.Fail(c, types.InvalidParam("Unknown from token"))
		return
	}
	joined, err := a.rooms.MutualRooms(c.Request.Context(), httpx.PrincipalOf(c).UserID, id.UserID(other))
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	httpx.OK(c, gin.H{"joined": joined, "count": len(joined)})
}
