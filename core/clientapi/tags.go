package clientapi

import (
	"encoding/json"

	"github.com/gin-gonic/gin"
	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/core/httpx"
	"github.com/tributary-hs/tributary/core/types"
)

// Room tags are the m.tag room account data (client-server API, "Room tagging").
func (a *API) registerTags(g gin.IRouter, auth gin.HandlerFunc) {
	g.GET("/user/:userId/rooms/:roomId/tags", auth, a.getTags)
	g.PUT("/user/:userId/rooms/:roomId/tags/:tag", auth, a.putTag)
	g.DELETE("/user/:userId/rooms/:roomId/tags/:tag", auth, a.deleteTag)
}

type tagContent struct {
	Tags map[string]map[string]any `json:"tags"`
}

// readTags returns the user's tags of a room (none when unset).
func (a *API) readTags(c *gin.Context) (*tagContent, error) {
	raw, err := a.users.GetAccountData(c.Request.Context(), httpx.PrincipalOf(c).UserID, userParam(c),
		id.RoomID(c.Param("roomId")), "m.tag")
	tags := &tagContent{Tags: map[string]map[string]any{}}
	if me, ok := types.AsError(err); ok && me.Code == types.CodeNotFound {
		return tags, nil
	} else if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(raw, tags); err != nil || tags.Tags == nil {
		tags.Tags = map[string]map[string]any{}
	}
	return tags, nil
}

func (a *API) writeTags(c *gin.Context, tags *tagContent) error {
	raw, err := json.Marshal(tags)
	if err != nil {
		return err
	}
	return a.users.SetAccountData(c.Request.Context(), httpx.PrincipalOf(c).UserID, userParam(c),
		id.RoomID(c.Param("roomId")), "m.tag", raw)
}

// GET /_matrix/client/v3/user/{userId}/rooms/{roomId}/tags
func (a *API) getTags(c *gin.Context) {
	tags, err := a.readTags(c)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	httpx.OK(c, tags)
}

// PUT /_matrix/client/v3/user/{userId}/rooms/{roomId}/tags/{tag}
func (a *API) putTag(c *gin.Context) {
	var body map[string]any
	if err := httpx.DecodeJSON(c, &body); err != nil {
		httpx.Fail(c, err)
		return
	}
	if o, ok := body["order"]; ok {
		if f, isNum := o.(float64); !isNum || f < 0 || f > 1 {
			httpx.Fail(c, types.BadJSON("order must be a number between 0 and 1"))
			return
		}
	}
	tag := c.Param("tag")
	if tag == "" || len(tag) > 255 {
		httpx.Fail(c, types.InvalidParam("Tags are 1 to 255 bytes"))
		return
	}
	tags, err := a.readTags(c)
	if err == nil {
		tags.Tags[tag] = body
		err = a.writeTags(c, tags)
	}
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	httpx.OK(c, httpx.Empty)
}

// DELETE /_matrix/client/v3/user/{userId}/rooms/{roomId}/tags/{tag}
func (a *API) deleteTag(c *gin.Context) {
	tags, err := a.readTags(c)
	if err == nil {
		delete(tags.Tags, c.Param("tag"))
		err = a.writeTags(c, tags)
	}
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	httpx.OK(c, httpx.Empty)
}
