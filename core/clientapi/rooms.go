package clientapi

import (
	"encoding/json/jsontext"
	"encoding/json/v2"
	"net/http"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"
	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/core/bridging"
	"github.com/tributary-hs/tributary/core/httpx"
	"github.com/tributary-hs/tributary/core/rooms"
	"github.com/tributary-hs/tributary/core/types"
)

func (a *API) registerRooms(g gin.IRouter, auth gin.HandlerFunc) {
	g.POST("/createRoom", auth, a.createRoom)
	g.POST("/join/:roomIdOrAlias", auth, a.joinByIDOrAlias)
	g.POST("/knock/:roomIdOrAlias", auth, a.knock)
	g.POST("/rooms/:roomId/join", auth, a.joinRoom)
	g.POST("/rooms/:roomId/leave", auth, a.membership("leave"))
	g.POST("/rooms/:roomId/invite", auth, shadowBan(false), a.membership("invite"))
	g.POST("/rooms/:roomId/kick", auth, a.membership("kick"))
	g.POST("/rooms/:roomId/ban", auth, a.membership("ban"))
	g.POST("/rooms/:roomId/unban", auth, a.membership("unban"))
	// Sending refuses suspended accounts in bridging.Send, which an
	// appservice acting as one reaches too.
	g.PUT("/rooms/:roomId/send/:eventType/:txnId", auth, a.sendLimit, shadowBan(true), a.sendMessage)
	g.PUT("/rooms/:roomId/state/:eventType", auth, a.sendLimit, shadowBan(true), a.putState)
	g.PUT("/rooms/:roomId/state/:eventType/*stateKey", auth, a.sendLimit, shadowBan(true), a.putState)
	g.GET("/rooms/:roomId/state", auth, a.getFullState)
	g.GET("/rooms/:roomId/state/:eventType", auth, a.getState)
	g.GET("/rooms/:roomId/state/:eventType/*stateKey", auth, a.getState)
	g.PUT("/rooms/:roomId/redact/:eventId/:txnId", auth, a.sendLimit, shadowBan(true), a.redact)
	g.GET("/rooms/:roomId/members", auth, a.members)
	g.GET("/rooms/:roomId/joined_members", auth, a.joinedMembers)
	g.GET("/joined_rooms", auth, a.joinedRooms)
	g.GET("/rooms/:roomId/messages", auth, a.messages)
	g.GET("/rooms/:roomId/context/:eventId", auth, a.eventContext)
	g.GET("/rooms/:roomId/event/:eventId", auth, a.getEvent)
	g.POST("/rooms/:roomId/upgrade", auth, a.upgrade)
}

// roomParam returns the {roomId} path parameter, checked.
func roomParam(c *gin.Context) (id.RoomID, bool) {
	r := c.Param("roomId")
	if !strings.HasPrefix(r, "!") || len(r) > 255 {
		httpx.Fail(c, types.InvalidParam("Invalid room ID %q", r))
		return "", false
	}
	return id.RoomID(r), true
}

// userParam and deviceParam give {userId} and {deviceId} their types; the
// services they go to check them.
func userParam(c *gin.Context) id.UserID     { return id.UserID(c.Param("userId")) }
func deviceParam(c *gin.Context) id.DeviceID { return id.DeviceID(c.Param("deviceId")) }

// stateKeyParam is the optional {stateKey}: "" when absent or empty.
func stateKeyParam(c *gin.Context) string { return strings.TrimPrefix(c.Param("stateKey"), "/") }

// POST /_matrix/client/v3/createRoom
func (a *API) createRoom(c *gin.Context) {
	var req rooms.CreateRequest
	if err := httpx.DecodeEventJSON(c, &req); err != nil {
		httpx.Fail(c, err)
		return
	}
	req.Creator = httpx.PrincipalOf(c).UserID
	if httpx.PrincipalOf(c).ShadowBanned {
		// The room is made, but its invitees never hear of it (Synapse's
		// shadow-ban).
		req.Invite = nil
	}
	roomID, err := a.rooms.CreateRoom(c.Request.Context(), &req)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	httpx.OK(c, gin.H{"room_id": roomID})
}

