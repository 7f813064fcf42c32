package clientapi

import (
	"encoding/json/jsontext"
	"log/slog"

	"github.com/gin-gonic/gin"
	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/core/events"
	"github.com/tributary-hs/tributary/core/httpx"
	"github.com/tributary-hs/tributary/core/rooms"
	"github.com/tributary-hs/tributary/core/types"
)

// batchSendPath is Beeper's batch send (com.beeper.batch_sending), which
// mautrix bridges use to backfill history.
const batchSendPath = "/_matrix/client/unstable/com.beeper.backfill/rooms/:roomId/batch_send"

func (a *API) registerBatchSend(r gin.IRouter, auth gin.HandlerFunc) {
	r.POST(batchSendPath, auth, a.batchSend)
}

type batchEvent struct {
	// EventID is the ID the appservice chose (mautrix bridges do); it
	// becomes an alias of the real event.
	EventID        id.EventID     `json:"event_id,omitempty"`
	Type           string         `json:"type"`
	StateKey       *string        `json:"state_key,omitempty"`
	Sender         id.UserID      `json:"sender"`
	Content        jsontext.Value `json:"content"`
	OriginServerTS int64          `json:"origin_server_ts"`
}

type batchSendRequest struct {
	Forward             bool          `json:"forward"`
	ForwardIfNoMessages bool          `json:"forward_if_no_messages"`
	SendNotification    bool          `json:"send_notification"`
	MarkReadBy          id.UserID     `json:"mark_read_by"`
	Events              []*batchEvent `json:"events"`
}

// POST /_matrix/client/unstable/com.beeper.backfill/rooms/{roomId}/batch_send
func (a *API) batchSend(c *gin.Context) {
	roomID, ok := roomParam(c)
	if !ok {
		return
	}
	p := httpx.PrincipalOf(c)
	if p.AppServiceID == "" {
		httpx.Fail(c, types.Forbidden("Only application services may batch send"))
		return
	}
	var req batchSendRequest
	if err := httpx.DecodeJSON(c, &req); err != nil {
		httpx.Fail(c, err)
		return
	}
	ctx := c.Request.Context()
	// A backward batch goes before the timeline, unless it asked to go
	// forward into a room that has no messages yet.
	history := !req.Forward
	if history && req.ForwardIfNoMessages {
		has, err := a.rooms.HasMessages(ctx, roomID)
		if err != nil {
			httpx.Fail(c, err)
			return
		}
		history = has
	}
	if req.MarkReadBy != "" {
		// Bridges mark backfilled history read for the real user whose chat
		// it is (not one of their own users), often still only invited.
		if ok, err := a.eph.CanBeMarkedRead(ctx, roomID, req.MarkReadBy); err != nil {
			httpx.Fail(c, err)
			return
		} else if !ok {
			httpx.Fail(c, types.Forbidden("mark_read_by: %s is not in the room", req.MarkReadBy))
			return
		}
	}
	protos := make([]*events.Proto, len(req.Events))
	aliases := make([]id.EventID, len(req.Events))
	for i, ev := range req.Events {
		if ev == nil || ev.Type == "" || ev.Sender == "" {
			httpx.Fail(c, types.BadJSON("Event %d needs a type and a sender", i))
			return
		}
		if !a.users.AppServiceOwns(p.AppServiceID, string(ev.Sender)) {
			httpx.Fail(c, types.Forbidden("Event %d: %s is not in the application service's namespace", i, ev.Sender))
			return
		}
		if len(ev.Content) == 0 || ev.Content.Kind() != '{' {
			httpx.Fail(c, types.BadJSON("Event %d needs an object as content", i))
			return
		}
		if ev.OriginServerTS < 0 {
			httpx.Fail(c, types.InvalidParam("Event %d: origin_server_ts must not be negative", i))
			return
		}
		protos[i] = &events.Proto{Type: ev.Type, StateKey: ev.StateKey, Sender: ev.Sender, Content: ev.Content,
			OriginServerTS: ev.OriginServerTS}
		aliases[i] = ev.EventID
	}
	ids, err := a.rooms.BatchSend(ctx, roomID, protos, rooms.BatchOptions{Notify: req.SendNotification, History: history,
		Aliases: aliases})
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	if req.MarkReadBy != "" && len(ids) > 0 {
		// The events are in: a receipt that fails must not make the
		// bridge send them again.
		if err := a.eph.MarkReadBy(ctx, roomID, req.MarkReadBy, ids[len(ids)-1]); err != nil {
			slog.WarnContext(ctx, "batch send: read receipt failed", "room_id", roomID, "error", err)
		}
	}
	httpx.OK(c, gin.H{"event_ids": ids})
}
