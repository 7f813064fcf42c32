package httpx

import (
	"context"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/tributary-hs/tributary/core/types"
)

// Authenticator resolves an access token to its principal.
type Authenticator interface {
	Authenticate(ctx context.Context, token, ip string) (*types.Principal, error)
}

// RequestAuthenticator also sees the request: appservices name the user they
// act for in the query (masquerading).
type RequestAuthenticator interface {
	AuthenticateRequest(r *http.Request, token, ip string) (*types.Principal, error)
}

const principalKey = "tributary.principal"

// AccessToken returns the request's access token: the Authorization Bearer
// header, else the deprecated access_token query parameter.
func AccessToken(r *http.Request) string {
	if h := r.Header.Get("Authorization"); h != "" {
		if tok, ok := strings.CutPrefix(h, "Bearer "); ok {
			return strings.TrimSpace(tok)
		}
		return ""
	}
	return r.URL.Query().Get("access_token")
}

// RequireAuth rejects requests without a valid access token
// (M_MISSING_TOKEN / M_UNKNOWN_TOKEN) and stores the principal.
func RequireAuth(a Authenticator) gin.HandlerFunc {
	return func(c *gin.Context) {
		tok := AccessToken(c.Request)
		if tok == "" {
			Fail(c, types.NewError(http.StatusUnauthorized, types.CodeMissingToken, "Missing access token"))
			return
		}
		var p *types.Principal
		var err error
		if ra, ok := a.(RequestAuthenticator); ok {
			p, err = ra.AuthenticateRequest(c.Request, tok, c.ClientIP())
		} else {
			p, err = a.Authenticate(c.Request.Context(), tok, c.ClientIP())
		}
		if err != nil {
			Fail(c, err)
			return
		}
		if p.Locked && !logoutPath(c.FullPath()) {
			// A locked account may only log out; its sessions stay for
			// when the lock is lifted.
			Fail(c, types.ErrLocked)
			return
		}
		c.Set(principalKey, p)
	}
}

// logoutPath: the routes a locked account may still use.
func logoutPath(route string) bool {
	return strings.HasSuffix(route, "/logout") || strings.HasSuffix(route, "/logout/all")
}

// OptionalAuth authenticates requests that carry an access token (a bad
// token is an error) and lets those without one through with no principal.
func OptionalAuth(a Authenticator) gin.HandlerFunc {
	require := RequireAuth(a)
	return func(c *gin.Context) {
		if AccessToken(c.Request) != "" {
			require(c)
		}
	}
}

// PrincipalOf returns the authenticated caller, or nil.
func PrincipalOf(c *gin.Context) *types.Principal {
	if v, ok := c.Get(principalKey); ok {
		return v.(*types.Principal)
	}
	return nil
}
