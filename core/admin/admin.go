// Package admin serves the admin API under Synapse-compatible paths
// (/_synapse/admin/...), so existing tools such as register_new_matrix_user
// work. It imports core services and core/httpx, never storage.
package admin

import (
	"context"
	"encoding/json"
	"log/slog"

	"github.com/gin-gonic/gin"
	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/core/httpx"
	"github.com/tributary-hs/tributary/core/types"
	"github.com/tributary-hs/tributary/core/users"
)

// API serves the admin endpoints.
type API struct {
	users    *users.Service
	register *httpx.Limiter
	notices  *Notices
	rooms    Rooms
	opts     Options
	// deletions are the asynchronous room deletions of the last day.
	deletions deletions
	// destinations serves the federation destinations (nil: federation is off).
	destinations Destinations
	// tasks are the asynchronous history purges and redactions of the last day.
	tasks      tasks
	background backgroundUpdates
}

// Rooms is what the admin API asks of core/rooms.
type Rooms interface {
	JoinedRooms(ctx context.Context, user id.UserID) ([]id.RoomID, error)
	// ProfileChanged carries a user's new display name or avatar into
	// their rooms.
	ProfileChanged(ctx context.Context, user id.UserID) error
}

// Options are the admin API's settings.
type Options struct {
	// Rooms (nil: the room endpoints answer M_UNRECOGNIZED).
	Rooms Rooms
	// RoomReader serves the room endpoints (nil: M_UNRECOGNIZED).
	RoomReader RoomReader
	// Reports serves the event reports (nil: M_UNRECOGNIZED).
	Reports Reports
	// RoomWriter serves block and join (nil: M_UNRECOGNIZED).
	RoomWriter RoomWriter
	// RoomDeleter serves room deletion (nil: M_UNRECOGNIZED).
	RoomDeleter RoomDeleter
	// Media serves media administration (nil: M_UNRECOGNIZED).
	Media Media
	// Destinations serves the federation destinations (nil: federation is off).
	Destinations Destinations
	// History serves history purges and redactions of a user's events
	// (nil: M_UNRECOGNIZED).
	History History
	// RoomAdmin serves room messages, context, timestamp lookups, make
	// room admin, forward extremities and room media (nil: M_UNRECOGNIZED).
	RoomAdmin RoomAdmin
	// Version is the server version /server_version reports.
	Version string
	// Logger records every admin action with the admin's user ID.
	Logger *slog.Logger
}

// New builds the handlers; register rate-limits shared-secret registration
// per IP; notices sends server notices (nil: off).
func New(u *users.Service, register *httpx.Limiter, notices *Notices, opts Options) *API {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return &API{users: u, register: register, notices: notices, rooms: opts.Rooms, opts: opts, destinations: opts.Destinations}
}

// audit logs an admin action: who did what to whom.
func (a *API) audit(c *gin.Context, action string, args ...any) {
	a.auditAs(c.Request.Context(), actorOf(c), action, args...)
}

