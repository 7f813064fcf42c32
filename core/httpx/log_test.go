package httpx

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"

	"github.com/tributary-hs/tributary/core/types"
)

// A 4xx answer gets a debug line naming the path (without the query,
// secret parameters masked) and the errcode; nothing at info level.
func TestLogRefusedRequests(t *testing.T) {
	gin.SetMode(gin.ReleaseMode)
	for _, tc := range []struct {
		target, route, path, errcode string
		status                       int
	}{
		{"/rooms/%21r:x/messages?access_token=SECRET", "/rooms/:roomId/messages", "/rooms/%21r:x/messages", "M_FORBIDDEN", 403},
		{"/tokens/SECRET?x=1", "/tokens/:token", "/tokens/<redacted>", "M_NOT_FOUND", 404},
		{"/files/SECRET/a/b", "/files/*token", "/files/*token", "M_NOT_FOUND", 404},
		{"/ok", "/ok", "", "", 200},
		{"/nothing/here?access_token=SECRET", "unmatched", "/nothing/here", "M_UNRECOGNIZED", 404},
	} {
		for _, level := range []slog.Level{slog.LevelDebug, slog.LevelInfo} {
			var buf bytes.Buffer
			log := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: level}))
			r := gin.New()
			r.Use(Log(log))
			r.GET("/rooms/:roomId/messages", func(c *gin.Context) { Fail(c, types.Forbidden("no")) })
			r.GET("/tokens/:token", func(c *gin.Context) { Fail(c, types.NotFound("no")) })
			r.GET("/files/*token", func(c *gin.Context) { Fail(c, types.NotFound("no")) })
			r.GET("/ok", func(c *gin.Context) { OK(c, Empty) })
			r.NoRoute(NotFound)
			w := httptest.NewRecorder()
			r.ServeHTTP(w, httptest.NewRequest(http.MethodGet, tc.target, nil))
			if w.Code != tc.status {
				t.Fatalf("%s: HTTP %d", tc.target, w.Code)
			}
			if strings.Contains(buf.String(), "SECRET") {
				t.Errorf("%s at %v: the log holds the secret:\n%s", tc.target, level, &buf)
			}
			var refused []map[string]any
			for l := range strings.SplitSeq(strings.TrimSpace(buf.String()), "\n") {
				var rec map[string]any
				if err := json.Unmarshal([]byte(l), &rec); err != nil {
					t.Fatalf("log line %q: %v", l, err)
				}
				if rec["msg"] == "request refused" {
					refused = append(refused, rec)
				}
			}
			if level == slog.LevelInfo || tc.status < 400 {
				if len(refused) != 0 {
					t.Errorf("%s at %v: %v, want no refusal line", tc.target, level, refused)
				}
				continue
			}
			if len(refused) != 1 || refused[0]["route"] != tc.route || refused[0]["path"] != tc.path ||
				refused[0]["errcode"] != tc.errcode || refused[0]["status"] != float64(tc.status) || refused[0]["level"] != "DEBUG" {
				t.Errorf("%s: %v, want route %s path %s errcode %s", tc.target, refused, tc.route, tc.path, tc.errcode)
			}
		}
	}
}
