package httpx

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/tributary-hs/tributary/core/types"
)

// The request line names the method, route, status, duration, client IP
// and user, and costs few allocations: it is written for every request.
func TestRequestLine(t *testing.T) {
	gin.SetMode(gin.ReleaseMode)
	var buf strings.Builder
	log := slog.New(slog.NewJSONHandler(&buf, nil))
	w := httptest.NewRecorder()
	c, _ := gin.CreateTestContext(w)
	c.Request = httptest.NewRequest(http.MethodGet, "/sync?access_token=SECRET", nil)
	c.Set(principalKey, &types.Principal{UserID: "@alice:example.org", DeviceID: "DEV"})
	c.Status(http.StatusOK)
	logRequest(log, c, time.Now())
	var rec map[string]any
	if err := json.Unmarshal([]byte(buf.String()), &rec); err != nil {
		t.Fatalf("log line %q: %v", buf.String(), err)
	}
	if rec["msg"] != "request" || rec["method"] != "GET" || rec["route"] != "unmatched" || rec["status"] != float64(200) ||
		rec["ip"] != "192.0.2.1" || rec["user"] != "@alice:example.org" || rec["level"] != "INFO" {
		t.Fatalf("request line %v", rec)
	}
	if _, ok := rec["duration_ms"].(float64); !ok {
		t.Fatalf("request line %v without duration_ms", rec)
	}
	if raceEnabled {
		return // the race detector allocates more: counted only without it
	}
	quiet := slog.New(slog.NewJSONHandler(io.Discard, nil))
	if n := testing.AllocsPerRun(100, func() { logRequest(quiet, c, time.Now()) }); n > 5 {
		t.Errorf("a request line costs %v allocations, want at most 5 (it was 10 with untyped attributes)", n)
	}
}
