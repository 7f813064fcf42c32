package admin

import (
	"cmp"
	"context"
	"net/http"
	"slices"
	"strings"

	"github.com/gin-gonic/gin"
	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/core/httpx"
	"github.com/tributary-hs/tributary/core/rooms"
	"github.com/tributary-hs/tributary/core/types"
)

// RoomReader is what the room endpoints read (core/rooms.Reader).
type RoomReader interface {
	ListRoomIDs(ctx context.Context) ([]id.RoomID, error)
	AdminRoom(ctx context.Context, roomID id.RoomID) (*rooms.AdminRoom, error)
	AdminMembers(ctx context.Context, roomID id.RoomID) ([]id.UserID, error)
	AdminState(ctx context.Context, roomID id.RoomID) ([]*rooms.ClientEvent, error)
}

// roomParam is the {roomId} path parameter.
func roomParam(c *gin.Context) (id.RoomID, bool) {
	r := id.RoomID(c.Param("roomId"))
	if err := checkRoomID(r); err != nil {
		httpx.Fail(c, err)
		return "", false
	}
	return r, true
}

func (a *API) roomReader(c *gin.Context) (RoomReader, bool) {
	if a.opts.RoomReader == nil {
		httpx.Fail(c, types.NewError(http.StatusNotFound, types.CodeUnrecognized, "Unrecognized request"))
		return nil, false
	}
	return a.opts.RoomReader, true
}

// GET /_synapse/admin/v1/rooms
func (a *API) listRooms(c *gin.Context) {
	q := RoomQuery{OrderBy: c.DefaultQuery("order_by", "name"), Dir: c.DefaultQuery("dir", "f"), Search: c.Query("search_term")}
	var ok bool
	if q.From, ok = queryInt(c, "from", 0); !ok {
		return
	}
	if q.Limit, ok = queryInt(c, "limit", 100); !ok {
		return
	}
	page, err := a.ListRooms(c.Request.Context(), q)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	httpx.OK(c, page)
}

// RoomQuery selects and orders the rooms ListRooms lists.
type RoomQuery struct {
	From, Limit int
	// Search is a substring (any case) of the room's name, ID or canonical alias.
	Search string
	// OrderBy is one of Synapse's order_by values ("" = name); Dir "f" or "b".
	OrderBy, Dir string
}

// RoomPage is one page of rooms, as GET /_synapse/admin/v1/rooms answers.
type RoomPage struct {
	Rooms      []*rooms.AdminRoom `json:"rooms"`
	Offset     int                `json:"offset"`
	TotalRooms int                `json:"total_rooms"`
	NextBatch  *int               `json:"next_batch,omitempty"`
	PrevBatch  *int               `json:"prev_batch,omitempty"`
}

