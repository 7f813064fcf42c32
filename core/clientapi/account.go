package clientapi

import (
	"encoding/json"

	"github.com/gin-gonic/gin"

	"github.com/tributary-hs/tributary/core/httpx"
	"github.com/tributary-hs/tributary/core/users"
)

func (a *API) registerAccount(g gin.IRouter, auth gin.HandlerFunc) {
	g.GET("/account/whoami", auth, a.whoami)
	g.POST("/account/password", auth, a.changePassword)
	g.POST("/account/deactivate", auth, a.deactivate)
}

// GET /_matrix/client/v3/account/whoami
func (a *API) whoami(c *gin.Context) {
	p := httpx.PrincipalOf(c)
	httpx.OK(c, gin.H{"user_id": p.UserID, "device_id": p.DeviceID, "is_guest": false})
}

// POST /_matrix/client/v3/account/password
func (a *API) changePassword(c *gin.Context) {
	var req struct {
		NewPassword   string          `json:"new_password"`
		LogoutDevices *bool           `json:"logout_devices"`
		Auth          json.RawMessage `json:"auth"`
	}
	if err := httpx.DecodeJSON(c, &req); err != nil {
		httpx.Fail(c, err)
		return
	}
	p := httpx.PrincipalOf(c)
	ctx := c.Request.Context()
	res, err := a.users.CheckUIA(ctx, &users.UIARequest{Auth: req.Auth, UserID: p.UserID,
		Endpoint: "account/password", Flows: users.PasswordFlows})
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	logout := req.LogoutDevices == nil || *req.LogoutDevices
	if err := a.users.ChangePassword(ctx, p, req.NewPassword, logout); err != nil {
		httpx.Fail(c, err)
		return
	}
	a.users.FinishUIA(ctx, res)
	httpx.OK(c, httpx.Empty)
}

// POST /_matrix/client/v3/account/deactivate
func (a *API) deactivate(c *gin.Context) {
	var req struct {
		Auth  json.RawMessage `json:"auth"`
		Erase bool            `json:"erase"`
	}
	if err := httpx.DecodeOptionalJSON(c, &req); err != nil {
		httpx.Fail(c, err)
		return
	}
	p := httpx.PrincipalOf(c)
	ctx := c.Request.Context()
	res, err := a.users.CheckUIA(ctx, &users.UIARequest{Auth: req.Auth, UserID: p.UserID,
		Endpoint: "account/deactivate", Flows: users.PasswordFlows})
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	if err := a.users.Deactivate(ctx, p.UserID, req.Erase); err != nil {
		httpx.Fail(c, err)
		return
	}
	a.users.FinishUIA(ctx, res)
	httpx.OK(c, gin.H{"id_server_unbind_result": "no-support"})
}