// Register adds the admin routes to r.
func (a *API) Register(r gin.IRouter) {
	g := r.Group("/_synapse/admin/v1")
	g.GET("/register", a.nonce)
	g.POST("/register", a.sharedSecretRegister)
	adm := g.Group("", httpx.RequireAuth(a.users), a.requireAdmin)
	adm.GET("/registration_tokens", a.listTokens)
	adm.POST("/registration_tokens/new", a.newToken)
	adm.GET("/registration_tokens/:token", a.getToken)
	adm.PUT("/registration_tokens/:token", a.updateToken)
	adm.DELETE("/registration_tokens/:token", a.deleteToken)
	adm.POST("/send_server_notice", a.sendServerNotice)
	adm.PUT("/send_server_notice/:txnId", a.sendServerNotice)
	adm.GET("/server_version", a.serverVersion)
	adm.GET("/username_available", a.usernameAvailable)
	adm.POST("/deactivate/:userId", a.deactivate)
	adm.POST("/reset_password/:userId", a.resetPassword)
	adm.GET("/whois/:userId", a.whois)
	adm.PUT("/suspend/:userId", a.suspend)
	adm.GET("/users/:userId/admin", a.getAdmin)
	adm.PUT("/users/:userId/admin", a.putAdmin)
	adm.GET("/users/:userId/joined_rooms", a.joinedRooms)
	adm.POST("/users/:userId/login", a.loginAs)
	adm.GET("/rooms", a.listRooms)
	adm.GET("/rooms/:roomId", a.getRoom)
	adm.GET("/rooms/:roomId/members", a.roomMembers)
	adm.GET("/rooms/:roomId/state", a.roomState)
	adm.GET("/rooms/:roomId/block", a.getBlock)
	adm.PUT("/rooms/:roomId/block", a.putBlock)
	adm.POST("/join/:roomIdOrAlias", a.joinUser)
	adm.DELETE("/rooms/:roomId", a.deleteRoomV1)
	adm.GET("/users/:userId/media", a.userMedia)
	adm.DELETE("/users/:userId/media", a.deleteUserMedia)
	adm.DELETE("/media/:serverName/:mediaId", a.deleteOneMedia)
	adm.POST("/media/delete", a.deleteOldMedia)
	adm.POST("/media/:serverName/delete", a.deleteOldMedia)
	adm.POST("/media/quarantine/:serverName/:mediaId", a.quarantineOne(true))
	adm.POST("/media/unquarantine/:serverName/:mediaId", a.quarantineOne(false))
	adm.POST("/user/:userId/media/quarantine", a.quarantineUserMedia)
	adm.POST("/media/protect/:mediaId", a.protect(true))
	adm.POST("/media/unprotect/:mediaId", a.protect(false))
	adm.GET("/statistics/users/media", a.mediaStatistics)
	adm.POST("/purge_history/:roomId", a.purgeHistory)
	adm.POST("/purge_history/:roomId/:eventId", a.purgeHistory)
	adm.GET("/purge_history_status/:purgeId", a.purgeHistoryStatus)
	adm.POST("/user/:userId/redact", a.redactUser)
	adm.GET("/user/redact_status/:redactId", a.redactStatus)
	adm.GET("/users/:userId/accountdata", a.userAccountData)
	adm.GET("/users/:userId/override_ratelimit", a.getRateOverride)
	adm.POST("/users/:userId/override_ratelimit", a.setRateOverride)
	adm.DELETE("/users/:userId/override_ratelimit", a.deleteRateOverride)
	adm.POST("/users/:userId/shadow_ban", a.shadowBan(true))
	adm.DELETE("/users/:userId/shadow_ban", a.shadowBan(false))
	adm.GET("/rooms/:roomId/messages", a.roomMessages)
	adm.GET("/rooms/:roomId/context/:eventId", a.roomContext)
	adm.GET("/rooms/:roomId/timestamp_to_event", a.roomTimestampToEvent)
	adm.POST("/rooms/:roomId/make_room_admin", a.makeRoomAdmin)
	adm.GET("/rooms/:roomId/forward_extremities", a.forwardExtremities)
	adm.DELETE("/rooms/:roomId/forward_extremities", a.deleteForwardExtremities)
	adm.GET("/room/:roomId/media", a.roomMedia)
	adm.POST("/room/:roomId/media/quarantine", a.quarantineRoomMedia)
	adm.POST("/quarantine_media/:roomId", a.quarantineRoomMedia)
	adm.POST("/purge_media_cache", a.purgeMediaCache)
	adm.GET("/background_updates/enabled", a.backgroundEnabled)
	adm.POST("/background_updates/enabled", a.setBackgroundEnabled)
	adm.GET("/background_updates/status", a.backgroundStatus)
	adm.GET("/event_reports", a.listReports)
	adm.GET("/event_reports/:reportId", a.getReport)
	adm.DELETE("/event_reports/:reportId", a.deleteReport)
	for _, v := range []string{"/_synapse/admin/v2", "/_synapse/admin/v3"} {
		u := r.Group(v, httpx.RequireAuth(a.users), a.requireAdmin)
		u.GET("/users", a.listUsers)
		if v == "/_synapse/admin/v3" {
			continue
		}
		u.DELETE("/rooms/:roomId", a.deleteRoomV2)
		u.GET("/rooms/:roomId/delete_status", a.roomDeleteStatus)
		u.GET("/rooms/delete_status/:deleteId", a.deleteStatus)
		u.GET("/users/:userId", a.getUser)
		u.PUT("/users/:userId", a.putUser)
		u.GET("/users/:userId/devices", a.listDevices)
		u.GET("/users/:userId/devices/:deviceId", a.getDevice)
		u.PUT("/users/:userId/devices/:deviceId", a.putDevice)
		u.DELETE("/users/:userId/devices/:deviceId", a.deleteDevice)
		u.POST("/users/:userId/delete_devices", a.deleteDevices)
	}
	a.registerDestinations(adm)
}

