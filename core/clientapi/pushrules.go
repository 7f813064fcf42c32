package clientapi

import (
	"net/http"

	"github.com/gin-gonic/gin"
	"maunium.net/go/mautrix/id"
	"maunium.net/go/mautrix/pushrules"

	"github.com/tributary-hs/tributary/core/httpx"
	"github.com/tributary-hs/tributary/core/push"
	"github.com/tributary-hs/tributary/core/types"
)

func (a *API) registerPushRules(g gin.IRouter, auth gin.HandlerFunc) {
	g.GET("/pushrules/", auth, a.getPushRules)
	g.GET("/pushrules/global/", auth, a.getGlobalPushRules)
	g.GET("/pushrules/global/:kind/:ruleId", auth, a.getPushRule)
	g.PUT("/pushrules/global/:kind/:ruleId", auth, a.putPushRule)
	g.DELETE("/pushrules/global/:kind/:ruleId", auth, a.deletePushRule)
	g.GET("/pushrules/global/:kind/:ruleId/:attr", auth, a.getPushRuleAttr)
	g.PUT("/pushrules/global/:kind/:ruleId/:attr", auth, a.putPushRuleAttr)
}

func me(c *gin.Context) id.UserID { return httpx.PrincipalOf(c).UserID }

// GET /_matrix/client/v3/pushrules/
func (a *API) getPushRules(c *gin.Context) {
	rs, err := a.push.Ruleset(c.Request.Context(), me(c))
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	pushJSON(c, gin.H{"global": rs})
}

// pushJSON answers push rules in the spec's form (push.Marshal).
func pushJSON(c *gin.Context, v any) {
	raw, err := push.Marshal(v)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	c.Data(http.StatusOK, "application/json", raw)
}

// GET /_matrix/client/v3/pushrules/global/
func (a *API) getGlobalPushRules(c *gin.Context) {
	rs, err := a.push.Ruleset(c.Request.Context(), me(c))
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	pushJSON(c, rs)
}

// GET /_matrix/client/v3/pushrules/global/{kind}/{ruleId}
func (a *API) getPushRule(c *gin.Context) {
	r, err := a.push.GetRule(c.Request.Context(), me(c), c.Param("kind"), c.Param("ruleId"))
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	pushJSON(c, r.Value())
}

// PUT /_matrix/client/v3/pushrules/global/{kind}/{ruleId}
func (a *API) putPushRule(c *gin.Context) {
	var body push.RuleBody
	if err := httpx.DecodeJSON(c, &body); err != nil {
		httpx.Fail(c, err)
		return
	}
	if err := a.push.PutRule(c.Request.Context(), me(c), c.Param("kind"), c.Param("ruleId"), c.Query("before"),
		c.Query("after"), &body); err != nil {
		httpx.Fail(c, err)
		return
	}
	httpx.OK(c, httpx.Empty)
}

// DELETE /_matrix/client/v3/pushrules/global/{kind}/{ruleId}
func (a *API) deletePushRule(c *gin.Context) {
	if err := a.push.DeleteRule(c.Request.Context(), me(c), c.Param("kind"), c.Param("ruleId")); err != nil {
		httpx.Fail(c, err)
		return
	}
	httpx.OK(c, httpx.Empty)
}

// GET /_matrix/client/v3/pushrules/global/{kind}/{ruleId}/{enabled,actions}
func (a *API) getPushRuleAttr(c *gin.Context) {
	r, err := a.push.GetRule(c.Request.Context(), me(c), c.Param("kind"), c.Param("ruleId"))
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	switch c.Param("attr") {
	case "enabled":
		httpx.OK(c, gin.H{"enabled": r.Enabled()})
	case "actions":
		actions := r.Actions()
		if actions == nil {
			actions = pushrules.PushActionArray{}
		}
		pushJSON(c, gin.H{"actions": actions})
	default:
		httpx.Fail(c, types.Unrecognized(404, "Unrecognized request"))
	}
}

