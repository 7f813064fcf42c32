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
		for _, p := range c.Params {
			if err := checkParam(p.Key, p.Value, serverName); err != nil {
				Fail(c, err)
				return
			}
		}
		c.Next()
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
