package clientapi

import (
	"encoding/json"
	"slices"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"
	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/core/delayed"
	"github.com/tributary-hs/tributary/core/httpx"
	"github.com/tributary-hs/tributary/core/types"
)

// delayParam is the query parameter that makes a send a delayed event (MSC4140).
const delayParam = "org.matrix.msc4140.delay"

// registerDelayed adds the MSC4140 management endpoints: the older one
// with an action in the body, for the owner, and the per-action paths of
// the current proposal, which need no login (the delay ID is the
// capability: a call client's helper restarts it without the user's token).
func (a *API) registerDelayed(r gin.IRouter, auth gin.HandlerFunc) {
	if a.delayed == nil {
		return
	}
	g := r.Group("/_matrix/client/unstable/org.matrix.msc4140")
	g.GET("/delayed_events", auth, a.delayedMgmtLimit, a.listDelayed)
	g.POST("/delayed_events/:delayId", auth, a.delayedMgmtLimit, a.updateDelayed)
	g.POST("/delayed_events/:delayId/:action", httpx.OptionalAuth(a.auth), a.delayedMgmtLimit, a.delayedAction)
}

// delayedMgmtLimit limits managing delayed events per user, or per client
// address without a login.
func (a *API) delayedMgmtLimit(c *gin.Context) {
	key := "ip:" + c.ClientIP()
	if p := httpx.PrincipalOf(c); p != nil {
		key = string(p.UserID)
	}
	if limited(c, a.limits.DelayedManagement, key) {
		return
	}
	c.Next()
}

// delayParamValue reads ?org.matrix.msc4140.delay: ok false without one.
func delayParamValue(c *gin.Context) (time.Duration, bool, error) {
	raw, ok := c.GetQuery(delayParam)
	if !ok {
		return 0, false, nil
	}
	ms, err := strconv.ParseInt(raw, 10, 64)
	if err != nil || ms < 0 || ms > int64(365*24*time.Hour/time.Millisecond) {
		return 0, true, types.InvalidParam("%s must be a delay in milliseconds", delayParam)
	}
	return time.Duration(ms) * time.Millisecond, true, nil
}

// scheduleDelayed answers PUT /send and /state with a delay: the event is
// kept to be sent later and its delay ID answered instead of an event ID.
func (a *API) scheduleDelayed(c *gin.Context, roomID id.RoomID, stateKey *string, txnID string, content []byte,
	delay time.Duration) {
	if a.delayed == nil {
		httpx.Fail(c, types.NewError(400, types.CodeUnknown, "Delayed events are not supported on this server").
			With("org.matrix.msc4140.errcode", "M_MAX_DELAY_UNSUPPORTED"))
		return
	}
	delayID, err := a.delayed.Schedule(c.Request.Context(), httpx.PrincipalOf(c), delayed.ScheduleRequest{
		RoomID: roomID, Type: c.Param("eventType"), StateKey: stateKey, Content: content, TxnID: txnID, Delay: delay})
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	httpx.OK(c, gin.H{"delay_id": delayID})
}

// delayedJSON is a pending delayed event as GET /delayed_events lists it.
type delayedJSON struct {
	DelayID      string          `json:"delay_id"`
	RoomID       id.RoomID       `json:"room_id"`
	Type         string          `json:"type"`
	StateKey     *string         `json:"state_key,omitempty"`
	Delay        int64           `json:"delay"`
	RunningSince int64           `json:"running_since"`
	Content      json.RawMessage `json:"content"`
}

func toDelayedJSON(evs []*delayed.Event) []delayedJSON {
	out := make([]delayedJSON, 0, len(evs))
	for _, e := range evs {
		out = append(out, delayedJSON{DelayID: e.DelayID, RoomID: e.RoomID, Type: e.Type, StateKey: e.StateKey,
			Delay: e.DelayMS, RunningSince: e.RunningSince, Content: e.Content})
	}
	return out
}

// delayedPage is how many delayed events one GET /delayed_events lists.
const delayedPage = 100

// GET /_matrix/client/unstable/org.matrix.msc4140/delayed_events
//
// The caller's pending ("scheduled") delayed events, a page at a time
// (from / next_batch), optionally only those named by delay_id. Sent and
// cancelled events are not kept, so "finalised" is always empty.
func (a *API) listDelayed(c *gin.Context) {
	q := c.Request.URL.Query()
	statuses := q["status"]
	for _, st := range statuses {
		if st != "scheduled" && st != "finalised" {
			httpx.Fail(c, types.InvalidParam("status must be scheduled or finalised"))
			return
		}
	}
	want := q["delay_id"]
	user := httpx.PrincipalOf(c).UserID
	from := q.Get("from")
	var page []*delayed.Event
	next := ""
	for {
		evs, more, err := a.delayed.List(c.Request.Context(), user, from, delayedPage)
		if err != nil {
			httpx.Fail(c, err)
			return
		}
		if len(want) == 0 {
			page, next = evs, more
			break
		}
		// Filtering by ID reads to the end: a user holds a bounded number.
		for _, e := range evs {
			if slices.Contains(want, e.DelayID) {
				page = append(page, e)
			}
		}
		if more == "" {
			break
		}
		from = more
	}
	scheduled := toDelayedJSON(page)
	if len(statuses) > 0 && !slices.Contains(statuses, "scheduled") {
		scheduled, next = []delayedJSON{}, ""
	}
	body := gin.H{"delayed_events": scheduled}
	if len(statuses) > 0 {
		body["scheduled"] = scheduled
		if slices.Contains(statuses, "finalised") {
			body["finalised"] = []any{}
		}
	}
	if next != "" {
		body["next_batch"] = next
	}
	httpx.OK(c, body)
}

// POST /_matrix/client/unstable/org.matrix.msc4140/delayed_events/{delayId}
// with {"action": "cancel" | "restart" | "send"}: the owner's own.
func (a *API) updateDelayed(c *gin.Context) {
	var body struct {
		Action *string `json:"action"`
	}
	if err := httpx.DecodeJSON(c, &body); err != nil {
		httpx.Fail(c, err)
		return
	}
	if body.Action == nil {
		httpx.Fail(c, types.MissingParam("'action' is missing"))
		return
	}
	a.applyDelayed(c, *body.Action, httpx.PrincipalOf(c).UserID)
}

// POST /_matrix/client/unstable/org.matrix.msc4140/delayed_events/{delayId}/{cancel,restart,send}
func (a *API) delayedAction(c *gin.Context) {
	switch c.Param("action") {
	case "cancel", "restart", "send":
	default:
		httpx.Fail(c, types.Unrecognized(404, "Unrecognized request"))
		return
	}
	a.applyDelayed(c, c.Param("action"), "")
}

// applyDelayed runs an action on a delayed event; owner "" lets anyone
// holding its delay ID.
func (a *API) applyDelayed(c *gin.Context, action string, owner id.UserID) {
	ctx, delayID := c.Request.Context(), c.Param("delayId")
	var err error
	switch action {
	case "cancel":
		err = a.delayed.Cancel(ctx, delayID, owner)
	case "restart":
		err = a.delayed.Restart(ctx, delayID, owner)
	case "send":
		err = a.delayed.SendNow(ctx, delayID, owner)
	default:
		err = types.InvalidParam("'action' is not one of 'cancel', 'restart', 'send'")
	}
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	httpx.OK(c, httpx.Empty)
}
