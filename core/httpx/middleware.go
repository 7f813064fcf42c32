package httpx

import (
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tributary-hs/tributary/core/types"
)

// Recover turns a panic in a handler into a 500 M_UNKNOWN and a log line.
func Recover() gin.HandlerFunc {
	return func(c *gin.Context) {
		defer func() {
			if r := recover(); r != nil {
				if r == http.ErrAbortHandler {
					panic(r)
				}
				slog.ErrorContext(c.Request.Context(), "panic in handler", "route", c.FullPath(), "panic", r)
				Fail(c, types.NewError(http.StatusInternalServerError, types.CodeUnknown, "Internal server error"))
			}
		}()
		c.Next()
	}
}

// CORS sets the headers the spec asks for ("Web Browser Clients") and answers
// preflight requests before routing, so they need no token.
func CORS() gin.HandlerFunc {
	return func(c *gin.Context) {
		h := c.Writer.Header()
		h.Set("Access-Control-Allow-Origin", "*")
		h.Set("Access-Control-Allow-Methods", "GET, POST, PUT, DELETE, OPTIONS")
		h.Set("Access-Control-Allow-Headers", "X-Requested-With, Content-Type, Authorization")
		if c.Request.Method == http.MethodOptions {
			c.AbortWithStatus(http.StatusNoContent)
		}
	}
}

// federationTxnLimit is the largest transaction another server may send:
// 50 PDUs and 100 EDUs of at most 64 KiB each, and the envelope.
const federationTxnLimit = 150*65536 + 65536

// BodyLimit caps request bodies; reading past the limit fails with
// *http.MaxBytesError, which DecodeJSON turns into M_TOO_LARGE. Media
// uploads (under /_matrix/media/) and appservice batch sends have the
// larger media limit. Federation transactions may be as large as the spec
// lets them be (federationTxnLimit).
func BodyLimit(limit, mediaLimit int64) gin.HandlerFunc {
	return func(c *gin.Context) {
		limit := limit
		if mediaLimit > limit && (strings.HasPrefix(c.Request.URL.Path, "/_matrix/media/") ||
			strings.HasSuffix(c.Request.URL.Path, "/batch_send")) {
			limit = mediaLimit
		}
		if strings.HasPrefix(c.Request.URL.Path, "/_matrix/federation/v1/send/") {
			limit = max(limit, federationTxnLimit)
		}
		if c.Request.ContentLength > limit {
			Fail(c, types.TooLarge("Request body is larger than %d bytes", limit))
			return
		}
		c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, limit)
	}
}

// Log writes one structured line per request. It logs the route template,
// never the raw URL: query strings may hold access tokens. At debug level a
// 4xx answer adds a line with the path and the errcode (see logPath).
func Log(log *slog.Logger) gin.HandlerFunc {
	return func(c *gin.Context) {
		start := time.Now()
		c.Next()
		logRequest(log, c, start)
	}
}

// logRequest writes Log's line: in a function of its own, so that Log's
// frame, under every parked long-poll, stays small (see NewEngine).
func logRequest(log *slog.Logger, c *gin.Context, start time.Time) {
	route := c.FullPath()
	if route == "" {
		route = "unmatched"
	}
	// Typed attributes, in an array on the stack: the line is written for
	// every request (4,000 a message in a crowded room), and as []any
	// each value was boxed and the user ID encoded by reflection.
	attrs := [6]slog.Attr{slog.String("method", c.Request.Method), slog.String("route", route),
		slog.Int("status", c.Writer.Status()), slog.Float64("duration_ms", float64(time.Since(start).Microseconds())/1000),
		slog.String("ip", c.ClientIP())}
	n := 5
	if p := PrincipalOf(c); p != nil {
		attrs[n] = slog.String("user", string(p.UserID))
		n++
	}
	level := slog.LevelInfo
	if c.Writer.Status() >= 500 {
		level = slog.LevelError
	}
	log.LogAttrs(c.Request.Context(), level, "request", attrs[:n]...)
	if st := c.Writer.Status(); st >= 400 && st < 500 && log.Enabled(c.Request.Context(), slog.LevelDebug) {
		// Which request a client got wrong, findable without a proxy:
		// the path it sent (no query string, where access tokens may
		// be; secret path parameters masked) and the errcode it got.
		code, _ := c.Get(errcodeKey)
		log.Debug("request refused", "method", c.Request.Method, "route", route, "path", logPath(c),
			"status", st, "errcode", code)
	}
}

