package httpx

import (
	"log/slog"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// EngineOptions configure the shared gin engine.
type EngineOptions struct {
	Logger       *slog.Logger
	MaxBodyBytes int64
	// MaxMediaBytes is the body limit of media uploads.
	MaxMediaBytes  int64
	TrustedProxies []string
	// Metrics, when not nil, observe every request (served by the metrics
	// listener, not this engine).
	Metrics *prometheus.Registry
	// ServerName is this server's name, for the checks of path parameters.
	ServerName string
	// ReadBodyTimeout and ReadBodyMinRate bound how long a request body may
	// take to arrive (see BodyDeadline); 0: no bound.
	ReadBodyTimeout time.Duration
	ReadBodyMinRate int64
}

// NewEngine builds the gin engine with the edge middleware, /health and
// the Matrix answers for unknown routes and methods.
func NewEngine(o EngineOptions) (*gin.Engine, error) {
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	// Path parameters may hold escaped slashes (event types, state keys,
	// base64 session IDs), so routing uses the raw path; parameters are
	// unescaped by UnescapeParams with path rules (gin's own unescaping uses
	// query rules, turning "+" into a space).
	r.UseRawPath = true
	r.UnescapePathValues = false
	r.RemoveExtraSlash = false
	r.RedirectTrailingSlash = false
	r.RedirectFixedPath = false
	r.HandleMethodNotAllowed = true
	if err := r.SetTrustedProxies(o.TrustedProxies); err != nil {
		return nil, err
	}
	// Middlewares with nothing to do once the handler returned do not call
	// c.Next(): gin runs the next handler when they return, so their frames
	// are not under the handler. A /sync long-poll parks in its handler
	// (thousands at once), and a goroutine's stack is halved by the GC only
	// while less than a quarter of it is in use: the parked stack, from
	// net/http's conn.serve to the notifier's select, must stay under about
	// 3 KiB to fit in 8 KiB rather than 16 (TestParkedSyncStack). Those that
	// work afterwards (Recover, Log, metrics) keep that work out of their
	// own frame.
	r.Use(Recover(), UnescapeParams(), Log(o.Logger))
	if o.Metrics != nil {
		m, err := NewMetrics(o.Metrics)
		if err != nil {
			return nil, err
		}
		r.Use(m.Middleware())
	}
	r.Use(BodyDeadline(o.ReadBodyTimeout, o.ReadBodyMinRate), CORS(), TextParams(), BodyLimit(o.MaxBodyBytes, o.MaxMediaBytes),
		CheckParams(o.ServerName))
	r.GET("/health", func(c *gin.Context) { c.String(http.StatusOK, "OK") })
	r.NoRoute(NotFound)
	r.NoMethod(MethodNotAllowed)
	return r, nil
}

// MetricsHandler serves a registry's metrics (the metrics listener's /metrics).
func MetricsHandler(reg *prometheus.Registry) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	return mux
}
