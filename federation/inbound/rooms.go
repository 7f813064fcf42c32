package inbound

// The room endpoints of the federation API: joins (make_join, send_join
// v1 and v2) and reads (event, state, state_ids, event_auth, backfill,
// get_missing_events). Each is thin: decode, one call to core/rooms,
// render; core/rooms decides whether the asking server may see the room.

import (
	"context"
	"encoding/json/jsontext"
	"encoding/json/v2"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"
	"maunium.net/go/mautrix/federation"
	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/core/httpx"
	"github.com/tributary-hs/tributary/core/rooms"
	"github.com/tributary-hs/tributary/core/types"
)

// Rooms is what the federation API needs of the room pipeline
// (core/rooms.Service implements it).
type Rooms interface {
	Intake(ctx context.Context, origin string, raw []byte) (*rooms.IntakeResult, error)
	IntakeBatch(ctx context.Context, origin string, raws [][]byte) []rooms.IntakeOutcome
	IntakeFilling(ctx context.Context, origin string, raw []byte) (*rooms.IntakeResult, error)
	MakeJoin(ctx context.Context, roomID id.RoomID, user id.UserID, versions []id.RoomVersion) (id.RoomVersion, jsontext.Value, error)
	SendJoin(ctx context.Context, origin string, roomID id.RoomID, eventID id.EventID, raw []byte, omitMembers bool) (*rooms.JoinedRoom, error)
	MakeLeave(ctx context.Context, roomID id.RoomID, user id.UserID) (id.RoomVersion, jsontext.Value, error)
	SendLeave(ctx context.Context, origin string, roomID id.RoomID, eventID id.EventID, raw []byte) error
	MakeKnock(ctx context.Context, roomID id.RoomID, user id.UserID, versions []id.RoomVersion) (id.RoomVersion, jsontext.Value, error)
	SendKnock(ctx context.Context, origin string, roomID id.RoomID, eventID id.EventID, raw []byte) ([]jsontext.Value, error)
	ReceiveInvite(ctx context.Context, origin string, roomID id.RoomID, eventID id.EventID, rv id.RoomVersion, raw []byte,
		stripped []jsontext.Value) (jsontext.Value, error)
	FederationEvent(ctx context.Context, server string, eventID id.EventID) (jsontext.Value, error)
	StateIDsAt(ctx context.Context, server string, roomID id.RoomID, eventID id.EventID) ([]id.EventID, []id.EventID, error)
	StateAtEvent(ctx context.Context, server string, roomID id.RoomID, eventID id.EventID) ([]jsontext.Value, []jsontext.Value, error)
	EventAuthChain(ctx context.Context, server string, roomID id.RoomID, eventID id.EventID) ([]jsontext.Value, error)
	Backfill(ctx context.Context, server string, roomID id.RoomID, from []id.EventID, limit int) ([]jsontext.Value, error)
	MissingEvents(ctx context.Context, server string, roomID id.RoomID, earliest, latest []id.EventID, limit int,
		minDepth int64) ([]jsontext.Value, error)
	ForwardExtremities(ctx context.Context, roomID id.RoomID) ([]id.EventID, error)
	ServerTimestampToEvent(ctx context.Context, server string, roomID id.RoomID, ts int64, forwards bool) (id.EventID, int64, error)
	ServerAllowed(ctx context.Context, roomID id.RoomID, server string) error
	PDUEventID(ctx context.Context, raw []byte) (id.EventID, error)
	GetAlias(ctx context.Context, alias id.RoomAlias) (id.RoomID, []string, error)
}

var _ Rooms = (*rooms.Service)(nil)

func origin(c *gin.Context) string { return federation.OriginServerName(c.Request.Context()) }

// allowed applies the room's server ACL to the requesting server (the
// endpoints the spec lists as protected); false when it answered 403.
func (a *API) allowed(c *gin.Context) bool {
	if err := a.opts.Rooms.ServerAllowed(c.Request.Context(), id.RoomID(c.Param("roomID")), origin(c)); err != nil {
		httpx.Fail(c, err)
		return false
	}
	return true
}

// pdus answers with a transaction-shaped body: origin, time and PDUs.
func (a *API) pdus(c *gin.Context, evs []jsontext.Value) {
	if evs == nil {
		evs = []jsontext.Value{}
	}
	httpx.OK(c, gin.H{"origin": a.opts.ServerName, "origin_server_ts": time.Now().UnixMilli(), "pdus": evs})
}