func (a *API) requireAdmin(c *gin.Context) {
	ok, err := a.users.IsAdmin(c.Request.Context(), httpx.PrincipalOf(c).UserID)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	if !ok {
		httpx.Fail(c, types.Forbidden("You are not a server admin"))
		return
	}
	c.Next()
}

// GET /_synapse/admin/v1/register
func (a *API) nonce(c *gin.Context) {
	if !a.users.SharedSecretEnabled() {
		httpx.Fail(c, types.NewError(400, types.CodeUnknown, "Shared secret registration is not enabled"))
		return
	}
	httpx.OK(c, gin.H{"nonce": a.users.NewNonce()})
}

// POST /_synapse/admin/v1/register
func (a *API) sharedSecretRegister(c *gin.Context) {
	var req users.SharedSecretRequest
	if err := httpx.DecodeJSON(c, &req); err != nil {
		httpx.Fail(c, err)
		return
	}
	if ok, wait := a.register.Allow(c.ClientIP()); !ok {
		httpx.Fail(c, types.LimitExceeded(wait))
		return
	}
	sess, err := a.users.RegisterWithSharedSecret(c.Request.Context(), &req, c.ClientIP())
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	httpx.OK(c, gin.H{"user_id": sess.UserID, "access_token": sess.AccessToken, "device_id": sess.DeviceID,
		"home_server": a.users.ServerName()})
}

func tokenJSON(t *users.RegistrationToken) gin.H {
	return gin.H{"token": t.Token, "uses_allowed": t.UsesAllowed, "pending": t.Pending,
		"completed": t.Completed, "expiry_time": t.ExpiryTime}
}

// GET /_synapse/admin/v1/registration_tokens
func (a *API) listTokens(c *gin.Context) {
	var valid *bool
	switch c.Query("valid") {
	case "":
	case "true":
		v := true
		valid = &v
	case "false":
		v := false
		valid = &v
	default:
		httpx.Fail(c, types.InvalidParam("valid must be true or false"))
		return
	}
	toks, err := a.users.ListRegistrationTokens(c.Request.Context(), valid)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	out := make([]gin.H, len(toks))
	for i, t := range toks {
		out[i] = tokenJSON(t)
	}
	httpx.OK(c, gin.H{"registration_tokens": out})
}

// POST /_synapse/admin/v1/registration_tokens/new
func (a *API) newToken(c *gin.Context) {
	var req struct {
		Token       string `json:"token"`
		Length      int    `json:"length"`
		UsesAllowed *int64 `json:"uses_allowed"`
		ExpiryTime  *int64 `json:"expiry_time"`
	}
	if err := httpx.DecodeOptionalJSON(c, &req); err != nil {
		httpx.Fail(c, err)
		return
	}
	t, err := a.users.NewRegistrationToken(c.Request.Context(), req.Token, req.Length, req.UsesAllowed, req.ExpiryTime)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	httpx.OK(c, tokenJSON(t))
}

// GET /_synapse/admin/v1/registration_tokens/{token}
func (a *API) getToken(c *gin.Context) {
	t, err := a.users.GetRegistrationToken(c.Request.Context(), c.Param("token"))
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	httpx.OK(c, tokenJSON(t))
}

// PUT /_synapse/admin/v1/registration_tokens/{token}
func (a *API) updateToken(c *gin.Context) {
	var raw map[string]json.RawMessage
	if err := httpx.DecodeJSON(c, &raw); err != nil {
		httpx.Fail(c, err)
		return
	}
	var uses, expiry *int64
	for key, dst := range map[string]**int64{"uses_allowed": &uses, "expiry_time": &expiry} {
		if v, ok := raw[key]; ok {
			if err := json.Unmarshal(v, dst); err != nil {
				httpx.Fail(c, types.InvalidParam("%s must be an integer or null", key))
				return
			}
		}
	}
	_, setUses := raw["uses_allowed"]
	_, setExpiry := raw["expiry_time"]
	t, err := a.users.UpdateRegistrationToken(c.Request.Context(), c.Param("token"), setUses, uses, setExpiry, expiry)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	httpx.OK(c, tokenJSON(t))
}

// DELETE /_synapse/admin/v1/registration_tokens/{token}
func (a *API) deleteToken(c *gin.Context) {
	if err := a.users.DeleteRegistrationToken(c.Request.Context(), c.Param("token")); err != nil {
		httpx.Fail(c, err)
		return
	}
	httpx.OK(c, httpx.Empty)
}
