// Package admin serves the admin API under Synapse-compatible paths
// (/_synapse/admin/...), so existing tools such as register_new_matrix_user
// work. It imports core services and core/httpx, never storage.
package admin

import (
	"encoding/json"

	"github.com/gin-gonic/gin"

	"github.com/tributary-hs/tributary/core/httpx"
	"github.com/tributary-hs/tributary/core/types"
	"github.com/tributary-hs/tributary/core/users"
)

// API serves the admin endpoints.
type API struct {
	users        *users.Service
	register     *httpx.Limiter
	notices      *Notices
	destinations Destinations
}

// New builds the handlers; register rate-limits shared-secret registration
// per IP; notices sends server notices (nil: off); destinations serves the
// federation destinations (nil: federation is off).
func New(u *users.Service, register *httpx.Limiter, notices *Notices, destinations Destinations) *API {
	return &API{users: u, register: register, notices: notices, destinations: destinations}
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