// GET /_matrix/federation/v1/query/directory?room_alias=…
func (a *API) queryDirectory(c *gin.Context) {
	alias := id.RoomAlias(c.Query("room_alias"))
	if alias == "" {
		httpx.Fail(c, types.MissingParam("room_alias is required"))
		return
	}
	if _, _, server := id.ParseCommonIdentifier(alias); server != a.opts.ServerName || alias[0] != '#' {
		httpx.Fail(c, types.InvalidParam("%s is not an alias of this server", alias))
		return
	}
	roomID, servers, err := a.opts.Rooms.GetAlias(c.Request.Context(), alias)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	httpx.OK(c, gin.H{"room_id": roomID, "servers": servers})
}

// GET /_matrix/federation/v1/make_join/{roomId}/{userId}?ver=…
func (a *API) makeJoin(c *gin.Context) {
	if !a.allowed(c) {
		return
	}
	user, ok := ownUser(c, "join")
	if !ok {
		return
	}
	versions := queryVersions(c)
	if len(versions) == 0 {
		versions = []id.RoomVersion{"1"} // the spec's default
	}
	rv, tmpl, err := a.opts.Rooms.MakeJoin(c.Request.Context(), id.RoomID(c.Param("roomID")), user, versions)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	httpx.OK(c, gin.H{"room_version": rv, "event": tmpl})
}

// sendJoin runs PUT /send_join/{roomId}/{eventId} for both versions.
func (a *API) sendJoin(c *gin.Context, omit bool) (*rooms.JoinedRoom, bool) {
	if !a.allowed(c) {
		return nil, false
	}
	raw, err := readJSONObject(c)
	if err != nil {
		httpx.Fail(c, err)
		return nil, false
	}
	res, err := a.opts.Rooms.SendJoin(c.Request.Context(), origin(c), id.RoomID(c.Param("roomID")),
		id.EventID(c.Param("eventID")), raw, omit)
	if err != nil {
		httpx.Fail(c, err)
		return nil, false
	}
	return res, true
}

// PUT /_matrix/federation/v2/send_join/{roomId}/{eventId}?omit_members=…
func (a *API) sendJoinV2(c *gin.Context) {
	res, ok := a.sendJoin(c, c.Query("omit_members") == "true")
	if !ok {
		return
	}
	out := gin.H{"origin": a.opts.ServerName, "state": res.State, "auth_chain": res.AuthChain}
	if res.Event != nil {
		out["event"] = res.Event
	}
	if res.MembersOmitted {
		out["members_omitted"] = true
		out["servers_in_room"] = res.ServersInRoom
	}
	httpx.OK(c, out)
}

// PUT /_matrix/federation/v1/send_join/{roomId}/{eventId}
// (deprecated; answers [200, {…}], as the v1 API did)
func (a *API) sendJoinV1(c *gin.Context) {
	res, ok := a.sendJoin(c, false)
	if !ok {
		return
	}
	out := gin.H{"origin": a.opts.ServerName, "state": res.State, "auth_chain": res.AuthChain}
	if res.Event != nil {
		out["event"] = res.Event
	}
	httpx.OK(c, []any{http.StatusOK, out})
}

// ownUser is the path's userId when it is a user of the requesting
// server; otherwise it answers 403.
func ownUser(c *gin.Context, what string) (id.UserID, bool) {
	user := id.UserID(c.Param("userID"))
	if _, hs, err := user.Parse(); err != nil || hs != origin(c) {
		httpx.Fail(c, types.Forbidden("%s may only %s its own users", origin(c), what))
		return "", false
	}
	return user, true
}

// GET /_matrix/federation/v1/make_leave/{roomId}/{userId}
func (a *API) makeLeave(c *gin.Context) {
	if !a.allowed(c) {
		return
	}
	user, ok := ownUser(c, "make leave")
	if !ok {
		return
	}
	rv, tmpl, err := a.opts.Rooms.MakeLeave(c.Request.Context(), id.RoomID(c.Param("roomID")), user)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	httpx.OK(c, gin.H{"room_version": rv, "event": tmpl})
}

// sendLeave runs PUT /send_leave/{roomId}/{eventId} for both versions.
func (a *API) sendLeave(c *gin.Context) bool {
	if !a.allowed(c) {
		return false
	}
	raw, err := readJSONObject(c)
	if err != nil {
		httpx.Fail(c, err)
		return false
	}
	if err := a.opts.Rooms.SendLeave(c.Request.Context(), origin(c), id.RoomID(c.Param("roomID")),
		id.EventID(c.Param("eventID")), raw); err != nil {
		httpx.Fail(c, err)
		return false
	}
	return true
}

