package httpx

import (
	"io"
	"log/slog"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
)

func TestLimiterBurstAndRefill(t *testing.T) {
	now := time.Unix(1000, 0)
	l := NewLimiter(0.5, 3) // one token every two seconds
	l.now = func() time.Time { return now }
	for i := range 3 {
		if ok, _ := l.Allow("a"); !ok {
			t.Fatalf("request %d within the burst refused", i)
		}
	}
	ok, wait := l.Allow("a")
	if ok || wait != 2000 {
		t.Fatalf("4th request: ok=%v wait=%d, want refused with 2000 ms", ok, wait)
	}
	if ok, _ := l.Allow("b"); !ok {
		t.Fatal("another key shares the bucket")
	}
	now = now.Add(1 * time.Second)
	if ok, wait := l.Check("a"); ok || wait != 1000 {
		t.Fatalf("after 1s: ok=%v wait=%d", ok, wait)
	}
	now = now.Add(1 * time.Second)
	if ok, _ := l.Check("a"); !ok {
		t.Fatal("Check after refill refused")
	}
	if ok, _ := l.Allow("a"); !ok {
		t.Fatal("Allow after refill refused")
	}
	if ok, _ := l.Allow("a"); ok {
		t.Fatal("bucket refilled more than one token")
	}
}

func TestLimiterNilAllowsAndSweep(t *testing.T) {
	var l *Limiter
	if ok, _ := l.Allow("x"); !ok {
		t.Fatal("nil limiter refused")
	}
	now := time.Unix(0, 0)
	l = NewLimiter(1, 1)
	l.now = func() time.Time { return now }
	l.Allow("x")
	now = now.Add(2 * time.Minute)
	l.Allow("y")
	if _, ok := l.buckets["x"]; ok {
		t.Fatal("refilled bucket was not swept")
	}
}

func TestUnescapeParamsUsesPathRules(t *testing.T) {
	gin.SetMode(gin.TestMode)
	r, err := NewEngine(EngineOptions{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), MaxBodyBytes: 1024})
	if err != nil {
		t.Fatal(err)
	}
	var got string
	r.GET("/k/:id", func(c *gin.Context) { got = c.Param("id") })
	for path, want := range map[string]string{
		"/k/a+b%2Fc%3D": "a+b/c=", // base64 keeps its plus; the escaped slash stays in the value
		"/k/%40u%3Ax":   "@u:x",
	} {
		w := httptest.NewRecorder()
		r.ServeHTTP(w, httptest.NewRequest("GET", path, nil))
		if got != want {
			t.Errorf("%s: param %q, want %q", path, got, want)
		}
	}
}