type membershipBody struct {
	UserID id.UserID `json:"user_id"`
	Reason string    `json:"reason"`
	// The third-party invite form (no user ID: an email address to look up
	// at an identity server).
	IDServer string `json:"id_server"`
	Medium   string `json:"medium"`
	Address  string `json:"address"`
}

// POST /_matrix/client/v3/join/{roomIdOrAlias}
func (a *API) joinByIDOrAlias(c *gin.Context) { a.join(c, c.Param("roomIdOrAlias"), "join") }

// POST /_matrix/client/v3/knock/{roomIdOrAlias}
func (a *API) knock(c *gin.Context) { a.join(c, c.Param("roomIdOrAlias"), "knock") }

// POST /_matrix/client/v3/rooms/{roomId}/join
func (a *API) joinRoom(c *gin.Context) {
	if _, ok := roomParam(c); ok {
		a.join(c, c.Param("roomId"), "join")
	}
}

func (a *API) join(c *gin.Context, target, membership string) {
	var raw map[string]jsontext.Value
	if err := httpx.DecodeOptionalJSON(c, &raw); err != nil {
		httpx.Fail(c, err)
		return
	}
	var body membershipBody
	if r, ok := raw["reason"]; ok {
		if err := json.Unmarshal(r, &body.Reason); err != nil {
			httpx.Fail(c, types.BadJSON("reason must be a string"))
			return
		}
	}
	delete(raw, "third_party_signed") // third-party invites are not supported
	ctx := c.Request.Context()
	roomID, aliasServers, err := a.rooms.ResolveRoomServers(ctx, target)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	// Where to join through when this server is not in the room: the
	// servers the client names (via, or the deprecated server_name), then
	// those the alias's server gave.
	servers := append(append(c.QueryArray("via"), c.QueryArray("server_name")...), aliasServers...)
	me := httpx.PrincipalOf(c).UserID
	if _, err := a.rooms.ChangeMembership(ctx, &rooms.MembershipRequest{RoomID: roomID, Sender: me, Target: me,
		Membership: membership, Reason: body.Reason, Extra: raw, Servers: servers}); err != nil {
		httpx.Fail(c, err)
		return
	}
	httpx.OK(c, gin.H{"room_id": roomID})
}

// POST /_matrix/client/v3/rooms/{roomId}/{leave,invite,kick,ban,unban}
func (a *API) membership(action string) gin.HandlerFunc {
	return func(c *gin.Context) {
		roomID, ok := roomParam(c)
		if !ok {
			return
		}
		var body membershipBody
		if err := httpx.DecodeOptionalJSON(c, &body); err != nil {
			httpx.Fail(c, err)
			return
		}
		me := httpx.PrincipalOf(c).UserID
		req := &rooms.MembershipRequest{RoomID: roomID, Sender: me, Target: body.UserID, Reason: body.Reason}
		switch action {
		case "leave":
			req.Target, req.Membership = me, "leave"
		case "kick":
			req.Membership = "leave"
		case "unban":
			// The room writer checks that the target is banned, against the
			// state the event is authorised on.
			req.Membership, req.Unban = "leave", true
		default:
			req.Membership = action
		}
		if req.Target == "" && action == "invite" && body.Medium != "" && body.Address != "" {
			httpx.Fail(c, types.NewError(http.StatusBadRequest, codeServerNotTrusted,
				"This server trusts no identity server: invite by Matrix user ID"))
			return
		}
		if req.Target == "" {
			httpx.Fail(c, types.MissingParam("user_id is required"))
			return
		}
		if _, err := a.rooms.ChangeMembership(c.Request.Context(), req); err != nil {
			httpx.Fail(c, err)
			return
		}
		httpx.OK(c, httpx.Empty)
	}
}

// readContent reads a JSON object body as event content.
func readContent(c *gin.Context) (jsontext.Value, bool) {
	body, err := httpx.ReadEventBody(c)
	if err == nil {
		var obj map[string]jsontext.Value
		err = httpx.Unmarshal(body, &obj)
	}
	if err != nil {
		httpx.Fail(c, err)
		return nil, false
	}
	return jsontext.Value(body), true
}