// PUT /_matrix/federation/v2/send_leave/{roomId}/{eventId}
func (a *API) sendLeaveV2(c *gin.Context) {
	if a.sendLeave(c) {
		httpx.OK(c, gin.H{})
	}
}

// PUT /_matrix/federation/v1/send_leave/{roomId}/{eventId}
// (deprecated; answers [200, {}])
func (a *API) sendLeaveV1(c *gin.Context) {
	if a.sendLeave(c) {
		httpx.OK(c, []any{http.StatusOK, gin.H{}})
	}
}

// PUT /_matrix/federation/v2/invite/{roomId}/{eventId}
func (a *API) inviteV2(c *gin.Context) {
	if !a.allowed(c) {
		return
	}
	var req struct {
		Event           jsontext.Value   `json:"event"`
		InviteRoomState []jsontext.Value `json:"invite_room_state"`
		RoomVersion     id.RoomVersion   `json:"room_version"`
	}
	if err := httpx.DecodeJSON(c, &req); err != nil {
		httpx.Fail(c, err)
		return
	}
	if req.RoomVersion == "" || len(req.Event) == 0 {
		httpx.Fail(c, types.MissingParam("event and room_version are required"))
		return
	}
	if req.Event.Kind() != '{' {
		httpx.Fail(c, types.BadJSON("event is not an object"))
		return
	}
	ev, err := a.opts.Rooms.ReceiveInvite(c.Request.Context(), origin(c), id.RoomID(c.Param("roomID")),
		id.EventID(c.Param("eventID")), req.RoomVersion, req.Event, req.InviteRoomState)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	httpx.OK(c, gin.H{"event": ev})
}

// PUT /_matrix/federation/v1/invite/{roomId}/{eventId}
// (deprecated; rooms v1 and v2; the body is the event, with the stripped
// state in unsigned.invite_room_state; answers [200, {"event": …}])
func (a *API) inviteV1(c *gin.Context) {
	if !a.allowed(c) {
		return
	}
	raw, err := readJSONObject(c)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	var body struct {
		Unsigned struct {
			InviteRoomState []jsontext.Value `json:"invite_room_state"`
		} `json:"unsigned"`
	}
	if err := json.Unmarshal(raw, &body); err != nil {
		httpx.Fail(c, types.BadJSON("%v", err))
		return
	}
	ev, err := a.opts.Rooms.ReceiveInvite(c.Request.Context(), origin(c), id.RoomID(c.Param("roomID")),
		id.EventID(c.Param("eventID")), "", raw, body.Unsigned.InviteRoomState)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	httpx.OK(c, []any{http.StatusOK, gin.H{"event": ev}})
}

func queryVersions(c *gin.Context) []id.RoomVersion {
	versions := []id.RoomVersion{}
	for _, v := range c.QueryArray("ver") {
		versions = append(versions, id.RoomVersion(v))
	}
	return versions
}

// GET /_matrix/federation/v1/make_knock/{roomId}/{userId}?ver=…
func (a *API) makeKnock(c *gin.Context) {
	if !a.allowed(c) {
		return
	}
	user, ok := ownUser(c, "knock")
	if !ok {
		return
	}
	versions := queryVersions(c)
	if len(versions) == 0 {
		httpx.Fail(c, types.MissingParam("ver is required"))
		return
	}
	rv, tmpl, err := a.opts.Rooms.MakeKnock(c.Request.Context(), id.RoomID(c.Param("roomID")), user, versions)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	httpx.OK(c, gin.H{"room_version": rv, "event": tmpl})
}

// PUT /_matrix/federation/v1/send_knock/{roomId}/{eventId}
func (a *API) sendKnock(c *gin.Context) {
	if !a.allowed(c) {
		return
	}
	raw, err := readJSONObject(c)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	st, err := a.opts.Rooms.SendKnock(c.Request.Context(), origin(c), id.RoomID(c.Param("roomID")),
		id.EventID(c.Param("eventID")), raw)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	httpx.OK(c, gin.H{"knock_room_state": st})
}

// GET /_matrix/federation/v1/event/{eventId}
func (a *API) event(c *gin.Context) {
	ev, err := a.opts.Rooms.FederationEvent(c.Request.Context(), origin(c), id.EventID(c.Param("eventID")))
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	a.pdus(c, []jsontext.Value{ev})
}

