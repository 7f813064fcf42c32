package clientapi

import (
	"bytes"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"
	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/core/httpx"
	tsync "github.com/tributary-hs/tributary/core/sync"
	"github.com/tributary-hs/tributary/core/types"
)

func (a *API) registerSync(g gin.IRouter, auth gin.HandlerFunc) {
	g.GET("/sync", auth, a.sync)
	g.POST("/user/:userId/filter", auth, a.createFilter)
	g.GET("/user/:userId/filter/:filterId", auth, a.getFilter)
}

// GET /_matrix/client/v3/sync
//
// A long-poll parks in this handler: its frame stays small, the request
// is read in syncRequest and the answer encoded where it is built (see
// tsync.Service.Sync).
//
// A long-poll (a since token and a timeout) runs in the sync service's
// lane (tsync.Lane): it looks for news and builds its answer among a few
// at a time, leaving its place while it waits and before it writes.
func (a *API) sync(c *gin.Context) {
	ctx := c.Request.Context()
	// The query is parsed here rather than by gin's c.Query, whose parsed
	// copy stays on the gin.Context while the long-poll is parked (thousands
	// at once).
	q := c.Request.URL.Query()
	req, done, err := a.syncRequest(c, q)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	defer done() // the user stays connected while the long-poll runs
	// Not before: marking a user online may wait for the database's
	// writer, which the lane's places should not (unless the request came
	// with its place: see LongPollHead).
	var lane *tsync.Lane
	switch {
	case httpx.TakeLanePlace(ctx):
		lane = a.sync_.HeldLane()
	case req.Since != "" && req.Timeout > 0:
		if lane, err = a.sync_.EnterLane(ctx); err != nil {
			return // the client went away
		}
	}
	if lane != nil {
		defer lane.Leave()
		req.Lane = lane
	}
	resp, err := a.sync_.Sync(ctx, req)
	if err != nil {
		if ctx.Err() != nil {
			return // the client went away
		}
		httpx.Fail(c, err)
		return
	}
	// Written after leaving: a client that does not read its answer
	// must not keep a place.
	lane.Leave()
	httpx.OKJSON(c, resp.JSON())
}

// syncRequest reads a /sync request's parameters and marks the user
// active; done ends the activity.
func (a *API) syncRequest(c *gin.Context, q url.Values) (*tsync.Request, func(), error) {
	p := httpx.PrincipalOf(c)
	ctx := c.Request.Context()
	var timeout time.Duration
	if t := q.Get("timeout"); t != "" {
		ms, err := strconv.ParseInt(t, 10, 64)
		if err != nil || ms < 0 {
			return nil, nil, types.InvalidParam("timeout must be a non-negative number of milliseconds")
		}
		timeout = time.Duration(ms) * time.Millisecond
	}
	fullState := false
	switch q.Get("full_state") {
	case "", "false":
	case "true":
		fullState = true
	default:
		return nil, nil, types.InvalidParam("full_state must be true or false")
	}
	// use_state_after (spec v1.16) or MSC4222's unstable name; the answer
	// names state_after as the request named the parameter.
	stateAfter := tsync.NoStateAfter
	for _, p := range []struct {
		name string
		mode tsync.StateAfterMode
	}{{"org.matrix.msc4222.use_state_after", tsync.StateAfterUnstable}, {"use_state_after", tsync.StateAfterStable}} {
		switch q.Get(p.name) {
		case "", "false":
		case "true":
			stateAfter = p.mode
		default:
			return nil, nil, types.InvalidParam("%s must be true or false", p.name)
		}
	}
	setPresence := "online"
	if vs, ok := q["set_presence"]; ok {
		setPresence = vs[0]
	}
	switch setPresence {
	case "online", "offline", "unavailable":
	default:
		return nil, nil, types.InvalidParam("set_presence must be online, offline or unavailable")
	}
	filter, err := a.sync_.ResolveFilter(ctx, p.UserID, q.Get("filter"))
	if err != nil {
		return nil, nil, err
	}
	// Syncing marks the user online (or unavailable) unless the client asks
	// not to; "offline" leaves their presence as it is.
	done := func() {}
	if setPresence != "offline" {
		if done, err = a.eph.MarkActive(ctx, p.UserID, setPresence); err != nil {
			return nil, nil, err
		}
	}
	return &tsync.Request{User: p.UserID, DeviceID: p.DeviceID, Since: q.Get("since"), Timeout: timeout,
		FullState: fullState, Filter: filter, StateAfter: stateAfter, Encode: true}, done, nil
}

// POST /_matrix/client/v3/user/{userId}/filter
func (a *API) createFilter(c *gin.Context) {
	body, err := httpx.ReadBody(c)
	if err == nil {
		var obj map[string]any
		err = httpx.Unmarshal(body, &obj)
	}
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	fid, err := a.sync_.CreateFilter(c.Request.Context(), httpx.PrincipalOf(c).UserID, id.UserID(c.Param("userId")), body)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	httpx.OK(c, gin.H{"filter_id": fid})
}

// GET /_matrix/client/v3/user/{userId}/filter/{filterId}
func (a *API) getFilter(c *gin.Context) {
	raw, err := a.sync_.GetFilter(c.Request.Context(), httpx.PrincipalOf(c).UserID, id.UserID(c.Param("userId")),
		c.Param("filterId"))
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	c.Data(http.StatusOK, "application/json", raw)
}

// LongPollHead picks, for httpx.LaneListener, the requests that queue for
// the sync service's lane before they are read: /sync long-polls (a since
// token and a timeout other than 0), from their request line. It reads
// the raw query and allocates nothing (it runs for every request arriving
// while the lane is busy); the handler reads the query for real.
func LongPollHead(head []byte) bool {
	line, _, _ := bytes.Cut(head, []byte("\r\n"))
	rest, ok := bytes.CutPrefix(line, []byte("GET /_matrix/client/"))
	if !ok {
		return false
	}
	target, _, _ := bytes.Cut(rest, []byte(" "))
	path, query, _ := bytes.Cut(target, []byte("?"))
	if string(path) != "v3/sync" && string(path) != "r0/sync" {
		return false
	}
	since, timeout := false, false
	for len(query) > 0 {
		var param []byte
		param, query, _ = bytes.Cut(query, []byte("&"))
		name, value, _ := bytes.Cut(param, []byte("="))
		switch string(name) {
		case "since":
			since = len(value) > 0
		case "timeout":
			timeout = positiveNumber(value)
		}
	}
	return since && timeout
}

// positiveNumber: digits (at most 12), not all zeros.
func positiveNumber(b []byte) bool {
	nonZero := false
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
		nonZero = nonZero || c != '0'
	}
	return nonZero && len(b) <= 12
}
