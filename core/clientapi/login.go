package clientapi

import (
	"encoding/json"
	"errors"
	"strings"

	"maunium.net/go/mautrix/id"

	"github.com/gin-gonic/gin"

	"github.com/tributary-hs/tributary/core/httpx"
	"github.com/tributary-hs/tributary/core/types"
	"github.com/tributary-hs/tributary/core/users"
)

func (a *API) registerAuth(g gin.IRouter, auth gin.HandlerFunc) {
	g.GET("/login", a.loginFlows)
	g.POST("/login", a.login)
	g.POST("/refresh", a.refresh)
	g.POST("/logout", auth, a.logout)
	g.POST("/logout/all", auth, a.logoutAll)
	g.POST("/register", a.register)
	g.GET("/register/available", a.registerAvailable)
}

// GET /_matrix/client/v3/login
//
// m.login.application_service is listed although only appservices can use
// it: bridges read the list before logging in their bot (mautrix exits
// when the flow is missing), and Synapse lists it the same way.
func (a *API) loginFlows(c *gin.Context) {
	httpx.OK(c, gin.H{"flows": []gin.H{
		{"type": "m.login.password"},
		{"type": "m.login.token", "get_login_token": true},
		{"type": "m.login.application_service"},
	}})
}

// sessionBody renders a login/registration/refresh result.
func (a *API) sessionBody(s *users.Session, withWellKnown bool) gin.H {
	body := gin.H{"user_id": s.UserID, "access_token": s.AccessToken, "device_id": s.DeviceID,
		"home_server": a.opts.ServerName}
	if s.RefreshToken != "" {
		body["refresh_token"] = s.RefreshToken
		body["expires_in_ms"] = s.ExpiresInMS
	}
	if withWellKnown {
		body["well_known"] = gin.H{"m.homeserver": gin.H{"base_url": strings.TrimSuffix(a.opts.PublicBaseURL, "/")}}
	}
	return body
}

type loginBody struct {
	Type                     string            `json:"type"`
	Identifier               *users.Identifier `json:"identifier"`
	User                     string            `json:"user"`
	Password                 string            `json:"password"`
	Token                    string            `json:"token"`
	DeviceID                 id.DeviceID       `json:"device_id"`
	InitialDeviceDisplayName string            `json:"initial_device_display_name"`
	RefreshToken             bool              `json:"refresh_token"`
}

// POST /_matrix/client/v3/login
func (a *API) login(c *gin.Context) {
	var req loginBody
	if err := httpx.DecodeJSON(c, &req); err != nil {
		httpx.Fail(c, err)
		return
	}
	if req.Type == "m.login.application_service" {
		a.loginAppService(c, &req)
		return
	}
	if limited(c, a.limits.LoginAddress, c.ClientIP()) {
		return
	}
	// Failed attempts are limited per account; check before spending a hash.
	var account id.UserID
	if req.Type == "m.login.password" {
		account, _ = a.users.LoginUser(req.Identifier, req.User)
		if account != "" {
			if ok, wait := a.limits.LoginFailedAccount.Check(string(account)); !ok {
				httpx.Fail(c, types.LimitExceeded(wait))
				return
			}
		}
	}
	sess, err := a.users.Login(c.Request.Context(), &users.LoginRequest{
		Type: req.Type, Identifier: req.Identifier, User: req.User, Password: req.Password, Token: req.Token,
		Device: users.DeviceRequest{DeviceID: req.DeviceID, DisplayName: req.InitialDeviceDisplayName,
			IP: c.ClientIP(), WantRefresh: req.RefreshToken},
	})
	if err != nil {
		if errors.Is(err, users.ErrBadCredentials) && account != "" {
			a.limits.LoginFailedAccount.Allow(string(account))
		}
		httpx.Fail(c, err)
		return
	}
	httpx.OK(c, a.sessionBody(sess, true))
}

// POST /_matrix/client/v3/refresh
func (a *API) refresh(c *gin.Context) {
	var req struct {
		RefreshToken string `json:"refresh_token"`
	}
	if err := httpx.DecodeJSON(c, &req); err != nil {
		httpx.Fail(c, err)
		return
	}
	if req.RefreshToken == "" {
		httpx.Fail(c, types.MissingParam("refresh_token is required"))
		return
	}
	sess, err := a.users.Refresh(c.Request.Context(), req.RefreshToken)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	httpx.OK(c, gin.H{"access_token": sess.AccessToken, "refresh_token": sess.RefreshToken,
		"expires_in_ms": sess.ExpiresInMS})
}

// POST /_matrix/client/v3/logout
func (a *API) logout(c *gin.Context) {
	if err := a.users.Logout(c.Request.Context(), httpx.PrincipalOf(c)); err != nil {
		httpx.Fail(c, err)
		return
	}
	httpx.OK(c, httpx.Empty)
}

// POST /_matrix/client/v3/logout/all
func (a *API) logoutAll(c *gin.Context) {
	if err := a.users.LogoutAll(c.Request.Context(), httpx.PrincipalOf(c)); err != nil {
		httpx.Fail(c, err)
		return
	}
	httpx.OK(c, httpx.Empty)
}

// POST /_matrix/client/v1/login/get_token
func (a *API) getLoginToken(c *gin.Context) {
	var req struct {
		Auth json.RawMessage `json:"auth"`
	}
	if err := httpx.DecodeOptionalJSON(c, &req); err != nil {
		httpx.Fail(c, err)
		return
	}
	p := httpx.PrincipalOf(c)
	ctx := c.Request.Context()
	res, err := a.users.CheckUIA(ctx, &users.UIARequest{Auth: req.Auth, UserID: p.UserID,
		Endpoint: "login/get_token", Flows: users.PasswordFlows})
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	tok, life, err := a.users.CreateLoginToken(ctx, p.UserID)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	a.users.FinishUIA(ctx, res)
	httpx.OK(c, gin.H{"login_token": tok, "expires_in_ms": life})
}

// loginAppService is POST /login with m.login.application_service.
func (a *API) loginAppService(c *gin.Context, req *loginBody) {
	p, err := a.appService(c)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	user := req.User
	if req.Identifier != nil {
		user = req.Identifier.User
	}
	sess, err := a.users.LoginAppService(c.Request.Context(), p.AppServiceID, a.users.ResolveUser(user),
		users.DeviceRequest{DeviceID: req.DeviceID, DisplayName: req.InitialDeviceDisplayName, IP: c.ClientIP(),
			WantRefresh: req.RefreshToken})
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	httpx.OK(c, a.sessionBody(sess, true))
}
