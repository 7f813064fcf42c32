package admin

import (
	"context"
	"encoding/json"

	"github.com/gin-gonic/gin"
	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/core/httpx"
	"github.com/tributary-hs/tributary/core/rooms"
	"github.com/tributary-hs/tributary/core/types"
)

// Reports is what the event report endpoints read (core/rooms.Reader).
type Reports interface {
	EventReports(ctx context.Context, roomID id.RoomID, reporter id.UserID, oldestFirst bool, offset, limit int) ([]*rooms.Report, int, error)
	GetReport(ctx context.Context, reportID string) (*rooms.Report, error)
	DeleteReport(ctx context.Context, reportID string) error
	AdminEvent(ctx context.Context, eventID id.EventID) (json.RawMessage, id.UserID, error)
}

// reportJSON is an event report as Synapse's admin API shows it (id is
// this server's report ID, a string).
func (a *API) reportJSON(c *gin.Context, r *rooms.Report, withEvent bool) (gin.H, error) {
	ctx := c.Request.Context()
	out := gin.H{"id": r.ReportID, "received_ts": r.CreatedAt, "room_id": r.RoomID, "event_id": r.EventID,
		"user_id": r.Reporter, "reason": nonEmpty(r.Reason), "score": r.Score, "name": nil, "canonical_alias": nil, "sender": nil}
	if rr := a.opts.RoomReader; rr != nil {
		if info, err := rr.AdminRoom(ctx, r.RoomID); err == nil {
			out["name"], out["canonical_alias"] = info.Name, info.CanonicalAlias
		}
	}
	raw, sender, err := a.opts.Reports.AdminEvent(ctx, r.EventID)
	if err != nil {
		return nil, err
	}
	if sender != "" {
		out["sender"] = sender
	}
	if withEvent {
		out["event_json"] = raw
	}
	return out, nil
}

func (a *API) reports(c *gin.Context) (Reports, bool) {
	if a.opts.Reports == nil {
		httpx.Fail(c, types.NewError(404, types.CodeUnrecognized, "Unrecognized request"))
		return nil, false
	}
	return a.opts.Reports, true
}

// GET /_synapse/admin/v1/event_reports
func (a *API) listReports(c *gin.Context) {
	rs, ok := a.reports(c)
	if !ok {
		return
	}
	from, ok := queryInt(c, "from", 0)
	if !ok {
		return
	}
	limit, ok := queryInt(c, "limit", 100)
	if !ok {
		return
	}
	dir := c.DefaultQuery("dir", "b")
	if dir != "f" && dir != "b" {
		httpx.Fail(c, types.InvalidParam("Unknown direction: %s", dir))
		return
	}
	list, total, err := rs.EventReports(c.Request.Context(), id.RoomID(c.Query("room_id")), id.UserID(c.Query("user_id")),
		dir == "f", from, limit)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	out := make([]gin.H, 0, len(list))
	for _, r := range list {
		j, err := a.reportJSON(c, r, false)
		if err != nil {
			httpx.Fail(c, err)
			return
		}
		out = append(out, j)
	}
	resp := gin.H{"event_reports": out, "total": total}
	if from+len(list) < total {
		resp["next_token"] = from + len(list)
	}
	httpx.OK(c, resp)
}

// GET /_synapse/admin/v1/event_reports/{reportId}
func (a *API) getReport(c *gin.Context) {
	rs, ok := a.reports(c)
	if !ok {
		return
	}
	r, err := rs.GetReport(c.Request.Context(), c.Param("reportId"))
	if err == nil && r.EventID == "" {
		err = types.NotFound("Event report not found") // a report of a room or user alone
	}
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	j, err := a.reportJSON(c, r, true)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	httpx.OK(c, j)
}

// DELETE /_synapse/admin/v1/event_reports/{reportId}
func (a *API) deleteReport(c *gin.Context) {
	rs, ok := a.reports(c)
	if !ok {
		return
	}
	if err := rs.DeleteReport(c.Request.Context(), c.Param("reportId")); err != nil {
		httpx.Fail(c, err)
		return
	}
	a.audit(c, "delete event report", "report", c.Param("reportId"))
	httpx.OK(c, httpx.Empty)
}
