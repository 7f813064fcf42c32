package routes

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/tributary-hs/tributary/appservice/registry"
	"github.com/tributary-hs/tributary/core/httpx"
	"github.com/tributary-hs/tributary/core/types"
)

// registerThirdParty adds the third-party lookups, answered by the
// appservices that declare the protocol (client-server API, "Third-party
// networks").
func (a *API) registerThirdParty(r gin.IRouter) {
	auth := httpx.RequireAuth(a.auth)
	for _, p := range []string{"/_matrix/client/v3", "/_matrix/client/r0"} {
		g := r.Group(p+"/thirdparty", auth)
		g.GET("/protocols", a.protocols)
		g.GET("/protocol/:protocol", a.protocol)
		g.GET("/location/:protocol", a.lookup("location"))
		g.GET("/user/:protocol", a.lookup("user"))
		g.GET("/location", a.reverse("location", "alias"))
		g.GET("/user", a.reverse("user", "userid"))
	}
}

// fetch GETs a third-party path of an appservice and decodes its JSON.
func (a *API) fetch(ctx context.Context, as *registry.AppService, path string, query url.Values) (json.RawMessage, bool) {
	u := strings.TrimSuffix(as.Reg.URL, "/") + "/_matrix/app/v1/thirdparty/" + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, false
	}
	req.Header.Set("Authorization", "Bearer "+as.Reg.ServerToken)
	resp, err := a.client.Do(req)
	if err != nil {
		return nil, false
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil || resp.StatusCode/100 != 2 || !json.Valid(raw) {
		return nil, false
	}
	return raw, true
}

func (a *API) owners(protocol string) []*registry.AppService {
	var out []*registry.AppService
	for _, as := range a.registry.All() {
		if as.Reg.URL != "" && slices.Contains(as.Reg.Protocols, protocol) {
			out = append(out, as)
		}
	}
	return out
}

// GET /_matrix/client/v3/thirdparty/protocols
func (a *API) protocols(c *gin.Context) {
	out := map[string]json.RawMessage{}
	for _, as := range a.registry.All() {
		for _, proto := range as.Reg.Protocols {
			if _, done := out[proto]; done || as.Reg.URL == "" {
				continue
			}
			if raw, ok := a.fetch(c.Request.Context(), as, "protocol/"+url.PathEscape(proto), nil); ok {
				out[proto] = raw
			}
		}
	}
	httpx.OK(c, out)
}

// GET /_matrix/client/v3/thirdparty/protocol/{protocol}
func (a *API) protocol(c *gin.Context) {
	proto := c.Param("protocol")
	for _, as := range a.owners(proto) {
		if raw, ok := a.fetch(c.Request.Context(), as, "protocol/"+url.PathEscape(proto), nil); ok {
			c.Data(http.StatusOK, "application/json", raw)
			return
		}
	}
	httpx.Fail(c, types.NotFound("Unknown protocol %q", proto))
}

// GET /_matrix/client/v3/thirdparty/{location,user}/{protocol}
func (a *API) lookup(kind string) gin.HandlerFunc {
	return func(c *gin.Context) {
		proto := c.Param("protocol")
		owners := a.owners(proto)
		if len(owners) == 0 {
			httpx.Fail(c, types.NotFound("Unknown protocol %q", proto))
			return
		}
		a.collect(c, owners, kind+"/"+url.PathEscape(proto), c.Request.URL.Query())
	}
}

// GET /_matrix/client/v3/thirdparty/location?alias= and /thirdparty/user?userid=
func (a *API) reverse(kind, param string) gin.HandlerFunc {
	return func(c *gin.Context) {
		v := c.Query(param)
		if v == "" {
			httpx.Fail(c, types.MissingParam("%s is required", param))
			return
		}
		var all []*registry.AppService
		for _, as := range a.registry.All() {
			if as.Reg.URL != "" && len(as.Reg.Protocols) > 0 {
				all = append(all, as)
			}
		}
		a.collect(c, all, kind, url.Values{param: {v}})
	}
}

// collect merges the lists the appservices answer.
func (a *API) collect(c *gin.Context, from []*registry.AppService, path string, query url.Values) {
	out := []json.RawMessage{}
	for _, as := range from {
		raw, ok := a.fetch(c.Request.Context(), as, path, query)
		if !ok {
			continue
		}
		var list []json.RawMessage
		if json.Unmarshal(raw, &list) == nil {
			out = append(out, list...)
		}
	}
	httpx.OK(c, out)
}