// ListRooms lists the rooms this server knows (the HTTP API and the CLI).
func (a *API) ListRooms(ctx context.Context, q RoomQuery) (*RoomPage, error) {
	rr := a.opts.RoomReader
	if rr == nil {
		return nil, unrecognized()
	}
	if q.From < 0 || q.Limit < 0 {
		return nil, types.InvalidParam("from and limit must be non-negative")
	}
	from, limit, orderBy, dir := q.From, q.Limit, cmp.Or(q.OrderBy, "name"), cmp.Or(q.Dir, "f")
	str := func(p *string) string {
		if p == nil {
			return ""
		}
		return *p
	}
	b2i := func(b bool) int {
		if b {
			return 1
		}
		return 0
	}
	keys := map[string]func(x, y *rooms.AdminRoom) int{
		"name": func(x, y *rooms.AdminRoom) int { return cmp.Compare(str(x.Name), str(y.Name)) },
		"canonical_alias": func(x, y *rooms.AdminRoom) int {
			var ax, ay string
			if x.CanonicalAlias != nil {
				ax = string(*x.CanonicalAlias)
			}
			if y.CanonicalAlias != nil {
				ay = string(*y.CanonicalAlias)
			}
			return cmp.Compare(ax, ay)
		},
		"joined_members":       func(x, y *rooms.AdminRoom) int { return cmp.Compare(x.JoinedMembers, y.JoinedMembers) },
		"joined_local_members": func(x, y *rooms.AdminRoom) int { return cmp.Compare(x.JoinedLocalMembers, y.JoinedLocalMembers) },
		"version":              func(x, y *rooms.AdminRoom) int { return cmp.Compare(x.Version, y.Version) },
		"creator":              func(x, y *rooms.AdminRoom) int { return cmp.Compare(x.Creator, y.Creator) },
		"encryption":           func(x, y *rooms.AdminRoom) int { return cmp.Compare(str(x.Encryption), str(y.Encryption)) },
		"federatable":          func(x, y *rooms.AdminRoom) int { return cmp.Compare(b2i(x.Federatable), b2i(y.Federatable)) },
		"public":               func(x, y *rooms.AdminRoom) int { return cmp.Compare(b2i(x.Public), b2i(y.Public)) },
		"join_rules":           func(x, y *rooms.AdminRoom) int { return cmp.Compare(str(x.JoinRules), str(y.JoinRules)) },
		"guest_access":         func(x, y *rooms.AdminRoom) int { return cmp.Compare(str(x.GuestAccess), str(y.GuestAccess)) },
		"history_visibility": func(x, y *rooms.AdminRoom) int {
			return cmp.Compare(str(x.HistoryVisibility), str(y.HistoryVisibility))
		},
		"state_events": func(x, y *rooms.AdminRoom) int { return cmp.Compare(x.StateEvents, y.StateEvents) },
	}
	key, known := keys[orderBy]
	if !known {
		return nil, types.InvalidParam("Unknown value for order_by: %s", orderBy)
	}
	if dir != "f" && dir != "b" {
		return nil, types.InvalidParam("Unknown direction: %s", dir)
	}
	search := strings.ToLower(q.Search)
	ids, err := rr.ListRoomIDs(ctx)
	if err != nil {
		return nil, err
	}
	var list []*rooms.AdminRoom
	for _, r := range ids {
		info, err := rr.AdminRoom(ctx, r)
		if err != nil {
			return nil, err
		}
		if search != "" && !strings.Contains(strings.ToLower(str(info.Name)), search) &&
			!strings.Contains(strings.ToLower(string(r)), search) &&
			(info.CanonicalAlias == nil || !strings.Contains(strings.ToLower(string(*info.CanonicalAlias)), search)) {
			continue
		}
		list = append(list, info)
	}
	slices.SortStableFunc(list, func(x, y *rooms.AdminRoom) int {
		r := cmp.Or(key(x, y), cmp.Compare(x.RoomID, y.RoomID))
		if dir == "b" {
			r = -r
		}
		return r
	})
	total := len(list)
	start, end := min(from, total), total
	if limit < total-from { // no overflow with a huge limit
		end = from + limit
	}
	page := &RoomPage{Rooms: list[start:max(start, end)], Offset: from, TotalRooms: total}
	if page.Rooms == nil {
		page.Rooms = []*rooms.AdminRoom{}
	}
	if end < total {
		page.NextBatch = &end
	}
	if from > 0 {
		prev := max(from-limit, 0)
		page.PrevBatch = &prev
	}
	return page, nil
}

// GET /_synapse/admin/v1/rooms/{roomId}
func (a *API) getRoom(c *gin.Context) {
	rr, ok := a.roomReader(c)
	if !ok {
		return
	}
	roomID, ok := roomParam(c)
	if !ok {
		return
	}
	info, err := rr.AdminRoom(c.Request.Context(), roomID)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	httpx.OK(c, info)
}

// GET /_synapse/admin/v1/rooms/{roomId}/members
func (a *API) roomMembers(c *gin.Context) {
	rr, ok := a.roomReader(c)
	if !ok {
		return
	}
	roomID, ok := roomParam(c)
	if !ok {
		return
	}
	members, err := rr.AdminMembers(c.Request.Context(), roomID)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	httpx.OK(c, gin.H{"members": members, "total": len(members)})
}

// GET /_synapse/admin/v1/rooms/{roomId}/state
func (a *API) roomState(c *gin.Context) {
	rr, ok := a.roomReader(c)
	if !ok {
		return
	}
	roomID, ok := roomParam(c)
	if !ok {
		return
	}
	state, err := rr.AdminState(c.Request.Context(), roomID)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	if state == nil {
		state = []*rooms.ClientEvent{}
	}
	httpx.OK(c, gin.H{"state": state})
}

// RoomWriter is what the admin API changes in rooms (core/rooms.Service).
type RoomWriter interface {
	ResolveRoom(ctx context.Context, roomIDOrAlias string) (id.RoomID, error)
	ChangeMembership(ctx context.Context, req *rooms.MembershipRequest) (id.EventID, error)
	SetRoomBlocked(ctx context.Context, roomID id.RoomID, blocked bool, admin id.UserID) error
	RoomBlockedBy(ctx context.Context, roomID id.RoomID) (id.UserID, error)
}

