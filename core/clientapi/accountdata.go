package clientapi

import (
	"github.com/gin-gonic/gin"

	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/core/httpx"
)

func (a *API) registerAccountData(g gin.IRouter, auth gin.HandlerFunc) {
	g.PUT("/user/:userId/account_data/:type", auth, a.putAccountData)
	g.GET("/user/:userId/account_data/:type", auth, a.getAccountData)
	g.PUT("/user/:userId/rooms/:roomId/account_data/:type", auth, a.putAccountData)
	g.GET("/user/:userId/rooms/:roomId/account_data/:type", auth, a.getAccountData)
}

// registerAccountDataDeletion serves MSC3391's deletions (unstable prefix,
// as Synapse and clients use them).
func (a *API) registerAccountDataDeletion(r gin.IRouter, auth gin.HandlerFunc) {
	g := r.Group("/_matrix/client/unstable/org.matrix.msc3391")
	g.DELETE("/user/:userId/account_data/:type", auth, a.deleteAccountData)
	g.DELETE("/user/:userId/rooms/:roomId/account_data/:type", auth, a.deleteAccountData)
}

// DELETE /_matrix/client/unstable/org.matrix.msc3391/user/{userId}[/rooms/{roomId}]/account_data/{type}
func (a *API) deleteAccountData(c *gin.Context) {
	if err := a.users.DeleteAccountData(c.Request.Context(), httpx.PrincipalOf(c).UserID, userParam(c),
		id.RoomID(c.Param("roomId")), c.Param("type")); err != nil {
		httpx.Fail(c, err)
		return
	}
	httpx.OK(c, httpx.Empty)
}

// PUT /_matrix/client/v3/user/{userId}/account_data/{type}
// PUT /_matrix/client/v3/user/{userId}/rooms/{roomId}/account_data/{type}
func (a *API) putAccountData(c *gin.Context) {
	var obj map[string]any
	body, err := httpx.ReadBody(c)
	if err == nil {
		err = httpx.Unmarshal(body, &obj)
	}
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	if err := a.users.SetAccountData(c.Request.Context(), httpx.PrincipalOf(c).UserID, userParam(c),
		id.RoomID(c.Param("roomId")), c.Param("type"), body); err != nil {
		httpx.Fail(c, err)
		return
	}
	httpx.OK(c, httpx.Empty)
}

// GET /_matrix/client/v3/user/{userId}/account_data/{type}
// GET /_matrix/client/v3/user/{userId}/rooms/{roomId}/account_data/{type}
func (a *API) getAccountData(c *gin.Context) {
	content, err := a.users.GetAccountData(c.Request.Context(), httpx.PrincipalOf(c).UserID, userParam(c),
		id.RoomID(c.Param("roomId")), c.Param("type"))
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	c.Data(200, "application/json", content)
}