func eventIDQuery(c *gin.Context) (id.EventID, bool) {
	eid := c.Query("event_id")
	if eid == "" {
		httpx.Fail(c, types.MissingParam("event_id is required"))
		return "", false
	}
	return id.EventID(eid), true
}

// GET /_matrix/federation/v1/state/{roomId}?event_id=…
func (a *API) state(c *gin.Context) {
	if !a.allowed(c) {
		return
	}
	eid, ok := eventIDQuery(c)
	if !ok {
		return
	}
	st, chain, err := a.opts.Rooms.StateAtEvent(c.Request.Context(), origin(c), id.RoomID(c.Param("roomID")), eid)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	httpx.OK(c, gin.H{"pdus": nonNil(st), "auth_chain": nonNil(chain)})
}

// GET /_matrix/federation/v1/state_ids/{roomId}?event_id=…
func (a *API) stateIDs(c *gin.Context) {
	if !a.allowed(c) {
		return
	}
	eid, ok := eventIDQuery(c)
	if !ok {
		return
	}
	st, chain, err := a.opts.Rooms.StateIDsAt(c.Request.Context(), origin(c), id.RoomID(c.Param("roomID")), eid)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	httpx.OK(c, gin.H{"pdu_ids": nonNil(st), "auth_chain_ids": nonNil(chain)})
}

// GET /_matrix/federation/v1/event_auth/{roomId}/{eventId}
func (a *API) eventAuth(c *gin.Context) {
	if !a.allowed(c) {
		return
	}
	chain, err := a.opts.Rooms.EventAuthChain(c.Request.Context(), origin(c), id.RoomID(c.Param("roomID")),
		id.EventID(c.Param("eventID")))
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	httpx.OK(c, gin.H{"auth_chain": nonNil(chain)})
}

// GET /_matrix/federation/v1/backfill/{roomId}?v=…&limit=…
func (a *API) backfill(c *gin.Context) {
	if !a.allowed(c) {
		return
	}
	var from []id.EventID
	for _, v := range c.QueryArray("v") {
		from = append(from, id.EventID(v))
	}
	if len(from) == 0 {
		httpx.Fail(c, types.MissingParam("v is required"))
		return
	}
	limit, err := strconv.Atoi(c.Query("limit"))
	if err != nil || limit <= 0 {
		httpx.Fail(c, types.InvalidParam("limit must be a positive integer"))
		return
	}
	evs, err := a.opts.Rooms.Backfill(c.Request.Context(), origin(c), id.RoomID(c.Param("roomID")), from, limit)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	a.pdus(c, evs)
}

// GET /_matrix/federation/v1/timestamp_to_event/{roomId}?ts=…&dir=…
func (a *API) timestampToEvent(c *gin.Context) {
	if !a.allowed(c) {
		return
	}
	tsArg, ok := c.GetQuery("ts")
	if !ok {
		httpx.Fail(c, types.MissingParam("ts is required"))
		return
	}
	ts, err := strconv.ParseInt(tsArg, 10, 64)
	if err != nil {
		httpx.Fail(c, types.InvalidParam("ts must be a timestamp in milliseconds"))
		return
	}
	dir := c.Query("dir")
	if dir != "f" && dir != "b" {
		httpx.Fail(c, types.InvalidParam("dir must be f or b"))
		return
	}
	eid, at, err := a.opts.Rooms.ServerTimestampToEvent(c.Request.Context(), origin(c), id.RoomID(c.Param("roomID")), ts, dir == "f")
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	httpx.OK(c, gin.H{"event_id": eid, "origin_server_ts": at})
}

// POST /_matrix/federation/v1/get_missing_events/{roomId}
func (a *API) getMissingEvents(c *gin.Context) {
	if !a.allowed(c) {
		return
	}
	var req struct {
		Earliest []id.EventID `json:"earliest_events"`
		Latest   []id.EventID `json:"latest_events"`
		Limit    int          `json:"limit"`
		MinDepth int64        `json:"min_depth"`
	}
	if err := httpx.DecodeJSON(c, &req); err != nil {
		httpx.Fail(c, err)
		return
	}
	if len(req.Latest) == 0 {
		httpx.Fail(c, types.MissingParam("latest_events is required"))
		return
	}
	evs, err := a.opts.Rooms.MissingEvents(c.Request.Context(), origin(c), id.RoomID(c.Param("roomID")),
		req.Earliest, req.Latest, req.Limit, req.MinDepth)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	httpx.OK(c, gin.H{"events": nonNil(evs)})
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
