// Package clientapi holds the Client-Server API handlers, one file per spec
// area. Handlers are thin: decode, one service call, render. They import
// core services and core/httpx, never storage.
package clientapi

import (
	"crypto/rand"
	"encoding/base64"
	"time"

	"github.com/gin-gonic/gin"
	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/core/bridging"
	"github.com/tributary-hs/tributary/core/delayed"
	"github.com/tributary-hs/tributary/core/ephemeral"
	"github.com/tributary-hs/tributary/core/httpx"
	"github.com/tributary-hs/tributary/core/keys"
	"github.com/tributary-hs/tributary/core/push"
	"github.com/tributary-hs/tributary/core/rooms"
	tsync "github.com/tributary-hs/tributary/core/sync"
	"github.com/tributary-hs/tributary/core/types"
	"github.com/tributary-hs/tributary/core/users"
)

// Options are the facts the handlers need from the configuration.
type Options struct {
	ServerName      string
	PublicBaseURL   string
	WellKnownServer string
	// DefaultRoomVersion is the version createRoom uses (capabilities).
	DefaultRoomVersion id.RoomVersion
	// TURN is the TURN server offered to clients (/voip/turnServer).
	TURN TURN
}

// TURN is a TURN server with shared-secret credentials (none without URIs).
type TURN struct {
	URIs         []string
	SharedSecret string
	UserLifetime time.Duration
}

// Limits are the rate limiters of the API; a nil limiter allows everything.
type Limits struct {
	LoginAddress       *httpx.Limiter
	LoginFailedAccount *httpx.Limiter
	Register           *httpx.Limiter
	// Messages limits each user's sends (appservices are exempt).
	Messages *httpx.Limiter
	// DelayedManagement limits managing delayed events, per user or address.
	DelayedManagement *httpx.Limiter
}

// API serves the client-server endpoints.
type API struct {
	users *users.Service
	rooms *rooms.Service
	sync_ *tsync.Service
	eph   *ephemeral.Service
	push  *push.Service
	keys  *keys.Service
	// bridging sends events: whether ?ts= counts depends on the caller.
	bridging *bridging.Service
	// delayed keeps delayed events (nil: none are kept).
	delayed *delayed.Service
	// auth authenticates requests: users' access tokens and appservices' as_tokens.
	auth   httpx.Authenticator
	opts   Options
	limits Limits
}

// Services are the core services the handlers call.
type Services struct {
	Users     *users.Service
	Rooms     *rooms.Service
	Bridging  *bridging.Service
	Sync      *tsync.Service
	Ephemeral *ephemeral.Service
	Push      *push.Service
	Keys      *keys.Service // nil: no end-to-end encryption endpoints
	// Delayed keeps delayed events (MSC4140); nil: none are.
	Delayed *delayed.Service
	// Auth authenticates requests; nil uses Users alone (no appservices).
	Auth httpx.Authenticator
}

// New builds the handlers.
func New(sv Services, opts Options, limits Limits) *API {
	auth := sv.Auth
	if auth == nil {
		auth = sv.Users
	}
	return &API{users: sv.Users, rooms: sv.Rooms, sync_: sv.Sync, eph: sv.Ephemeral, push: sv.Push, keys: sv.Keys,
		bridging: sv.Bridging, delayed: sv.Delayed, auth: auth, opts: opts, limits: limits}
}

// clientPrefixes are the versions of the client API path an endpoint that
// existed before v1.1 is served under.
var clientPrefixes = []string{"/_matrix/client/v3", "/_matrix/client/r0"}

