package clientapi

import (
	"github.com/gin-gonic/gin"

	"github.com/tributary-hs/tributary/core/httpx"
	"github.com/tributary-hs/tributary/core/types"
)

func (a *API) registerUserDirectory(g gin.IRouter, auth gin.HandlerFunc) {
	g.POST("/user_directory/search", auth, a.searchUsers)
}

// POST /_matrix/client/v3/user_directory/search
func (a *API) searchUsers(c *gin.Context) {
	var body struct {
		SearchTerm *string `json:"search_term"`
		Limit      int     `json:"limit"`
	}
	if err := httpx.DecodeJSON(c, &body); err != nil {
		httpx.Fail(c, err)
		return
	}
	if body.SearchTerm == nil {
		httpx.Fail(c, types.MissingParam("search_term is required"))
		return
	}
	if body.Limit < 0 {
		httpx.Fail(c, types.InvalidParam("limit must not be negative"))
		return
	}
	users, limited, err := a.rooms.SearchUsers(c.Request.Context(), httpx.PrincipalOf(c).UserID, *body.SearchTerm, body.Limit)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	httpx.OK(c, gin.H{"results": users, "limited": limited})
}