// PUT /_matrix/client/v3/rooms/{roomId}/send/{eventType}/{txnId}
func (a *API) sendMessage(c *gin.Context) { a.send(c, nil, c.Param("txnId")) }

// PUT /_matrix/client/v3/rooms/{roomId}/state/{eventType}/{stateKey}
func (a *API) putState(c *gin.Context) {
	key := stateKeyParam(c)
	a.send(c, &key, "")
}

// send persists a message (stateKey nil) or state event from the request body.
func (a *API) send(c *gin.Context, stateKey *string, txnID string) {
	roomID, ok := roomParam(c)
	if !ok {
		return
	}
	content, ok := readContent(c)
	if !ok {
		return
	}
	if delay, ok, err := delayParamValue(c); err != nil {
		httpx.Fail(c, err)
		return
	} else if ok {
		a.scheduleDelayed(c, roomID, stateKey, txnID, content, delay)
		return
	}
	eid, err := a.bridging.Send(c.Request.Context(), httpx.PrincipalOf(c), bridging.SendRequest{RoomID: roomID,
		Type: c.Param("eventType"), StateKey: stateKey, Content: content, TxnID: txnID, Timestamp: tsParam(c)})
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	httpx.OK(c, gin.H{"event_id": eid})
}

// GET /_matrix/client/v3/rooms/{roomId}/state/{eventType}/{stateKey}
func (a *API) getState(c *gin.Context) {
	roomID, ok := roomParam(c)
	if !ok {
		return
	}
	ev, err := a.rooms.StateEvent(c.Request.Context(), roomID, httpx.PrincipalOf(c).UserID,
		c.Param("eventType"), stateKeyParam(c))
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	if c.Query("format") == "event" {
		httpx.OK(c, ev)
		return
	}
	c.Data(http.StatusOK, "application/json", ev.Content)
}

// GET /_matrix/client/v3/rooms/{roomId}/state
func (a *API) getFullState(c *gin.Context) {
	roomID, ok := roomParam(c)
	if !ok {
		return
	}
	evs, err := a.rooms.State(c.Request.Context(), roomID, httpx.PrincipalOf(c).UserID)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	httpx.OK(c, evs)
}

// PUT /_matrix/client/v3/rooms/{roomId}/redact/{eventId}/{txnId}
func (a *API) redact(c *gin.Context) {
	roomID, ok := roomParam(c)
	if !ok {
		return
	}
	var body struct {
		Reason string `json:"reason"`
	}
	if err := httpx.DecodeOptionalJSON(c, &body); err != nil {
		httpx.Fail(c, err)
		return
	}
	p := httpx.PrincipalOf(c)
	eid, err := a.rooms.Redact(c.Request.Context(), roomID, p.UserID, p.DeviceID,
		id.EventID(c.Param("eventId")), body.Reason, c.Param("txnId"))
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	httpx.OK(c, gin.H{"event_id": eid})
}

// GET /_matrix/client/v3/rooms/{roomId}/members
func (a *API) members(c *gin.Context) {
	roomID, ok := roomParam(c)
	if !ok {
		return
	}
	evs, err := a.rooms.Members(c.Request.Context(), roomID, httpx.PrincipalOf(c).UserID, rooms.MembersRequest{
		At: c.Query("at"), Membership: c.Query("membership"), NotMembership: c.Query("not_membership")})
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	httpx.OK(c, gin.H{"chunk": evs})
}

// GET /_matrix/client/v3/rooms/{roomId}/joined_members
func (a *API) joinedMembers(c *gin.Context) {
	roomID, ok := roomParam(c)
	if !ok {
		return
	}
	m, err := a.rooms.JoinedMembers(c.Request.Context(), roomID, httpx.PrincipalOf(c).UserID)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	httpx.OK(c, gin.H{"joined": m})
}

// GET /_matrix/client/v3/joined_rooms
func (a *API) joinedRooms(c *gin.Context) {
	rs, err := a.rooms.JoinedRooms(c.Request.Context(), httpx.PrincipalOf(c).UserID)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	if rs == nil {
		rs = []id.RoomID{}
	}
	httpx.OK(c, gin.H{"joined_rooms": rs})
}

