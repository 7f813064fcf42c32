package admin

import (
	"context"
	"encoding/json"
	"encoding/json/jsontext"
	"net/http"
	"sync"

	"github.com/gin-gonic/gin"
	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/core/httpx"
	"github.com/tributary-hs/tributary/core/rooms"
	"github.com/tributary-hs/tributary/core/types"
	"github.com/tributary-hs/tributary/core/users"
)

// Notices sends server notices (Synapse's admin API
// /_synapse/admin/v1/send_server_notice): messages from a system user in a
// notices room per user, created on the first notice, with the user
// invited and the room tagged m.server_notice for them. A user who left
// their notices room gets a new one with the next notice.
type Notices struct {
	Users *users.Service
	Rooms *rooms.Service
	// Localpart and RoomName configure the system user and the rooms.
	Localpart string
	RoomName  string

	mu sync.Mutex // one notices room per user, even for concurrent notices
}

// noticeRoomType is the system user's account data naming each user's
// notices room ({"rooms": {user: room}}).
const noticeRoomType = "org.tributary.server_notice_rooms"

// Send posts content (of evType, m.room.message by default) to the user's
// notices room; txnID, when set, makes retries of one request idempotent.
func (n *Notices) Send(ctx context.Context, user id.UserID, evType string, content jsontext.Value, txnID string) (id.EventID, error) {
	if user.Homeserver() != n.Users.ServerName() {
		return "", types.InvalidParam("Server notices can only be sent to local users")
	}
	if _, err := n.Users.GetAccount(ctx, user); err != nil {
		return "", err
	}
	system, err := n.Users.EnsureSystemUser(ctx, n.Localpart)
	if err != nil {
		return "", err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	roomID, err := n.room(ctx, system, user)
	if err != nil {
		return "", err
	}
	if evType == "" {
		evType = "m.room.message"
	}
	return n.Rooms.Send(ctx, &rooms.SendRequest{RoomID: roomID, Sender: system, Type: evType, Content: content,
		TxnID: txnID})
}

// room finds the user's notices room, making one when there is none they
// are in or invited to.
func (n *Notices) room(ctx context.Context, system, user id.UserID) (id.RoomID, error) {
	var index struct {
		Rooms map[id.UserID]id.RoomID `json:"rooms"`
	}
	if raw, err := n.Users.GetAccountData(ctx, system, system, "", noticeRoomType); err == nil {
		_ = json.Unmarshal(raw, &index)
	}
	if index.Rooms == nil {
		index.Rooms = map[id.UserID]id.RoomID{}
	}
	if r, ok := index.Rooms[user]; ok {
		if m, _, err := n.Rooms.Membership(ctx, r, user); err != nil {
			return "", err
		} else if m == "join" || m == "invite" {
			return r, nil
		}
	}
	name := n.RoomName
	// Only the server speaks in it: the user may read and leave.
	override := map[string]jsontext.Value{"events_default": jsontext.Value("100"), "invite": jsontext.Value("100")}
	roomID, err := n.Rooms.CreateRoom(ctx, &rooms.CreateRequest{Creator: system, Preset: "private_chat", Name: &name,
		Invite: []id.UserID{user}, PowerOverride: override})
	if err != nil {
		return "", err
	}
	tag, _ := json.Marshal(map[string]any{"tags": map[string]any{"m.server_notice": map[string]any{}}})
	if err := n.Users.SetSystemAccountData(ctx, user, roomID, "m.tag", tag); err != nil {
		return "", err
	}
	index.Rooms[user] = roomID
	raw, _ := json.Marshal(index)
	if err := n.Users.SetAccountData(ctx, system, system, "", noticeRoomType, raw); err != nil {
		return "", err
	}
	return roomID, nil
}

// noticeBody is the body of POST /_synapse/admin/v1/send_server_notice.
type noticeBody struct {
	UserID  id.UserID      `json:"user_id"`
	Type    string         `json:"type"`
	Content jsontext.Value `json:"content"`
}

// POST /_synapse/admin/v1/send_server_notice and
// PUT /_synapse/admin/v1/send_server_notice/{txnId}
func (a *API) sendServerNotice(c *gin.Context) {
	if a.notices == nil {
		httpx.Fail(c, types.NewError(http.StatusBadRequest, types.CodeUnknown, "Server notices are not enabled"))
		return
	}
	var body noticeBody
	if err := httpx.DecodeJSON(c, &body); err != nil {
		httpx.Fail(c, err)
		return
	}
	if body.UserID == "" || len(body.Content) == 0 {
		httpx.Fail(c, types.MissingParam("user_id and content are required"))
		return
	}
	txnID := c.Param("txnId")
	if txnID != "" {
		txnID = "server-notice-" + httpx.PrincipalOf(c).UserID.String() + "-" + txnID
	}
	eventID, err := a.notices.Send(c.Request.Context(), body.UserID, body.Type, body.Content, txnID)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	httpx.OK(c, gin.H{"event_id": eventID})
}
