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
}

type tasks struct {
	mu   sync.Mutex
	byID map[string]*task
}

// start records a new task and returns its ID.
func (t *tasks) start(kind, status string) (string, *task) {
	raw := make([]byte, 12)
	_, _ = rand.Read(raw)
	x := &task{kind: kind, status: status}
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
	h, ok := a.history(c)
	if !ok {
		return
	}
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
	default:
		httpx.Fail(c, types.InvalidParam("must specify purge_up_to_event_id or purge_up_to_ts"))
		return
	}
	if req.EventID != "" {
		if err := types.CheckEventID(req.EventID); err != nil {
			httpx.Fail(c, err)
			return
		}
	}
	ctx := context.WithoutCancel(c.Request.Context())
	before, err := h.PurgePoint(ctx, req)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	purgeID, x := a.tasks.start("purge", "active")
	a.audit(c, "purge history", "room", roomID, "before_stream_pos", before, "event", req.EventID, "ts", req.TS,
		"delete_local_events", req.DeleteLocalEvents, "purge_id", purgeID)
	go func() {
		n, err := h.PurgeHistory(ctx, req, before)
		a.tasks.update(func() {
			x.finished = time.Now()
			if err != nil {
				x.status, x.err = "failed", err.Error()
				return
			}
			x.status = "complete"
		})
		if err != nil {
			a.opts.Logger.Warn("purging history failed", "room", roomID, "purge_id", purgeID, "err", err)
			return
		}
		a.opts.Logger.Info("history purged", "room", roomID, "purge_id", purgeID, "events", n)
	}()
	httpx.OK(c, gin.H{"purge_id": purgeID})
}

// GET /_synapse/admin/v1/purge_history_status/{purgeId}
func (a *API) purgeHistoryStatus(c *gin.Context) {
	x := a.tasks.get("purge", c.Param("purgeId"))
	if x == nil {
		httpx.Fail(c, types.NotFound("purge id '%s' not found", c.Param("purgeId")))
		return
	}
	out := gin.H{"status": x.status}
	if x.err != "" {
		out["error"] = x.err
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