// queryFilter parses the "filter" query parameter (inline JSON RoomEventFilter).
func queryFilter(c *gin.Context) (*rooms.EventFilter, bool) {
	f, err := parseQueryFilter(c)
	if err != nil {
		httpx.Fail(c, err)
		return nil, false
	}
	return f, true
}

func parseQueryFilter(c *gin.Context) (*rooms.EventFilter, error) {
	raw := c.Query("filter")
	if raw == "" {
		return nil, nil
	}
	var f rooms.EventFilter
	if err := json.Unmarshal([]byte(raw), &f); err != nil {
		return nil, types.BadJSON("filter is not a valid RoomEventFilter")
	}
	return &f, nil
}

func queryLimit(c *gin.Context) (int, bool) {
	n, err := parseQueryLimit(c)
	if err != nil {
		httpx.Fail(c, err)
		return 0, false
	}
	return n, true
}

func parseQueryLimit(c *gin.Context) (int, error) {
	s := c.Query("limit")
	if s == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return 0, types.InvalidParam("limit must be a non-negative integer")
	}
	return n, nil
}

// GET /_matrix/client/v3/rooms/{roomId}/messages
func (a *API) messages(c *gin.Context) {
	roomID, ok := roomParam(c)
	if !ok {
		return
	}
	user := httpx.PrincipalOf(c).UserID
	// Who may not read the room gets 403 whatever the parameters: their
	// errors are named only to readers (the order of Synapse and the
	// conformance suites). The check costs only requests that fail.
	bad := func(err error) {
		if rerr := a.rooms.CheckReadable(c.Request.Context(), roomID, user); rerr != nil {
			err = rerr
		}
		httpx.Fail(c, err)
	}
	dir := c.DefaultQuery("dir", "")
	if dir != "b" && dir != "f" {
		bad(types.InvalidParam("dir must be b or f"))
		return
	}
	limit, err := parseQueryLimit(c)
	if err != nil {
		bad(err)
		return
	}
	filter, err := parseQueryFilter(c)
	if err != nil {
		bad(err)
		return
	}
	if filter != nil && filter.Limit > 0 && limit == 0 {
		limit = filter.Limit
	}
	page, err := a.rooms.Messages(c.Request.Context(), &rooms.MessagesRequest{RoomID: roomID,
		User: user, Device: httpx.PrincipalOf(c).DeviceID, From: c.Query("from"), To: c.Query("to"),
		Backwards: dir == "b", Limit: limit, Filter: filter})
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	httpx.OK(c, page)
}

// GET /_matrix/client/v3/rooms/{roomId}/context/{eventId}
func (a *API) eventContext(c *gin.Context) {
	roomID, ok := roomParam(c)
	if !ok {
		return
	}
	limit, ok := queryLimit(c)
	if !ok {
		return
	}
	filter, ok := queryFilter(c)
	if !ok {
		return
	}
	if c.Query("limit") == "" {
		limit = 10 // the spec's default; an explicit 0 asks for the event alone
	}
	res, err := a.rooms.Context(c.Request.Context(), roomID, httpx.PrincipalOf(c).UserID,
		id.EventID(c.Param("eventId")), limit, filter)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	httpx.OK(c, res)
}

// GET /_matrix/client/v3/rooms/{roomId}/event/{eventId}
func (a *API) getEvent(c *gin.Context) {
	roomID, ok := roomParam(c)
	if !ok {
		return
	}
	p := httpx.PrincipalOf(c)
	ev, err := a.rooms.EventForDevice(c.Request.Context(), roomID, p.UserID, p.DeviceID, id.EventID(c.Param("eventId")))
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	httpx.OK(c, ev)
}

// tsParam reads the ts query parameter (the timestamp an appservice asks
// for, in milliseconds): 0 when absent, -1 when it is not a positive
// integer. bridging.Send decides whether it counts.
func tsParam(c *gin.Context) int64 {
	raw := c.Query("ts")
	if raw == "" {
		return 0
	}
	ts, err := strconv.ParseInt(raw, 10, 64)
	if err != nil || ts <= 0 {
		return -1
	}
	return ts
}
