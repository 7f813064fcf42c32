package clientapi

import (
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"
	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/core/httpx"
	"github.com/tributary-hs/tributary/core/types"
)

// registerLegacy adds the smaller endpoints of the spec: an event by its
// ID alone, who is who for admins, and the TURN server for calls.
func (a *API) registerLegacy(g gin.IRouter, auth gin.HandlerFunc) {
	g.GET("/events/:eventId", auth, a.eventByID)
	g.GET("/admin/whois/:userId", auth, a.whois)
	g.GET("/voip/turnServer", auth, a.turnServer)
	g.POST("/user/:userId/openid/request_token", auth, a.openIDToken)
	g.GET("/login/sso/redirect", a.ssoRedirect)
	g.GET("/login/sso/redirect/:idpId", a.ssoRedirect)
}

// GET /_matrix/client/v3/events/{eventId} (deprecated; as /rooms/{roomId}/event/{eventId}).
func (a *API) eventByID(c *gin.Context) {
	eventID := id.EventID(c.Param("eventId"))
	if len(eventID) < 2 || eventID[0] != '$' {
		httpx.Fail(c, types.InvalidParam("Invalid event ID"))
		return
	}
	ev, err := a.rooms.EventAnywhere(c.Request.Context(), httpx.PrincipalOf(c).UserID, eventID)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	httpx.OK(c, ev)
}

// GET /_matrix/client/v3/admin/whois/{userId}: a user's devices and where
// they were last seen; for the user themselves and server admins.
func (a *API) whois(c *gin.Context) {
	ctx := c.Request.Context()
	user := userParam(c)
	me := httpx.PrincipalOf(c).UserID
	if user != me {
		if admin, err := a.users.IsAdmin(ctx, me); err != nil {
			httpx.Fail(c, err)
			return
		} else if !admin {
			httpx.Fail(c, types.Forbidden("Only server admins may look up other users"))
			return
		}
	}
	if _, err := a.users.GetAccount(ctx, user); err != nil {
		httpx.Fail(c, err)
		return
	}
	devices, err := a.users.ListDevices(ctx, user)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	out := map[id.DeviceID]any{}
	for _, d := range devices {
		var conns []map[string]any
		if d.LastSeenTS > 0 {
			conns = append(conns, map[string]any{"ip": d.LastSeenIP, "last_seen": d.LastSeenTS})
		}
		if conns == nil {
			conns = []map[string]any{}
		}
		out[d.DeviceID] = map[string]any{"sessions": []any{map[string]any{"connections": conns}}}
	}
	httpx.OK(c, gin.H{"user_id": user, "devices": out})
}

// GET /_matrix/client/v3/voip/turnServer: credentials for the configured
// TURN server in the shared-secret scheme (username "expiry:user", password
// the base64 HMAC-SHA1 of the username under the secret); an empty object
// when none is configured, as clients expect.
func (a *API) turnServer(c *gin.Context) {
	t := a.opts.TURN
	if len(t.URIs) == 0 {
		httpx.OK(c, gin.H{})
		return
	}
	expiry := time.Now().Add(t.UserLifetime).Unix()
	username := strconv.FormatInt(expiry, 10) + ":" + string(httpx.PrincipalOf(c).UserID)
	mac := hmac.New(sha1.New, []byte(t.SharedSecret))
	mac.Write([]byte(username))
	httpx.OK(c, gin.H{"username": username, "password": base64.StdEncoding.EncodeToString(mac.Sum(nil)),
		"uris": t.URIs, "ttl": int64(t.UserLifetime.Seconds())})
}

// POST /_matrix/client/v3/user/{userId}/openid/request_token
func (a *API) openIDToken(c *gin.Context) {
	var body map[string]any
	if err := httpx.DecodeJSON(c, &body); err != nil {
		httpx.Fail(c, err)
		return
	}
	tok, err := a.users.RequestOpenIDToken(c.Request.Context(), httpx.PrincipalOf(c).UserID, userParam(c))
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	httpx.OK(c, tok)
}

// GET /_matrix/client/v1/room_summary/{roomIdOrAlias} (authentication optional).
func (a *API) roomSummary(c *gin.Context) {
	var user id.UserID
	if p := httpx.PrincipalOf(c); p != nil {
		user = p.UserID
	}
	out, err := a.rooms.RoomSummary(c.Request.Context(), c.Param("roomIdOrAlias"), user)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	httpx.OK(c, out)
}

// GET /_matrix/client/v3/login/sso/redirect[/{idpId}]: single sign-on is a
// login type this server does not offer (GET /login lists none), so there
// is no identity provider to send anyone to.
func (a *API) ssoRedirect(c *gin.Context) {
	if c.Query("redirectUrl") == "" {
		httpx.Fail(c, types.MissingParam("redirectUrl is required"))
		return
	}
	httpx.Fail(c, types.NotFound("No single sign-on identity provider is configured on this server"))
}
