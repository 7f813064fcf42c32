package e2e

import (
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/tributary-hs/tributary/internal/testserver"
)

// The server sets Go's soft memory limit from memory_limit_mib (none by
// default), and leaves a GOMEMLIMIT the operator set.
// The runtime's limit is read back from the metrics listener.
func TestMemoryLimit(t *testing.T) {
	limit := filepath.Join(t.TempDir(), "limit.yaml")
	if err := os.WriteFile(limit, []byte("memory_limit_mib: 200\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
		env  []string
		want float64
	}{
		{"default", nil, nil, math.MaxInt64},
		{"configured", []string{"--config", limit}, nil, 200 << 20},
		{"GOMEMLIMIT wins", []string{"--config", limit}, []string{"GOMEMLIMIT=100MiB"}, 100 << 20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := testserver.Start(t, testserver.Options{Args: append([]string{"--metrics-listen", "127.0.0.1:0"}, tc.args...),
				Env: tc.env})
			if got := metricValue(t, srv, "go_gc_gomemlimit_bytes"); got != tc.want {
				t.Fatalf("go_gc_gomemlimit_bytes = %.0f, want %.0f", got, tc.want)
			}
		})
	}
}

// metricValue is the value of the unlabelled metric name on srv's metrics
// listener; the test fails if it is not there.
func metricValue(t *testing.T, srv *testserver.Server, name string) float64 {
	t.Helper()
	resp, raw := rawRequest(t, nil, "GET", srv.MetricsURL()+"/metrics", nil, nil)
	if resp.StatusCode != 200 {
		t.Fatalf("/metrics: HTTP %d", resp.StatusCode)
	}
	for _, l := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(l, name+" "); ok {
			got, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("%s = %s: %v", name, v, err)
			}
			return got
		}
	}
	t.Fatalf("/metrics has no %s:\n%s", name, raw)
	return 0
}
