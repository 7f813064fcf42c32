package clientapi

import (
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/tributary-hs/tributary/core/httpx"
	tsync "github.com/tributary-hs/tributary/core/sync"
	"github.com/tributary-hs/tributary/core/types"
)

// slidingSyncPath is simplified sliding sync (MSC4186) under the unstable
// prefix Synapse and Element X use.
const slidingSyncPath = "/_matrix/client/unstable/org.matrix.simplified_msc3575/sync"

func (a *API) registerSliding(r gin.IRouter, auth gin.HandlerFunc) {
	r.POST(slidingSyncPath, auth, a.slidingSync)
}

// POST /_matrix/client/unstable/org.matrix.simplified_msc3575/sync
func (a *API) slidingSync(c *gin.Context) {
	p := httpx.PrincipalOf(c)
	ctx := c.Request.Context()
	var timeout time.Duration
	if t := c.Query("timeout"); t != "" {
		ms, err := strconv.ParseInt(t, 10, 64)
		if err != nil || ms < 0 {
			httpx.Fail(c, types.InvalidParam("timeout must be a non-negative number of milliseconds"))
			return
		}
		timeout = time.Duration(ms) * time.Millisecond
	}
	req := &tsync.SlidingRequest{User: p.UserID, DeviceID: p.DeviceID, Pos: c.Query("pos"), Timeout: timeout}
	if err := httpx.DecodeOptionalJSON(c, &req.Body); err != nil {
		httpx.Fail(c, err)
		return
	}
	resp, err := a.sync_.SlidingSync(ctx, req)
	if err != nil {
		if ctx.Err() != nil {
			return // the client went away
		}
		httpx.Fail(c, err)
		return
	}
	httpx.OK(c, resp)
}
