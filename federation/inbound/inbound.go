// Package inbound serves the Server-Server API (/_matrix/federation) and
// the key API (/_matrix/key) to other servers and to third parties: the
// server's keys and the notary, /version, the OpenID userinfo endpoint
// (widgets and integration managers), and, behind X-Matrix request
// authentication, the federation endpoints proper: joins, leaves, invites
// and knocks, transactions of PDUs and EDUs (typing, receipts, presence,
// to-device messages, device-list and cross-signing key updates), room
// reads, queries, keys and media. It imports core services, core/httpx and
// federation/keys only.
package inbound

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"maunium.net/go/mautrix/federation"
	"maunium.net/go/mautrix/id"

	"github.com/gin-gonic/gin"

	"github.com/tributary-hs/tributary/core/httpx"
	"github.com/tributary-hs/tributary/core/types"
	"github.com/tributary-hs/tributary/federation/keys"
)

// OpenID answers who an OpenID token stands for (core/users implements it).
type OpenID interface {
	OpenIDUser(ctx context.Context, token string) (id.UserID, error)
}

// Profiles reads local users' profiles (core/users implements it);
// M_NOT_FOUND for a user that does not exist.
type Profiles interface {
	GetProfile(ctx context.Context, userID id.UserID) (map[string]json.RawMessage, error)
}

// Options configure the federation API. With Ring nil, federation is off:
// only the OpenID userinfo endpoint is served.
type Options struct {
	ServerName string
	Version    string
	Ring       *keys.Ring
	// Client is mautrix's federation client, which ServerAuth uses to fetch
	// a key ID missing from a cached response.
	Client *federation.Client
	// FederatesWith is the allow/deny list: requests from other servers
	// are refused with 403 M_FORBIDDEN.
	FederatesWith func(serverName string) bool
	// Rooms serves joins, transactions and reads of rooms (nil: not served).
	Rooms Rooms
	// Ephemeral takes typing, receipt, presence and to-device EDUs (nil:
	// they are ignored).
	Ephemeral Ephemeral
	// Contacted (nil: none) is told the origin of each authenticated
	// request: a server that talks to us is up, so the federation sender
	// retries it at once if it was backing off.
	Contacted func(origin string)
	// Keys answers about local users' end-to-end keys and takes device-list
	// and cross-signing key EDUs (nil: not served, ignored).
	Keys Keys
	// Media serves local media to other servers (nil: not served).
	Media  Media
	Logger *slog.Logger
}

// API serves the federation endpoints.
type API struct {
	openID   OpenID
	profiles Profiles
	opts     Options
	auth     *federation.ServerAuth
	txns     *transactions
}

// New builds the handlers.
func New(openID OpenID, profiles Profiles, opts Options) *API {
	a := &API{openID: openID, profiles: profiles, opts: opts, txns: newTransactions()}
	if opts.Ring != nil {
		a.auth = federation.NewServerAuth(opts.Client, keys.RequestKeys{Ring: opts.Ring},
			func(federation.XMatrixAuth) string { return opts.ServerName })
		if a.opts.FederatesWith == nil {
			a.opts.FederatesWith = func(string) bool { return true }
		}
	}
	return a
}

// Register adds the federation routes to r.
func (a *API) Register(r gin.IRouter) {
	r.GET("/_matrix/federation/v1/openid/userinfo", a.userinfo)
	if a.opts.Ring == nil {
		return
	}
	r.GET("/_matrix/key/v2/server", a.serverKeys)
	r.GET("/_matrix/key/v2/server/:keyID", a.serverKeys) // deprecated form, still asked by old servers
	r.GET("/_matrix/key/v2/query/:serverName", a.queryKeysGet)
	r.POST("/_matrix/key/v2/query", a.queryKeysPost)
	r.GET("/_matrix/federation/v1/version", a.version)
	fed := r.Group("/_matrix/federation", a.authenticate)
	fed.GET("/v1/query/profile", a.queryProfile)
	if a.opts.Media != nil {
		fed.GET("/v1/media/download/:mediaID", a.mediaDownload)
		fed.GET("/v1/media/thumbnail/:mediaID", a.mediaThumbnail)
	}
	if a.opts.Keys != nil {
		fed.POST("/v1/user/keys/query", a.userKeysQuery)
		fed.POST("/v1/user/keys/claim", a.userKeysClaim)
		fed.GET("/v1/user/devices/:userID", a.userDevices)
	}
	if a.opts.Rooms == nil {
		return
	}
	fed.GET("/v1/query/directory", a.queryDirectory)
	fed.GET("/v1/make_join/:roomID/:userID", a.makeJoin)
	fed.PUT("/v1/send_join/:roomID/:eventID", a.sendJoinV1)
	fed.PUT("/v2/send_join/:roomID/:eventID", a.sendJoinV2)
	fed.GET("/v1/make_leave/:roomID/:userID", a.makeLeave)
	fed.PUT("/v1/send_leave/:roomID/:eventID", a.sendLeaveV1)
	fed.PUT("/v2/send_leave/:roomID/:eventID", a.sendLeaveV2)
	fed.PUT("/v1/invite/:roomID/:eventID", a.inviteV1)
	fed.PUT("/v2/invite/:roomID/:eventID", a.inviteV2)
	fed.GET("/v1/make_knock/:roomID/:userID", a.makeKnock)
	fed.PUT("/v1/send_knock/:roomID/:eventID", a.sendKnock)
	fed.PUT("/v1/send/:txnID", a.send)
	fed.GET("/v1/event/:eventID", a.event)
	fed.GET("/v1/state/:roomID", a.state)
	fed.GET("/v1/state_ids/:roomID", a.stateIDs)
	fed.GET("/v1/event_auth/:roomID/:eventID", a.eventAuth)
	fed.GET("/v1/backfill/:roomID", a.backfill)
	fed.POST("/v1/get_missing_events/:roomID", a.getMissingEvents)
	fed.GET("/v1/timestamp_to_event/:roomID", a.timestampToEvent)
}

