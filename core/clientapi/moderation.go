package clientapi

import (
	"github.com/gin-gonic/gin"

	"github.com/tributary-hs/tributary/core/httpx"
	"github.com/tributary-hs/tributary/core/types"
	"github.com/tributary-hs/tributary/core/users"
)

func (a *API) registerModeration(v1 gin.IRouter, auth gin.HandlerFunc) {
	for path, r := range map[string]users.Restriction{"/admin/suspend/:userId": users.Suspension, "/admin/lock/:userId": users.Lock} {
		key := "suspended"
		if r == users.Lock {
			key = "locked"
		}
		v1.GET(path, auth, func(c *gin.Context) {
			on, err := a.users.Restricted(c.Request.Context(), httpx.PrincipalOf(c).UserID, userParam(c), r)
			if err != nil {
				httpx.Fail(c, err)
				return
			}
			httpx.OK(c, gin.H{key: on})
		})
		v1.PUT(path, auth, func(c *gin.Context) {
			var body map[string]any
			if err := httpx.DecodeJSON(c, &body); err != nil {
				httpx.Fail(c, err)
				return
			}
			on, ok := body[key].(bool)
			if !ok {
				httpx.Fail(c, types.MissingParam("%s (true or false) is required", key))
				return
			}
			if err := a.users.Restrict(c.Request.Context(), httpx.PrincipalOf(c).UserID, userParam(c), r, on); err != nil {
				httpx.Fail(c, err)
				return
			}
			httpx.OK(c, gin.H{key: on})
		})
	}
}
