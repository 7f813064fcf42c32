package clientapi

import (
	"encoding/json"

	"maunium.net/go/mautrix/id"

	"github.com/gin-gonic/gin"

	"github.com/tributary-hs/tributary/core/httpx"
	"github.com/tributary-hs/tributary/core/types"
	"github.com/tributary-hs/tributary/core/users"
)

type registerBody struct {
	Type                     string          `json:"type"`
	Username                 string          `json:"username"`
	Password                 string          `json:"password"`
	DeviceID                 id.DeviceID     `json:"device_id"`
	InitialDeviceDisplayName string          `json:"initial_device_display_name"`
	InhibitLogin             bool            `json:"inhibit_login"`
	RefreshToken             bool            `json:"refresh_token"`
	Auth                     json.RawMessage `json:"auth"`
}

// POST /_matrix/client/v3/register
func (a *API) register(c *gin.Context) {
	var req registerBody
	if err := httpx.DecodeJSON(c, &req); err != nil {
		httpx.Fail(c, err)
		return
	}
	if req.Type == "m.login.application_service" || authType(req.Auth) == "m.login.application_service" {
		a.registerAppServiceUser(c, &req)
		return
	}
	if limited(c, a.limits.Register, c.ClientIP()) {
		return
	}
	kind := c.DefaultQuery("kind", "user")
	userID, sess, err := a.users.Register(c.Request.Context(), &users.RegisterRequest{
		Kind: kind, Username: req.Username, Password: req.Password, InhibitLogin: req.InhibitLogin, Auth: req.Auth,
		Device: users.DeviceRequest{DeviceID: req.DeviceID, DisplayName: req.InitialDeviceDisplayName,
			IP: c.ClientIP(), WantRefresh: req.RefreshToken},
	})
	a.registered(c, userID, sess, err)
}

// GET /_matrix/client/v3/register/available
func (a *API) registerAvailable(c *gin.Context) {
	if limited(c, a.limits.Register, c.ClientIP()) {
		return
	}
	if err := a.users.Available(c.Request.Context(), c.Query("username")); err != nil {
		httpx.Fail(c, err)
		return
	}
	httpx.OK(c, gin.H{"available": true})
}

// GET /_matrix/client/v1/register/m.login.registration_token/validity
func (a *API) registrationTokenValidity(c *gin.Context) {
	if !a.users.RequiresToken() {
		httpx.Fail(c, types.Forbidden("Registration by token is not enabled"))
		return
	}
	if limited(c, a.limits.Register, c.ClientIP()) {
		return
	}
	tok, ok := c.GetQuery("token")
	if !ok {
		httpx.Fail(c, types.MissingParam("token is required"))
		return
	}
	valid, err := a.users.RegistrationTokenValid(c.Request.Context(), tok)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	httpx.OK(c, gin.H{"valid": valid})
}

func authType(raw json.RawMessage) string {
	var a struct {
		Type string `json:"type"`
	}
	_ = json.Unmarshal(raw, &a)
	return a.Type
}

// registerAppServiceUser is POST /register with m.login.application_service.
func (a *API) registerAppServiceUser(c *gin.Context, req *registerBody) {
	p, err := a.appService(c)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	userID, sess, err := a.users.RegisterAppServiceUser(c.Request.Context(), p.AppServiceID, req.Username, req.InhibitLogin,
		users.DeviceRequest{DeviceID: req.DeviceID, DisplayName: req.InitialDeviceDisplayName, IP: c.ClientIP(),
			WantRefresh: req.RefreshToken})
	a.registered(c, userID, sess, err)
}

// registered answers a registration: the new session, or only the user ID
// when inhibit_login asked for none.
func (a *API) registered(c *gin.Context, userID id.UserID, sess *users.Session, err error) {
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	if sess == nil {
		httpx.OK(c, gin.H{"user_id": userID, "home_server": a.opts.ServerName})
		return
	}
	httpx.OK(c, a.sessionBody(sess, false))
}