func (a *API) log() *slog.Logger {
	if a.opts.Logger != nil {
		return a.opts.Logger
	}
	return slog.Default()
}

// authenticate checks the X-Matrix Authorization header of a request from
// another server (origin, destination, key, signature over method, URI and
// body) with mautrix's federation.ServerAuth, after the allow/deny list.
// A failure is 401 M_UNAUTHORIZED; a server not federated with, 403.
func (a *API) authenticate(c *gin.Context) {
	if origin := federation.ParseXMatrixAuth(c.GetHeader("Authorization")).Origin; origin != "" && !a.opts.FederatesWith(origin) {
		httpx.Fail(c, types.Forbidden("Federation with %s is not allowed", origin))
		return
	}
	req, rerr := a.auth.Authenticate(c.Request)
	if rerr != nil {
		status := rerr.StatusCode
		if status == 0 {
			status = http.StatusUnauthorized
		}
		httpx.Fail(c, types.NewError(status, rerr.ErrCode, "%s", rerr.Err))
		return
	}
	c.Request = req
	if a.opts.Contacted != nil {
		a.opts.Contacted(federation.OriginServerName(req.Context()))
	}
	c.Next()
}

// GET /_matrix/federation/v1/openid/userinfo?access_token=…
func (a *API) userinfo(c *gin.Context) {
	user, err := a.openID.OpenIDUser(c.Request.Context(), c.Query("access_token"))
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	httpx.OK(c, gin.H{"sub": user})
}

// GET /_matrix/federation/v1/version
func (a *API) version(c *gin.Context) {
	httpx.OK(c, federation.RespServerVersion{Server: federation.ServerVersion{Name: "Tributary", Version: a.opts.Version}})
}

// GET /_matrix/key/v2/server
func (a *API) serverKeys(c *gin.Context) {
	httpx.OK(c, a.opts.Ring.OwnKeys())
}

// GET /_matrix/key/v2/query/{serverName}?minimum_valid_until_ts=…
func (a *API) queryKeysGet(c *gin.Context) {
	var minValid time.Time
	if s := c.Query("minimum_valid_until_ts"); s != "" {
		ms, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			httpx.Fail(c, types.InvalidParam("minimum_valid_until_ts must be an integer"))
			return
		}
		minValid = time.UnixMilli(ms)
	}
	serverName := c.Param("serverName")
	if !a.queryable(c, serverName) {
		return
	}
	out, err := a.opts.Ring.Notarise(c.Request.Context(), serverName, nil, minValid)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	httpx.OK(c, gin.H{"server_keys": out})
}

// POST /_matrix/key/v2/query
func (a *API) queryKeysPost(c *gin.Context) {
	var req struct {
		ServerKeys map[string]map[id.KeyID]struct {
			MinimumValidUntilTS int64 `json:"minimum_valid_until_ts"`
		} `json:"server_keys"`
	}
	if err := httpx.DecodeJSON(c, &req); err != nil {
		httpx.Fail(c, err)
		return
	}
	if req.ServerKeys == nil {
		httpx.Fail(c, types.MissingParam("server_keys is required"))
		return
	}
	out := []json.RawMessage{}
	for serverName, wanted := range req.ServerKeys {
		if !a.queryable(c, serverName) {
			return
		}
		var keyIDs []id.KeyID
		var minValid time.Time
		for keyID, crit := range wanted {
			keyIDs = append(keyIDs, keyID)
			if t := time.UnixMilli(crit.MinimumValidUntilTS); crit.MinimumValidUntilTS != 0 && t.After(minValid) {
				minValid = t
			}
		}
		got, err := a.opts.Ring.Notarise(c.Request.Context(), serverName, keyIDs, minValid)
		if err != nil {
			httpx.Fail(c, err)
			return
		}
		out = append(out, got...)
	}
	httpx.OK(c, gin.H{"server_keys": out})
}

// queryable refuses a notary query for a name that is not a server name,
// or for a server not federated with.
func (a *API) queryable(c *gin.Context, serverName string) bool {
	if !id.ValidateServerName(serverName) {
		httpx.Fail(c, types.InvalidParam("%q is not a server name", serverName))
		return false
	}
	if serverName != a.opts.ServerName && !a.opts.FederatesWith(serverName) {
		httpx.Fail(c, types.Forbidden("Federation with %s is not allowed", serverName))
		return false
	}
	return true
}

// GET /_matrix/federation/v1/query/profile?user_id=…&field=…
func (a *API) queryProfile(c *gin.Context) {
	user := id.UserID(c.Query("user_id"))
	if user == "" {
		httpx.Fail(c, types.MissingParam("user_id is required"))
		return
	}
	if _, server, err := user.Parse(); err != nil || server != a.opts.ServerName {
		httpx.Fail(c, types.InvalidParam("%s is not a user of this server", user))
		return
	}
	prof, err := a.profiles.GetProfile(c.Request.Context(), user)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	out := map[string]json.RawMessage{}
	for _, k := range []string{"displayname", "avatar_url"} {
		if f := c.Query("field"); f != "" && f != k {
			continue
		}
		if v, ok := prof[k]; ok {
			out[k] = v
		}
	}
	httpx.OK(c, out)
}
