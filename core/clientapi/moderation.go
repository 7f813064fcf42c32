package clientapi

import (
	"github.com/gin-gonic/gin"
	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/core/httpx"
	"github.com/tributary-hs/tributary/core/types"
	"github.com/tributary-hs/tributary/core/users"
)

// notSuspended refuses what a suspended account may not do (the spec's
// recommended list: joining, knocking, inviting, sending to rooms, changing
// the profile). Redacting its own events stays possible (see
// suspendedRedaction).
func notSuspended(c *gin.Context) {
	if p := httpx.PrincipalOf(c); p != nil && p.Suspended {
		httpx.Fail(c, types.ErrSuspended)
		return
	}
	c.Next()
}

// suspendedRedaction: a suspended account may redact its own events only.
func (a *API) suspendedRedaction(c *gin.Context, roomID id.RoomID, target id.EventID) bool {
	p := httpx.PrincipalOf(c)
	if p == nil || !p.Suspended {
		return false
	}
	ev, err := a.rooms.Event(c.Request.Context(), roomID, p.UserID, target)
	if err != nil {
		httpx.Fail(c, err)
		return true
	}
	if ev.Sender != p.UserID {
		httpx.Fail(c, types.ErrSuspended)
		return true
	}
	return false
}

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
