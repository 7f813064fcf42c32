package admin

import (
	"context"
	"crypto/rand"
	"encoding/hex"
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
	// done is closed when the deletion ends.
	done chan struct{}
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

// DeleteStatus is a room deletion's state, as delete_status answers.
type DeleteStatus struct {
	DeleteID     string              `json:"delete_id,omitempty"`
	RoomID       id.RoomID           `json:"room_id,omitempty"`
	Status       string              `json:"status"`
	Error        string              `json:"error,omitempty"`
	ShutdownRoom *rooms.DeleteResult `json:"shutdown_room"`
}

// status copies x; the caller holds the lock.
func (x *deletion) status() *DeleteStatus {
	out := &DeleteStatus{DeleteID: x.ID, Status: x.Status, Error: x.Error, ShutdownRoom: x.Result}
	if out.ShutdownRoom == nil {
		out.ShutdownRoom = &rooms.DeleteResult{KickedUsers: []id.UserID{}, FailedToKickUsers: []id.UserID{},
			LocalAliases: []id.RoomAlias{}}
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

// DeleteOptions are what a room deletion does (DELETE /rooms/{roomId}'s body).
type DeleteOptions struct {
	RoomID id.RoomID
	// NewRoomUserID, when set, makes a room (as this local user, made a
	// system user if need be) that the removed members are moved into.
	NewRoomUserID     id.UserID
	RoomName, Message string
	Block, Purge      bool
}

// deleteOptions reads the body and path of a room deletion.
func (a *API) deleteOptions(c *gin.Context) (DeleteOptions, bool) {
	roomID, ok := roomParam(c)
	if !ok {
		return DeleteOptions{}, false
	}
	var body deleteBody
	if err := httpx.DecodeOptionalJSON(c, &body); err != nil {
		httpx.Fail(c, err)
		return DeleteOptions{}, false
	}
	return DeleteOptions{RoomID: roomID, NewRoomUserID: body.NewRoomUserID, RoomName: body.RoomName, Message: body.Message,
		Block: body.Block, Purge: body.Purge == nil || *body.Purge}, true
}

// deleteRequest checks a deletion and resolves who does it.
func (a *API) deleteRequest(ctx context.Context, act Actor, o DeleteOptions) (Actor, *rooms.DeleteRequest, error) {
	if a.opts.RoomDeleter == nil {
		return act, nil, unrecognized()
	}
	if err := checkRoomID(o.RoomID); err != nil {
		return act, nil, err
	}
	act, err := a.resolve(ctx, act)
	if err != nil {
		return act, nil, err
	}
	req := &rooms.DeleteRequest{RoomID: o.RoomID, Admin: act.UserID, RoomName: o.RoomName,
		Message: o.Message, Block: o.Block, Purge: o.Purge}
	if o.NewRoomUserID != "" {
		if _, _, err := o.NewRoomUserID.ParseAndValidateRelaxed(); err != nil {
			return act, nil, types.InvalidParam("Invalid new_room_user_id %q", o.NewRoomUserID)
		}
		if o.NewRoomUserID.Homeserver() != a.users.ServerName() {
			return act, nil, types.InvalidParam("User must be our own: %s", o.NewRoomUserID)
		}
		// The user need not have registered: a system account is made.
		if _, err := a.users.GetAccount(ctx, o.NewRoomUserID); err != nil {
			if _, err := a.users.EnsureSystemUser(ctx, o.NewRoomUserID.Localpart()); err != nil {
				return act, nil, err
			}
		}
		req.NewRoomUserID = o.NewRoomUserID
	}
	return act, req, nil
}

// DELETE /_synapse/admin/v1/rooms/{roomId}: the deletion, answered when done.
func (a *API) deleteRoomV1(c *gin.Context) {
	o, ok := a.deleteOptions(c)
	if !ok {
		return
	}
	ctx := context.WithoutCancel(c.Request.Context())
	act, req, err := a.deleteRequest(ctx, actorOf(c), o)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	a.auditAs(ctx, act, "delete room", "room", req.RoomID, "purge", req.Purge, "block", req.Block)
	res, err := a.opts.RoomDeleter.DeleteRoom(ctx, req)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	httpx.OK(c, res)
}

// DELETE /_synapse/admin/v2/rooms/{roomId}: the deletion runs in the
// background; its status is at delete_status.
func (a *API) deleteRoomV2(c *gin.Context) {
	o, ok := a.deleteOptions(c)
	if !ok {
		return
	}
	deleteID, err := a.StartDeleteRoom(c.Request.Context(), actorOf(c), o)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	httpx.OK(c, gin.H{"delete_id": deleteID})
}

// StartDeleteRoom checks a room deletion and runs it in the background
// (the HTTP API and the CLI); DeleteStatusOf follows it.
func (a *API) StartDeleteRoom(ctx context.Context, act Actor, o DeleteOptions) (string, error) {
	ctx = context.WithoutCancel(ctx)
	act, req, err := a.deleteRequest(ctx, act, o)
	if err != nil {
		return "", err
	}
	raw := make([]byte, 12)
	_, _ = rand.Read(raw)
	x := &deletion{ID: hex.EncodeToString(raw), RoomID: req.RoomID, Status: "shutting_down", done: make(chan struct{})}
	a.deletions.add(x)
	a.auditAs(ctx, act, "delete room", "room", req.RoomID, "purge", req.Purge, "block", req.Block, "delete_id", x.ID)
	d := a.opts.RoomDeleter
	go func() {
		res, err := d.DeleteRoom(ctx, req)
		a.deletions.update(func() {
			x.Finished = time.Now()
			if err != nil {
				x.Status, x.Error = "failed", errorText(err)
			} else {
				x.Status, x.Result = "complete", res
			}
			close(x.done)
		})
		if err != nil {
			a.opts.Logger.Warn("deleting a room failed", "room", req.RoomID, "delete_id", x.ID, "err", err)
		}
	}()
	return x.ID, nil
}

// DeleteStatusOf is a deletion's status; with wait > 0 it first waits up
// to that long (or until ctx ends) for the deletion to end.
func (a *API) DeleteStatusOf(ctx context.Context, deleteID string, wait time.Duration) (*DeleteStatus, error) {
	var done chan struct{}
	a.deletions.update(func() {
		if x := a.deletions.byID[deleteID]; x != nil {
			done = x.done
		}
	})
	if done == nil {
		return nil, types.NotFound("delete id '%s' not found", deleteID)
	}
	if wait > 0 {
		t := time.NewTimer(wait)
		select {
		case <-done:
		case <-t.C:
		case <-ctx.Done():
		}
		t.Stop()
	}
	var out *DeleteStatus
	a.deletions.update(func() {
		x := a.deletions.byID[deleteID]
		out = x.status()
		out.RoomID = x.RoomID
	})
	return out, nil
}

// GET /_synapse/admin/v2/rooms/{roomId}/delete_status
func (a *API) roomDeleteStatus(c *gin.Context) {
	roomID, ok := roomParam(c)
	if !ok {
		return
	}
	var results []*DeleteStatus
	a.deletions.update(func() {
		for _, x := range a.deletions.byID {
			if x.RoomID == roomID {
				results = append(results, x.status())
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
	out, err := a.DeleteStatusOf(c.Request.Context(), c.Param("deleteId"), 0)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	out.DeleteID, out.RoomID = "", ""
	httpx.OK(c, out)
}
