package admin

import (
	"encoding/json"
	"sync/atomic"

	"github.com/gin-gonic/gin"

	"github.com/tributary-hs/tributary/core/httpx"
	"github.com/tributary-hs/tributary/core/types"
	"github.com/tributary-hs/tributary/core/users"
)

// GET /_synapse/admin/v1/users/{userId}/accountdata
func (a *API) userAccountData(c *gin.Context) {
	u, ok := a.localUser(c)
	if !ok {
		return
	}
	entries, err := a.users.AllAccountData(c.Request.Context(), u)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	global := map[string]json.RawMessage{}
	perRoom := map[string]map[string]json.RawMessage{}
	for _, e := range entries {
		if e.RoomID == "" {
			global[e.Type] = e.Content
			continue
		}
		if perRoom[string(e.RoomID)] == nil {
			perRoom[string(e.RoomID)] = map[string]json.RawMessage{}
		}
		perRoom[string(e.RoomID)][e.Type] = e.Content
	}
	a.audit(c, "read account data", "user", u)
	httpx.OK(c, gin.H{"account_data": gin.H{"global": global, "rooms": perRoom}})
}

// overrideJSON is a rate-limit override as Synapse's admin API shows it.
func overrideJSON(o *users.RateOverride) gin.H {
	if o == nil {
		return gin.H{}
	}
	return gin.H{"messages_per_second": o.PerSecond, "burst_count": o.Burst}
}

// GET /_synapse/admin/v1/users/{userId}/override_ratelimit
func (a *API) getRateOverride(c *gin.Context) {
	u, ok := a.localUser(c)
	if !ok {
		return
	}
	o, err := a.users.RateOverride(c.Request.Context(), u)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	httpx.OK(c, overrideJSON(o))
}

// POST /_synapse/admin/v1/users/{userId}/override_ratelimit
// {"messages_per_second", "burst_count"}: both 0 (the default) is no limit.
func (a *API) setRateOverride(c *gin.Context) {
	u, ok := a.localUser(c)
	if !ok {
		return
	}
	var raw map[string]json.RawMessage
	if err := httpx.DecodeOptionalJSON(c, &raw); err != nil {
		httpx.Fail(c, err)
		return
	}
	o := &users.RateOverride{}
	for key, dst := range map[string]*int64{"messages_per_second": &o.PerSecond, "burst_count": &o.Burst} {
		v, ok := raw[key]
		if !ok {
			continue
		}
		if err := json.Unmarshal(v, dst); err != nil || *dst < 0 {
			httpx.Fail(c, types.InvalidParam("%s must be a positive integer", key))
			return
		}
	}
	if err := a.users.SetRateOverride(c.Request.Context(), u, o); err != nil {
		httpx.Fail(c, err)
		return
	}
	a.audit(c, "override rate limit", "user", u, "messages_per_second", o.PerSecond, "burst_count", o.Burst)
	httpx.OK(c, overrideJSON(o))
}

// DELETE /_synapse/admin/v1/users/{userId}/override_ratelimit
func (a *API) deleteRateOverride(c *gin.Context) {
	u, ok := a.localUser(c)
	if !ok {
		return
	}
	if err := a.users.SetRateOverride(c.Request.Context(), u, nil); err != nil {
		httpx.Fail(c, err)
		return
	}
	a.audit(c, "remove rate limit override", "user", u)
	httpx.OK(c, httpx.Empty)
}

// POST and DELETE /_synapse/admin/v1/users/{userId}/shadow_ban
func (a *API) shadowBan(on bool) gin.HandlerFunc {
	return func(c *gin.Context) {
		u, ok := a.localUser(c)
		if !ok {
			return
		}
		if err := a.users.SetShadowBanned(c.Request.Context(), u, on); err != nil {
			httpx.Fail(c, err)
			return
		}
		a.audit(c, "shadow ban", "user", u, "banned", on)
		httpx.OK(c, httpx.Empty)
	}
}

// backgroundUpdates is whether background updates may run. Tributary has
// none: its schema migrations run, whole, before the server starts
// serving, so there is never an update in progress to report.
type backgroundUpdates struct{ paused atomic.Bool }

// GET /_synapse/admin/v1/background_updates/enabled
func (a *API) backgroundEnabled(c *gin.Context) {
	httpx.OK(c, gin.H{"enabled": !a.background.paused.Load()})
}

// POST /_synapse/admin/v1/background_updates/enabled {"enabled": bool}
func (a *API) setBackgroundEnabled(c *gin.Context) {
	var body struct {
		Enabled *bool `json:"enabled"`
	}
	if err := httpx.DecodeJSON(c, &body); err != nil {
		httpx.Fail(c, err)
		return
	}
	if body.Enabled == nil {
		httpx.Fail(c, types.MissingParam("Missing param enabled"))
		return
	}
	a.background.paused.Store(!*body.Enabled)
	a.audit(c, "background updates", "enabled", *body.Enabled)
	httpx.OK(c, gin.H{"enabled": *body.Enabled})
}

// GET /_synapse/admin/v1/background_updates/status: no update is ever in
// progress (see backgroundUpdates).
func (a *API) backgroundStatus(c *gin.Context) {
	httpx.OK(c, gin.H{"enabled": !a.background.paused.Load(), "current_updates": gin.H{}})
}
