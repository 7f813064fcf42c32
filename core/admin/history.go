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

// History purges rooms' history and redacts users' events
// (core/rooms.Service).
type History interface {
	PurgePoint(ctx context.Context, req *rooms.PurgeHistoryRequest) (int64, error)
	PurgeHistory(ctx context.Context, req *rooms.PurgeHistoryRequest, before int64) (int, error)
	RedactUserRooms(ctx context.Context, req *rooms.RedactUserRequest) ([]id.RoomID, error)
	RedactUserEvents(ctx context.Context, req *rooms.RedactUserRequest, roomID id.RoomID) (map[id.EventID]string, error)
}

func (a *API) history(c *gin.Context) (History, bool) {
	if a.opts.History == nil {
		httpx.Fail(c, types.NewError(http.StatusNotFound, types.CodeUnrecognized, "Unrecognized request"))
		return nil, false
	}
	return a.opts.History, true
}

// task is one asynchronous admin job (a history purge, a redaction of a
// user's events), kept in memory like room deletions: its status is lost
// with a restart, and kept a day after it ends.
type task struct {
	kind     string
	status   string
	err      string
	failed   map[id.EventID]string
	finished time.Time
	// done is closed when the task ends.
	done chan struct{}
}

type tasks struct {
	mu   sync.Mutex
	byID map[string]*task
}

// start records a new task and returns its ID.
func (t *tasks) start(kind, status string) (string, *task) {
	raw := make([]byte, 12)
	_, _ = rand.Read(raw)
	x := &task{kind: kind, status: status, done: make(chan struct{})}
	key := hex.EncodeToString(raw)
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.byID == nil {
		t.byID = map[string]*task{}
	}
	for k, old := range t.byID {
		if !old.finished.IsZero() && time.Since(old.finished) > keepDeletions {
			delete(t.byID, k)
		}
	}
	t.byID[key] = x
	return key, x
}

// update changes a task under the lock.
func (t *tasks) update(fn func()) {
	t.mu.Lock()
	defer t.mu.Unlock()
	fn()
}

// get copies a task of the kind (nil if there is none).
func (t *tasks) get(kind, key string) *task {
	t.mu.Lock()
	defer t.mu.Unlock()
	x := t.byID[key]
	if x == nil || x.kind != kind {
		return nil
	}
	cp := *x
	return &cp
}

// POST /_synapse/admin/v1/purge_history/{roomId}[/{eventId}]
// {"delete_local_events": bool, "purge_up_to_event_id": …, "purge_up_to_ts": ms}:
// the point is checked now, the purge runs in the background.
func (a *API) purgeHistory(c *gin.Context) {
	roomID, ok := roomParam(c)
	if !ok {
		return
	}
	var body struct {
		DeleteLocalEvents *bool      `json:"delete_local_events"`
		EventID           id.EventID `json:"purge_up_to_event_id"`
		TS                *int64     `json:"purge_up_to_ts"`
	}
	if err := httpx.DecodeOptionalJSON(c, &body); err != nil {
		httpx.Fail(c, err)
		return
	}
	req := &rooms.PurgeHistoryRequest{RoomID: roomID, EventID: id.EventID(c.Param("eventId")),
		DeleteLocalEvents: body.DeleteLocalEvents != nil && *body.DeleteLocalEvents}
	switch {
	case req.EventID != "":
	case body.EventID != "":
		req.EventID = body.EventID
	case body.TS != nil:
		if *body.TS <= 0 {
			httpx.Fail(c, types.InvalidParam("purge_up_to_ts must be a positive timestamp in milliseconds"))
			return
		}
		req.TS = *body.TS
	}
	purgeID, err := a.StartPurgeHistory(c.Request.Context(), actorOf(c), req)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	httpx.OK(c, gin.H{"purge_id": purgeID})
}

// StartPurgeHistory checks a history purge, finds its point and runs it in
// the background (the HTTP API and the CLI); PurgeStatusOf follows it.
func (a *API) StartPurgeHistory(ctx context.Context, act Actor, req *rooms.PurgeHistoryRequest) (string, error) {
	h := a.opts.History
	if h == nil {
		return "", unrecognized()
	}
	if err := checkRoomID(req.RoomID); err != nil {
		return "", err
	}
	switch {
	case req.EventID != "":
		if err := types.CheckEventID(req.EventID); err != nil {
			return "", err
		}
	case req.TS > 0:
	case req.TS < 0:
		return "", types.InvalidParam("purge_up_to_ts must be a positive timestamp in milliseconds")
	default:
		return "", types.InvalidParam("must specify purge_up_to_event_id or purge_up_to_ts")
	}
	ctx = context.WithoutCancel(ctx)
	act, err := a.resolve(ctx, act)
	if err != nil {
		return "", err
	}
	before, err := h.PurgePoint(ctx, req)
	if err != nil {
		return "", err
	}
	purgeID, x := a.tasks.start("purge", "active")
	a.auditAs(ctx, act, "purge history", "room", req.RoomID, "before_stream_pos", before, "event", req.EventID, "ts", req.TS,
		"delete_local_events", req.DeleteLocalEvents, "purge_id", purgeID)
	go func() {
		n, err := h.PurgeHistory(ctx, req, before)
		a.tasks.update(func() {
			x.finished = time.Now()
			if err != nil {
				x.status, x.err = "failed", errorText(err)
			} else {
				x.status = "complete"
			}
			close(x.done)
		})
		if err != nil {
			a.opts.Logger.Warn("purging history failed", "room", req.RoomID, "purge_id", purgeID, "err", err)
			return
		}
		a.opts.Logger.Info("history purged", "room", req.RoomID, "purge_id", purgeID, "events", n)
	}()
	return purgeID, nil
}

