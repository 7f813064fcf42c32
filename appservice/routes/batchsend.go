package routes

import (
	"strings"

	"github.com/gin-gonic/gin"
	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/core/bridging"
	"github.com/tributary-hs/tributary/core/httpx"
	"github.com/tributary-hs/tributary/core/types"
)

// batchSendPath is Beeper's batch send (com.beeper.batch_sending), which
// mautrix bridges use to backfill history.
const batchSendPath = "/_matrix/client/unstable/com.beeper.backfill/rooms/:roomId/batch_send"

// POST /_matrix/client/unstable/com.beeper.backfill/rooms/{roomId}/batch_send
func (a *API) batchSend(c *gin.Context) {
	roomID := c.Param("roomId")
	if !strings.HasPrefix(roomID, "!") || len(roomID) > 255 {
		httpx.Fail(c, types.InvalidParam("Invalid room ID %q", roomID))
		return
	}
	var req bridging.BatchRequest
	if err := httpx.DecodeEventJSON(c, &req); err != nil {
		httpx.Fail(c, err)
		return
	}
	ids, err := a.bridging.BatchSend(c.Request.Context(), httpx.PrincipalOf(c).AppServiceID, id.RoomID(roomID), &req)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	httpx.OK(c, gin.H{"event_ids": ids})
}
