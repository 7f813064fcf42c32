package httpx

import (
	"io"
	"log/slog"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/tributary-hs/tributary/core/types"
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

// An override's bucket has its own rate and burst, apart from the key's
// bucket under the limiter's; a rate of 0 is no limit.
func TestLimiterAllowWith(t *testing.T) {
	now := time.Unix(1000, 0)
	l := NewLimiter(0.5, 1)
	l.now = func() time.Time { return now }
	if ok, _ := l.Allow("a"); !ok {
		t.Fatal("the limiter's burst refused")
	}
	if ok, _ := l.Allow("a"); ok {
		t.Fatal("the limiter's bucket is empty")
	}
	for i := range 1000 {
		if ok, _ := l.AllowWith("a", types.RateLimit{}); !ok {
			t.Fatalf("request %d without a limit refused", i)
		}
	}
	own := types.RateLimit{PerSecond: 4, Burst: 2}
	for i := range 2 {
		if ok, _ := l.AllowWith("a", own); !ok {
			t.Fatalf("request %d within the override's burst refused", i)
		}
	}
	if ok, wait := l.AllowWith("a", own); ok || wait != 250 {
		t.Fatalf("beyond the override's burst: ok=%v wait=%d, want refused with 250 ms", ok, wait)
	}
	now = now.Add(250 * time.Millisecond)
	if ok, _ := l.AllowWith("a", own); !ok {
		t.Fatal("the override's bucket did not refill at its own rate")
	}
	if ok, _ := l.Allow("a"); ok {
		t.Fatal("the override's tokens reached the limiter's bucket")
	}
	now = now.Add(2 * time.Minute)
	l.Allow("b")
	if len(l.buckets) != 1 {
		t.Fatalf("refilled buckets were not swept: %d left", len(l.buckets))
	}
}