// logPath is the request's path for logs: escaped as sent, without the
// query string, with path parameters that are secrets (registration tokens
// of the admin API) replaced by "<redacted>".
func logPath(c *gin.Context) string {
	path := c.Request.URL.EscapedPath()
	route := c.FullPath()
	if !strings.Contains(strings.ToLower(route), "token") {
		return path
	}
	routeSegs, pathSegs := strings.Split(route, "/"), strings.Split(path, "/")
	if len(routeSegs) != len(pathSegs) {
		return route // a catch-all parameter: the template says enough
	}
	for i, seg := range routeSegs {
		if (strings.HasPrefix(seg, ":") || strings.HasPrefix(seg, "*")) && strings.Contains(strings.ToLower(seg), "token") {
			pathSegs[i] = "<redacted>"
		}
	}
	return strings.Join(pathSegs, "/")
}

// Metrics are the HTTP request counters and latency histogram.
type Metrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

// NewMetrics registers the HTTP metrics with reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tributary_http_requests_total", Help: "HTTP requests by method, route and status.",
		}, []string{"method", "route", "status"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "tributary_http_request_duration_seconds", Help: "HTTP request latency by method and route.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 10, 30},
		}, []string{"method", "route"}),
	}
	for _, c := range []prometheus.Collector{m.requests, m.duration} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// Middleware observes every request.
func (m *Metrics) Middleware() gin.HandlerFunc {
	return func(c *gin.Context) {
		start := time.Now()
		c.Next()
		m.observe(c, start)
	}
}

// observe counts a request (outside Middleware's frame, see NewEngine).
func (m *Metrics) observe(c *gin.Context, start time.Time) {
	route := c.FullPath()
	if route == "" {
		route = "unmatched"
	}
	m.requests.WithLabelValues(c.Request.Method, route, strconv.Itoa(c.Writer.Status())).Inc()
	m.duration.WithLabelValues(c.Request.Method, route).Observe(time.Since(start).Seconds())
}

// NotFound and MethodNotAllowed answer unknown routes as the spec says.
func NotFound(c *gin.Context) {
	Fail(c, types.Unrecognized(http.StatusNotFound, "Unrecognized request"))
}
func MethodNotAllowed(c *gin.Context) {
	Fail(c, types.Unrecognized(http.StatusMethodNotAllowed, "Unrecognized request: method not allowed"))
}

// UnescapeParams decodes the matched path parameters with path rules.
func UnescapeParams() gin.HandlerFunc {
	return func(c *gin.Context) {
		for i := range c.Params {
			if v, err := url.PathUnescape(c.Params[i].Value); err == nil {
				c.Params[i].Value = v
			}
		}
	}
}

// TextParams refuses, with 400 M_INVALID_PARAM, requests whose path
// parameters or query values are not types.ValidText (a%00b, %FF): they name
// room IDs, event types, transaction IDs, tokens… that end up in text
// columns, which PostgreSQL refuses and SQLite stores, and that no grammar
// allows. It runs after UnescapeParams.
func TextParams() gin.HandlerFunc {
	return func(c *gin.Context) {
		for _, p := range c.Params {
			if !types.ValidText(p.Value) {
				Fail(c, types.ErrInvalidText("Path parameter "+p.Key))
				return
			}
		}
		if c.Request.URL.RawQuery != "" {
			for k, vs := range c.Request.URL.Query() {
				if !types.ValidText(k) {
					Fail(c, types.ErrInvalidText("A query parameter name"))
					return
				}
				for _, v := range vs {
					if !types.ValidText(v) {
						Fail(c, types.ErrInvalidText("Query parameter "+strings.ToValidUTF8(k, "?")))
						return
					}
				}
			}
		}
	}
}
