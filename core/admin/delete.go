package admin

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/core/httpx"
	"github.com/tributary-hs/tributary/core/rooms"
	"github.com/tributary-hs/tributary/core/types"
)

// RoomDeleter deletes rooms (core/rooms.Service).
type RoomDeleter interface {
	DeleteRoom(ctx context.Context, req *rooms.DeleteRequest) (*rooms.DeleteResult, error)
}

// deletion is one asynchronous room deletion (v2), kept in memory: its
// status is lost with a restart (the deletion itself is not half done: a
// purge is one transaction).
type deletion struct {
	ID       string
	RoomID   id.RoomID
	Status   string // shutting_down, purging, complete, failed
	Error    string
	Result   *rooms.DeleteResult
	Finished time.Time
}

// deletions remembers the asynchronous deletions of the last day.
type deletions struct {
	mu   sync.Mutex
	byID map[string]*deletion
}

const keepDeletions = 24 * time.Hour

func (d *deletions) add(x *deletion) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.byID == nil {
		d.byID = map[string]*deletion{}
	}
	for k, old := range d.byID {
		if !old.Finished.IsZero() && time.Since(old.Finished) > keepDeletions {
			delete(d.byID, k)
		}
	}
	d.byID[x.ID] = x
}

func (d *deletions) update(fn func()) {
	d.mu.Lock()
	defer d.mu.Unlock()
	fn()
}

func (d *deletions) json(x *deletion) gin.H {
	out := gin.H{"delete_id": x.ID, "status": x.Status, "shutdown_room": x.Result}
	if x.Error != "" {
		out["error"] = x.Error
	}
	if x.Result == nil {
		out["shutdown_room"] = gin.H{"kicked_users": []id.UserID{}, "failed_to_kick_users": []id.UserID{},
			"local_aliases": []id.RoomAlias{}, "new_room_id": nil}
	}
	return out
}

// deleteBody is the body of both DELETE room endpoints.
type deleteBody struct {
	NewRoomUserID id.UserID `json:"new_room_user_id"`
	RoomName      string    `json:"room_name"`
	Message       string    `json:"message"`
	Block         bool      `json:"block"`
	Purge         *bool     `json:"purge"`
	ForcePurge    bool      `json:"force_purge"`
}

// deleteRequest reads the body and path of a room deletion.
func (a *API) deleteRequest(c *gin.Context) (RoomDeleter, *rooms.DeleteRequest, bool) {
	if a.opts.RoomDeleter == nil {
		httpx.Fail(c, types.NewError(http.StatusNotFound, types.CodeUnrecognized, "Unrecognized request"))
		return nil, nil, false
	}
	roomID, ok := roomParam(c)
	if !ok {
		return nil, nil, false
	}
	var body deleteBody
	if err := httpx.DecodeOptionalJSON(c, &body); err != nil {
		httpx.Fail(c, err)
		return nil, nil, false
	}
	req := &rooms.DeleteRequest{RoomID: roomID, Admin: httpx.PrincipalOf(c).UserID, RoomName: body.RoomName,
		Message: body.Message, Block: body.Block, Purge: body.Purge == nil || *body.Purge}
	if body.NewRoomUserID != "" {
		if body.NewRoomUserID.Homeserver() != a.users.ServerName() {
			httpx.Fail(c, types.InvalidParam("User must be our own: %s", body.NewRoomUserID))
			return nil, nil, false
		}
		// The user need not have registered: a system account is made.
		if _, err := a.users.GetAccount(c.Request.Context(), body.NewRoomUserID); err != nil {
			if _, err := a.users.EnsureSystemUser(c.Request.Context(), body.NewRoomUserID.Localpart()); err != nil {
				httpx.Fail(c, err)
				return nil, nil, false
			}
		}
		req.NewRoomUserID = body.NewRoomUserID
	}
	return a.opts.RoomDeleter, req, true
}

// DELETE /_synapse/admin/v1/rooms/{roomId}: the deletion, answered when done.
func (a *API) deleteRoomV1(c *gin.Context) {
	d, req, ok := a.deleteRequest(c)
	if !ok {
		return
	}
	a.audit(c, "delete room", "room", req.RoomID, "purge", req.Purge, "block", req.Block)
	res, err := d.DeleteRoom(context.WithoutCancel(c.Request.Context()), req)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	httpx.OK(c, res)
}

// DELETE /_synapse/admin/v2/rooms/{roomId}: the deletion runs in the
// background; its status is at delete_status.
func (a *API) deleteRoomV2(c *gin.Context) {
	d, req, ok := a.deleteRequest(c)
	if !ok {
		return
	}
	raw := make([]byte, 12)
	_, _ = rand.Read(raw)
	x := &deletion{ID: hex.EncodeToString(raw), RoomID: req.RoomID, Status: "shutting_down"}
	a.deletions.add(x)
	a.audit(c, "delete room", "room", req.RoomID, "purge", req.Purge, "block", req.Block, "delete_id", x.ID)
	ctx := context.WithoutCancel(c.Request.Context())
	go func() {
		res, err := d.DeleteRoom(ctx, req)
		a.deletions.update(func() {
			x.Finished = time.Now()
			if err != nil {
				x.Status, x.Error = "failed", err.Error()
				return
			}
			x.Status, x.Result = "complete", res
		})
		if err != nil {
			a.opts.Logger.Warn("deleting a room failed", "room", req.RoomID, "delete_id", x.ID, "err", err)
		}
	}()
	httpx.OK(c, gin.H{"delete_id": x.ID})
}

// GET /_synapse/admin/v2/rooms/{roomId}/delete_status
func (a *API) roomDeleteStatus(c *gin.Context) {
	roomID, ok := roomParam(c)
	if !ok {
		return
	}
	var results []gin.H
	a.deletions.update(func() {
		for _, x := range a.deletions.byID {
			if x.RoomID == roomID {
				results = append(results, a.deletions.json(x))
			}
		}
	})
	if len(results) == 0 {
		httpx.Fail(c, types.NotFound("No delete task for room_id '%s' found", roomID))
		return
	}
	httpx.OK(c, gin.H{"results": results})
}

// GET /_synapse/admin/v2/rooms/delete_status/{deleteId}
func (a *API) deleteStatus(c *gin.Context) {
	var out gin.H
	a.deletions.update(func() {
		if x := a.deletions.byID[c.Param("deleteId")]; x != nil {
			out = a.deletions.json(x)
			delete(out, "delete_id")
		}
	})
	if out == nil {
		httpx.Fail(c, types.NotFound("delete id '%s' not found", c.Param("deleteId")))
		return
	}
	httpx.OK(c, out)
}