// TaskStatus is an asynchronous admin task's state, as
// purge_history_status answers.
type TaskStatus struct {
	Status string `json:"status"`
	Error  string `json:"error,omitempty"`
}

// PurgeStatusOf is a history purge's status; with wait > 0 it first waits
// up to that long (or until ctx ends) for the purge to end.
func (a *API) PurgeStatusOf(ctx context.Context, purgeID string, wait time.Duration) (*TaskStatus, error) {
	x := a.tasks.get("purge", purgeID)
	if x == nil {
		return nil, types.NotFound("purge id '%s' not found", purgeID)
	}
	if wait > 0 {
		t := time.NewTimer(wait)
		select {
		case <-x.done:
		case <-t.C:
		case <-ctx.Done():
		}
		t.Stop()
		x = a.tasks.get("purge", purgeID)
	}
	return &TaskStatus{Status: x.status, Error: x.err}, nil
}

// GET /_synapse/admin/v1/purge_history_status/{purgeId}
func (a *API) purgeHistoryStatus(c *gin.Context) {
	out, err := a.PurgeStatusOf(c.Request.Context(), c.Param("purgeId"), 0)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	httpx.OK(c, out)
}

// POST /_synapse/admin/v1/user/{userId}/redact {"rooms": [...], "reason",
// "limit", "use_admin", "after_ts", "before_ts"}: the user's events are
// redacted in the background, newest first.
func (a *API) redactUser(c *gin.Context) {
	h, ok := a.history(c)
	if !ok {
		return
	}
	user := id.UserID(c.Param("userId"))
	if _, _, err := user.ParseAndValidateRelaxed(); err != nil {
		httpx.Fail(c, types.InvalidParam("Invalid user ID"))
		return
	}
	var body struct {
		Rooms    *[]id.RoomID `json:"rooms"`
		Reason   string       `json:"reason"`
		Limit    *int         `json:"limit"`
		UseAdmin bool         `json:"use_admin"`
		AfterTS  int64        `json:"after_ts"`
		BeforeTS int64        `json:"before_ts"`
	}
	if err := httpx.DecodeJSON(c, &body); err != nil {
		httpx.Fail(c, err)
		return
	}
	if body.Rooms == nil {
		httpx.Fail(c, types.MissingParam("Missing param rooms"))
		return
	}
	for _, r := range *body.Rooms {
		if len(r) < 2 || r[0] != '!' {
			httpx.Fail(c, types.InvalidParam("Invalid room ID %q", r))
			return
		}
	}
	if body.Limit != nil && *body.Limit <= 0 {
		httpx.Fail(c, types.InvalidParam("limit must be a positive integer"))
		return
	}
	if body.AfterTS < 0 || body.BeforeTS < 0 {
		httpx.Fail(c, types.InvalidParam("after_ts and before_ts must be timestamps in milliseconds"))
		return
	}
	req := &rooms.RedactUserRequest{User: user, Admin: httpx.PrincipalOf(c).UserID, Rooms: *body.Rooms, Reason: body.Reason,
		UseAdmin: body.UseAdmin, AfterTS: body.AfterTS, BeforeTS: body.BeforeTS}
	if body.Limit != nil {
		req.Limit = *body.Limit
	}
	ctx := context.WithoutCancel(c.Request.Context())
	roomIDs, err := h.RedactUserRooms(ctx, req)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	redactID, x := a.tasks.start("redact", "active")
	a.audit(c, "redact user events", "user", user, "rooms", roomIDs, "use_admin", req.UseAdmin, "redact_id", redactID)
	go func() {
		failed := map[id.EventID]string{}
		var ferr error
		for _, r := range roomIDs {
			f, err := h.RedactUserEvents(ctx, req, r)
			if err != nil {
				ferr = err
				break
			}
			for k, v := range f {
				failed[k] = v
			}
		}
		a.tasks.update(func() {
			x.finished = time.Now()
			x.failed = failed
			defer close(x.done)
			if ferr != nil {
				x.status, x.err = "failed", ferr.Error()
				return
			}
			x.status = "completed"
		})
		if ferr != nil {
			a.opts.Logger.Warn("redacting a user's events failed", "user", user, "redact_id", redactID, "err", ferr)
		}
	}()
	httpx.OK(c, gin.H{"redact_id": redactID})
}

// GET /_synapse/admin/v1/user/redact_status/{redactId}
func (a *API) redactStatus(c *gin.Context) {
	x := a.tasks.get("redact", c.Param("redactId"))
	if x == nil {
		httpx.Fail(c, types.NotFound("redact id '%s' not found", c.Param("redactId")))
		return
	}
	failed := x.failed
	if failed == nil {
		failed = map[id.EventID]string{}
	}
	out := gin.H{"status": x.status, "failed_redactions": failed}
	if x.err != "" {
		out["error"] = x.err
	}
	httpx.OK(c, out)
}
