package admin

import (
	"context"
	"strconv"

	"github.com/gin-gonic/gin"

	"github.com/tributary-hs/tributary/core/httpx"
	"github.com/tributary-hs/tributary/core/types"
)

// Destination is what the server knows of sending to another server, in
// the shape of Synapse's admin API (times in ms since the epoch; null
// where there is nothing: no failure, nothing acknowledged yet).
type Destination struct {
	Destination   string `json:"destination"`
	RetryLastTS   int64  `json:"retry_last_ts"`
	RetryInterval int64  `json:"retry_interval"`
	FailureTS     *int64 `json:"failure_ts"`
	// LastSuccessfulStreamOrdering is the stream position of the last
	// event the destination acknowledged.
	LastSuccessfulStreamOrdering *int64 `json:"last_successful_stream_ordering"`
}

// DestinationQuery pages through destinations.
type DestinationQuery struct {
	// Search keeps the destinations whose name contains it.
	Search string
	// OrderBy is one of DestinationOrders.
	OrderBy   string
	Backwards bool
	From      int
	Limit     int
}

// DestinationOrders are the columns destinations may be listed by.
var DestinationOrders = []string{"destination", "retry_last_ts", "retry_interval", "failure_ts",
	"last_successful_stream_ordering"}

// Destinations is the federation sender's view of other servers
// (federation/outbound, adapted in cmd); nil when federation is off.
type Destinations interface {
	ListDestinations(ctx context.Context, q DestinationQuery) ([]Destination, int, error)
	// Destination returns one; M_NOT_FOUND if unknown.
	Destination(ctx context.Context, name string) (*Destination, error)
	// ResetConnection ends a destination's backoff and retries it at once.
	ResetConnection(ctx context.Context, name string) error
}

func (a *API) registerDestinations(adm gin.IRouter) {
	if a.destinations == nil {
		return
	}
	adm.GET("/federation/destinations", a.listDestinations)
	adm.GET("/federation/destinations/:destination", a.getDestination)
	adm.POST("/federation/destinations/:destination/reset_connection", a.resetConnection)
}

// queryInt reads a non-negative integer query parameter.
func queryIntErr(c *gin.Context, name string, def int) (int, error) {
	s, ok := c.GetQuery(name)
	if !ok {
		return def, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return 0, types.InvalidParam("Query parameter %s must be a string representing a positive integer.", name)
	}
	return n, nil
}

// GET /_synapse/admin/v1/federation/destinations
func (a *API) listDestinations(c *gin.Context) {
	q := DestinationQuery{Search: c.Query("destination"), OrderBy: c.DefaultQuery("order_by", "destination")}
	var err error
	if q.From, err = queryIntErr(c, "from", 0); err != nil {
		httpx.Fail(c, err)
		return
	}
	if q.Limit, err = queryIntErr(c, "limit", 100); err != nil {
		httpx.Fail(c, err)
		return
	}
	valid := false
	for _, o := range DestinationOrders {
		valid = valid || o == q.OrderBy
	}
	if !valid {
		httpx.Fail(c, types.InvalidParam("Query parameter order_by must be one of %v", DestinationOrders))
		return
	}
	switch c.DefaultQuery("dir", "f") {
	case "f":
	case "b":
		q.Backwards = true
	default:
		httpx.Fail(c, types.InvalidParam(`Query parameter dir must be one of ["f", "b"]`))
		return
	}
	ds, total, err := a.destinations.ListDestinations(c.Request.Context(), q)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	if ds == nil {
		ds = []Destination{}
	}
	resp := gin.H{"destinations": ds, "total": total}
	if q.From+q.Limit < total {
		resp["next_token"] = strconv.Itoa(q.From + len(ds))
	}
	httpx.OK(c, resp)
}

// GET /_synapse/admin/v1/federation/destinations/{destination}
func (a *API) getDestination(c *gin.Context) {
	d, err := a.destinations.Destination(c.Request.Context(), c.Param("destination"))
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	httpx.OK(c, d)
}

// POST /_synapse/admin/v1/federation/destinations/{destination}/reset_connection
func (a *API) resetConnection(c *gin.Context) {
	if err := a.destinations.ResetConnection(c.Request.Context(), c.Param("destination")); err != nil {
		httpx.Fail(c, err)
		return
	}
	httpx.OK(c, gin.H{})
}
