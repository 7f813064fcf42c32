package httpx

import (
	"strings"

	"github.com/gin-gonic/gin"
	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/core/types"
)

// CheckParams refuses, before any handler reads them, path parameters that
// break the spec's grammar for what they name (by route parameter name):
// room, event and user IDs, aliases, event types and state keys. It runs
// after TextParams (UTF-8 without NUL).
func CheckParams(serverName string) gin.HandlerFunc {
	return func(c *gin.Context) {
		adminAPI := strings.HasPrefix(c.FullPath(), "/_synapse/admin/")
		for _, p := range c.Params {
			key := p.Key
			if adminAPI && key == "roomId" && strings.HasPrefix(p.Value, "#") {
				// Some of Synapse's admin paths take a room ID or an alias
				// where others take an ID, and gin allows one parameter
				// name per path segment: the handlers that take only an
				// ID refuse an alias.
				key = "roomIdOrAlias"
			}
			if err := checkParam(key, p.Value, serverName); err != nil {
				Fail(c, err)
				return
			}
		}
	}
}

func checkParam(key, v, serverName string) error {
	switch key {
	case "roomId":
		return types.CheckRoomID(id.RoomID(v))
	case "roomIdOrAlias":
		if strings.HasPrefix(v, "#") {
			return types.CheckRoomAlias(id.RoomAlias(v))
		}
		return types.CheckRoomID(id.RoomID(v))
	case "alias":
		return types.CheckRoomAlias(id.RoomAlias(v))
	case "eventId":
		return types.CheckEventID(id.EventID(v))
	case "userId":
		return types.CheckUserID(id.UserID(v), serverName)
	case "eventType", "type":
		return types.CheckEventType(v)
	case "stateKey":
		return types.CheckStateKey(strings.TrimPrefix(v, "/"))
	case "deviceId":
		if len(v) > 255 {
			return types.InvalidParam("Path parameter %s is longer than 255 bytes", key)
		}
	}
	return nil
}
