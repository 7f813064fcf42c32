package clientapi

import (
	"encoding/json"
	"maps"
	"slices"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/tributary-hs/tributary/core/httpx"
	"github.com/tributary-hs/tributary/core/rooms"
	"github.com/tributary-hs/tributary/core/types"
)

// Server-side search (client-server API, "Server Side Search").
func (a *API) registerSearch(g gin.IRouter, auth gin.HandlerFunc) {
	g.POST("/search", auth, a.search)
}

// searchCategory is the one category of search the spec defines.
const searchCategory = "room_events"

// POST /_matrix/client/v3/search
func (a *API) search(c *gin.Context) {
	var body struct {
		SearchCategories *map[string]json.RawMessage `json:"search_categories"`
	}
	if err := httpx.DecodeJSON(c, &body); err != nil {
		httpx.Fail(c, err)
		return
	}
	if body.SearchCategories == nil {
		httpx.Fail(c, types.MissingParam("search_categories is required"))
		return
	}
	cats := *body.SearchCategories
	for _, name := range slices.Sorted(maps.Keys(cats)) {
		if name != searchCategory {
			httpx.Fail(c, types.Unrecognized(400, "Unknown search category %q: the one category is %s", name, searchCategory))
			return
		}
	}
	raw, ok := cats[searchCategory]
	if !ok {
		httpx.OK(c, gin.H{"search_categories": gin.H{}})
		return
	}
	if !strings.HasPrefix(strings.TrimLeft(string(raw), " \t\r\n"), "{") {
		httpx.Fail(c, types.BadJSON("search_categories.%s must be an object", searchCategory))
		return
	}
	var criteria rooms.SearchCriteria
	if err := httpx.Unmarshal(raw, &criteria); err != nil {
		httpx.Fail(c, err)
		return
	}
	p := httpx.PrincipalOf(c)
	res, err := a.rooms.Search(c.Request.Context(), &rooms.SearchRequest{User: p.UserID, Device: p.DeviceID,
		NextBatch: c.Query("next_batch"), Criteria: &criteria})
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	httpx.OK(c, gin.H{"search_categories": gin.H{searchCategory: res}})
}
