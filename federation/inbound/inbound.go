// Package inbound serves the Server-Server API (/_matrix/federation) to
// other servers and to third parties. Today: the OpenID userinfo endpoint,
// through which a widget or integration manager learns who holds an OpenID
// token. It imports core services and core/httpx only.
package inbound

import (
	"context"

	"maunium.net/go/mautrix/id"

	"github.com/gin-gonic/gin"

	"github.com/tributary-hs/tributary/core/httpx"
)

// OpenID answers who an OpenID token stands for (core/users implements it).
type OpenID interface {
	OpenIDUser(ctx context.Context, token string) (id.UserID, error)
}

// API serves the federation endpoints.
type API struct {
	openID OpenID
}

// New builds the handlers.
func New(openID OpenID) *API { return &API{openID: openID} }

// Register adds the federation routes to r.
func (a *API) Register(r gin.IRouter) {
	r.GET("/_matrix/federation/v1/openid/userinfo", a.userinfo)
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