func (a *API) roomWriter(c *gin.Context) (RoomWriter, bool) {
	if a.opts.RoomWriter == nil {
		httpx.Fail(c, types.NewError(http.StatusNotFound, types.CodeUnrecognized, "Unrecognized request"))
		return nil, false
	}
	return a.opts.RoomWriter, true
}

// GET /_synapse/admin/v1/rooms/{roomId}/block
func (a *API) getBlock(c *gin.Context) {
	rw, ok := a.roomWriter(c)
	if !ok {
		return
	}
	roomID, ok := roomParam(c)
	if !ok {
		return
	}
	by, err := rw.RoomBlockedBy(c.Request.Context(), roomID)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	if by == "" {
		httpx.OK(c, gin.H{"block": false})
		return
	}
	httpx.OK(c, gin.H{"block": true, "user_id": by})
}

// PUT /_synapse/admin/v1/rooms/{roomId}/block {"block": bool}
func (a *API) putBlock(c *gin.Context) {
	rw, ok := a.roomWriter(c)
	if !ok {
		return
	}
	roomID, ok := roomParam(c)
	if !ok {
		return
	}
	var body struct {
		Block *bool `json:"block"`
	}
	if err := httpx.DecodeJSON(c, &body); err != nil {
		httpx.Fail(c, err)
		return
	}
	if body.Block == nil {
		httpx.Fail(c, types.MissingParam("Missing param block"))
		return
	}
	if err := rw.SetRoomBlocked(c.Request.Context(), roomID, *body.Block, httpx.PrincipalOf(c).UserID); err != nil {
		httpx.Fail(c, err)
		return
	}
	a.audit(c, "block room", "room", roomID, "block", *body.Block)
	httpx.OK(c, gin.H{"block": *body.Block})
}

// POST /_synapse/admin/v1/join/{roomIdOrAlias} {"user_id": …}: a local
// user joins a room; one they may not join alone (not public) they are
// first invited to by the admin, who must be able to invite there.
func (a *API) joinUser(c *gin.Context) {
	rw, ok := a.roomWriter(c)
	if !ok {
		return
	}
	ctx := c.Request.Context()
	var body struct {
		UserID id.UserID `json:"user_id"`
	}
	if err := httpx.DecodeJSON(c, &body); err != nil {
		httpx.Fail(c, err)
		return
	}
	if body.UserID == "" {
		httpx.Fail(c, types.MissingParam("Missing param user_id"))
		return
	}
	if body.UserID.Homeserver() != a.users.ServerName() {
		httpx.Fail(c, types.InvalidParam("This endpoint can only be used with local users"))
		return
	}
	if _, err := a.users.GetAccount(ctx, body.UserID); err != nil {
		httpx.Fail(c, err)
		return
	}
	roomID, err := rw.ResolveRoom(ctx, c.Param("roomIdOrAlias"))
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	join := &rooms.MembershipRequest{RoomID: roomID, Sender: body.UserID, Target: body.UserID, Membership: "join"}
	if _, err := rw.ChangeMembership(ctx, join); err != nil {
		// Not allowed alone: the admin invites, then the user joins.
		admin := httpx.PrincipalOf(c).UserID
		if _, ierr := rw.ChangeMembership(ctx, &rooms.MembershipRequest{RoomID: roomID, Sender: admin, Target: body.UserID,
			Membership: "invite"}); ierr != nil {
			httpx.Fail(c, err)
			return
		}
		if _, err := rw.ChangeMembership(ctx, join); err != nil {
			httpx.Fail(c, err)
			return
		}
	}
	a.audit(c, "join user to room", "user", body.UserID, "room", roomID)
	httpx.OK(c, gin.H{"room_id": roomID})
}

// ResolveRoom is the room a room ID or alias names (the CLI takes either).
func (a *API) ResolveRoom(ctx context.Context, roomIDOrAlias string) (id.RoomID, error) {
	if a.opts.RoomWriter == nil {
		return "", unrecognized()
	}
	if !strings.HasPrefix(roomIDOrAlias, "!") && !strings.HasPrefix(roomIDOrAlias, "#") {
		return "", types.InvalidParam("%q is neither a room ID (!…) nor an alias (#…)", roomIDOrAlias)
	}
	return a.opts.RoomWriter.ResolveRoom(ctx, roomIDOrAlias)
}