// Register adds every client-server route to r.
func (a *API) Register(r gin.IRouter) {
	auth := httpx.RequireAuth(a.auth)
	r.GET("/_matrix/client/versions", a.versions)
	r.GET("/.well-known/matrix/client", a.wellKnownClient)
	r.GET("/.well-known/matrix/server", a.wellKnownServer)
	v1 := r.Group("/_matrix/client/v1")
	v1.POST("/login/get_token", auth, a.getLoginToken)
	v1.GET("/register/m.login.registration_token/validity", a.registrationTokenValidity)
	a.registerRoomsV1(v1, auth)
	a.registerRelations(v1, auth)
	v1.GET("/room_summary/:roomIdOrAlias", httpx.OptionalAuth(a.auth), a.roomSummary)
	a.registerModeration(v1, auth)
	a.registerSliding(r, auth)
	a.registerDehydrated(r, auth)
	a.registerAccountDataDeletion(r, auth)
	a.registerDelayed(r, auth)
	a.registerThreadSubscriptions(r, auth)
	for _, p := range clientPrefixes {
		g := r.Group(p)
		a.registerAuth(g, auth)
		a.registerAccount(g, auth)
		a.registerDevices(g, auth)
		a.registerProfile(g, auth)
		a.registerAccountData(g, auth)
		a.registerRooms(g, auth)
		a.registerDirectory(g, auth)
		a.registerSync(g, auth)
		a.registerEphemeral(g, auth)
		a.registerPushRules(g, auth)
		a.registerTags(g, auth)
		a.registerUserDirectory(g, auth)
		a.registerKeys(g, auth)
		a.registerSearch(g, auth)
		a.registerThreePID(g, auth)
		a.registerLegacy(g, auth)
		a.registerPushers(g, auth)
		a.registerInitialSync(g, auth)
		g.GET("/capabilities", auth, a.capabilities)
	}
}

// sendLimit is the per-user limit on sending events: 429 M_LIMIT_EXCEEDED
// when the user has no token left. Appservices are exempt (they speak for
// many users at once), as in Synapse.
func (a *API) sendLimit(c *gin.Context) {
	if userLimited(c, a.limits.Messages) {
		return
	}
	c.Next()
}

// userLimited is limited for the authenticated user's bucket; appservices
// are exempt (they speak for many users at once), as in Synapse. An
// admin's override for the user replaces the limiter's rate.
func userLimited(c *gin.Context, l *httpx.Limiter) bool {
	p := httpx.PrincipalOf(c)
	if p.Kind == types.PrincipalAppService {
		return false
	}
	if p.RateLimit != nil && l != nil {
		if ok, wait := l.AllowWith(string(p.UserID), *p.RateLimit); !ok {
			httpx.Fail(c, types.LimitExceeded(wait))
			return true
		}
		return false
	}
	return limited(c, l, string(p.UserID))
}

// shadowBan answers a shadow-banned user's send as if it had been made
// (with an event ID nobody else will ever see when withEvent) and sends
// nothing, as Synapse does.
func shadowBan(withEvent bool) gin.HandlerFunc {
	return func(c *gin.Context) {
		if !httpx.PrincipalOf(c).ShadowBanned {
			c.Next()
			return
		}
		if !withEvent {
			httpx.OK(c, httpx.Empty)
			c.Abort()
			return
		}
		raw := make([]byte, 32)
		_, _ = rand.Read(raw)
		httpx.OK(c, gin.H{"event_id": "$" + base64.RawURLEncoding.EncodeToString(raw)})
		c.Abort()
	}
}

// limited answers 429 when the limiter has no token for key.
func limited(c *gin.Context, l *httpx.Limiter, key string) bool {
	if ok, wait := l.Allow(key); !ok {
		httpx.Fail(c, types.LimitExceeded(wait))
		return true
	}
	return false
}

// appService authenticates a request that must come from an appservice.
func (a *API) appService(c *gin.Context) (*types.Principal, error) {
	tok := httpx.AccessToken(c.Request)
	if tok == "" {
		return nil, types.NewError(401, types.CodeMissingToken, "Missing access token")
	}
	// The appservice itself, whatever ?user_id= says: bridges' intents send
	// the ghost they are about to register or log in as user_id.
	p, err := a.auth.Authenticate(c.Request.Context(), tok, c.ClientIP())
	if err != nil {
		return nil, err
	}
	if p.Kind != types.PrincipalAppService {
		return nil, types.NewError(401, types.CodeUnknownToken, "This request needs an application service token")
	}
	return p, nil
}
