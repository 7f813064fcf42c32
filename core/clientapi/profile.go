package clientapi

import (
	"encoding/json"

	"github.com/gin-gonic/gin"

	"github.com/tributary-hs/tributary/core/httpx"
	"github.com/tributary-hs/tributary/core/types"
)

func (a *API) registerProfile(g gin.IRouter, auth gin.HandlerFunc) {
	g.GET("/profile/:userId", a.getProfile)
	g.GET("/profile/:userId/:key", a.getProfileField)
	g.PUT("/profile/:userId/:key", auth, a.putProfileField)
	g.DELETE("/profile/:userId/:key", auth, a.deleteProfileField)
}

// GET /_matrix/client/v3/profile/{userId}
func (a *API) getProfile(c *gin.Context) {
	prof, err := a.users.GetProfile(c.Request.Context(), userParam(c))
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	httpx.OK(c, prof)
}

// GET /_matrix/client/v3/profile/{userId}/{keyName}
func (a *API) getProfileField(c *gin.Context) {
	prof, err := a.users.GetProfile(c.Request.Context(), userParam(c))
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	key := c.Param("key")
	v, ok := prof[key]
	if !ok {
		httpx.Fail(c, types.NotFound("The profile has no %s", key))
		return
	}
	httpx.OK(c, map[string]json.RawMessage{key: v})
}

// PUT /_matrix/client/v3/profile/{userId}/{keyName}
func (a *API) putProfileField(c *gin.Context) {
	var body map[string]any
	if err := httpx.DecodeJSON(c, &body); err != nil {
		httpx.Fail(c, err)
		return
	}
	key := c.Param("key")
	v, ok := body[key]
	if !ok || v == nil {
		httpx.Fail(c, types.MissingParam("The body must contain %q", key))
		return
	}
	if err := a.users.SetProfileField(c.Request.Context(), httpx.PrincipalOf(c).UserID, userParam(c), key, v); err != nil {
		httpx.Fail(c, err)
		return
	}
	a.profileChanged(c, key)
	httpx.OK(c, httpx.Empty)
}

// profileChanged carries a new display name or avatar into the user's rooms.
// The profile itself is saved already; a room that refuses the update (the
// user lacks power to change their member event) does not undo it.
func (a *API) profileChanged(c *gin.Context, key string) {
	if key != "displayname" && key != "avatar_url" {
		return
	}
	_ = a.rooms.ProfileChanged(c.Request.Context(), httpx.PrincipalOf(c).UserID)
}

// DELETE /_matrix/client/v3/profile/{userId}/{keyName}
func (a *API) deleteProfileField(c *gin.Context) {
	if err := a.users.SetProfileField(c.Request.Context(), httpx.PrincipalOf(c).UserID, userParam(c), c.Param("key"), nil); err != nil {
		httpx.Fail(c, err)
		return
	}
	a.profileChanged(c, c.Param("key"))
	httpx.OK(c, httpx.Empty)
}