// PUT /_matrix/client/v3/pushrules/global/{kind}/{ruleId}/{enabled,actions}
func (a *API) putPushRuleAttr(c *gin.Context) {
	ctx := c.Request.Context()
	var err error
	switch c.Param("attr") {
	case "enabled":
		var body struct {
			Enabled *bool `json:"enabled"`
		}
		if err = httpx.DecodeJSON(c, &body); err == nil {
			if body.Enabled == nil {
				err = types.MissingParam("enabled is required")
			} else {
				err = a.push.SetEnabled(ctx, me(c), c.Param("kind"), c.Param("ruleId"), *body.Enabled)
			}
		}
	case "actions":
		var body struct {
			Actions pushrules.PushActionArray `json:"actions"`
		}
		if err = httpx.DecodeJSON(c, &body); err == nil {
			err = a.push.SetActions(ctx, me(c), c.Param("kind"), c.Param("ruleId"), body.Actions)
		}
	default:
		err = types.Unrecognized(404, "Unrecognized request")
	}
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	httpx.OK(c, httpx.Empty)
}

// registerThreadSubscriptions adds MSC4306's endpoints, while enabled.
func (a *API) registerThreadSubscriptions(r gin.IRouter, auth gin.HandlerFunc) {
	if !a.push.ThreadSubscriptionsEnabled() {
		return
	}
	p := "/_matrix/client/unstable/io.element.msc4306/rooms/:roomId/thread/:eventId/subscription"
	r.PUT(p, auth, a.putThreadSubscription)
	r.GET(p, auth, a.getThreadSubscription)
	r.DELETE(p, auth, a.deleteThreadSubscription)
}

// visibleThread checks that the caller may see the thread's root (404 if
// not, as for a thread that does not exist).
func (a *API) visibleThread(c *gin.Context) (id.RoomID, id.EventID, bool) {
	roomID, ok := roomParam(c)
	if !ok {
		return "", "", false
	}
	root := id.EventID(c.Param("eventId"))
	if _, err := a.rooms.Event(c.Request.Context(), roomID, me(c), root); err != nil {
		httpx.Fail(c, err)
		return "", "", false
	}
	return roomID, root, true
}

// PUT /_matrix/client/unstable/io.element.msc4306/rooms/{roomId}/thread/{eventId}/subscription
func (a *API) putThreadSubscription(c *gin.Context) {
	var body struct {
		// Automatic is the cause event's ID of an automatic subscription.
		Automatic *string `json:"automatic"`
	}
	if err := httpx.DecodeOptionalJSON(c, &body); err != nil {
		httpx.Fail(c, err)
		return
	}
	roomID, root, ok := a.visibleThread(c)
	if !ok {
		return
	}
	var cause id.EventID
	if body.Automatic != nil {
		if *body.Automatic == "" {
			httpx.Fail(c, types.InvalidParam("automatic must be the ID of the cause event"))
			return
		}
		cause = id.EventID(*body.Automatic)
	}
	if err := a.push.SubscribeThread(c.Request.Context(), me(c), roomID, root, cause); err != nil {
		httpx.Fail(c, err)
		return
	}
	httpx.OK(c, httpx.Empty)
}

// GET /_matrix/client/unstable/io.element.msc4306/rooms/{roomId}/thread/{eventId}/subscription
func (a *API) getThreadSubscription(c *gin.Context) {
	roomID, root, ok := a.visibleThread(c)
	if !ok {
		return
	}
	automatic, err := a.push.ThreadSubscription(c.Request.Context(), me(c), roomID, root)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	httpx.OK(c, gin.H{"automatic": automatic})
}

// DELETE /_matrix/client/unstable/io.element.msc4306/rooms/{roomId}/thread/{eventId}/subscription
func (a *API) deleteThreadSubscription(c *gin.Context) {
	roomID, root, ok := a.visibleThread(c)
	if !ok {
		return
	}
	if err := a.push.UnsubscribeThread(c.Request.Context(), me(c), roomID, root); err != nil {
		httpx.Fail(c, err)
		return
	}
	httpx.OK(c, httpx.Empty)
}
