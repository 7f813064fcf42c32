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
func TestMemoryLimit(t *testing.T) {
	testRuntimeSetting(t, "memory_limit_mib: 200\n", "go_gc_gomemlimit_bytes", []runtimeSetting{
		{"default", false, nil, math.MaxInt64},
		{"configured", true, nil, 200 << 20},
		{"GOMEMLIMIT wins", true, []string{"GOMEMLIMIT=100MiB"}, 100 << 20},
	})
}

// The server sets Go's GOGC from gc_percent (75 by default), and leaves a
// GOGC the operator set.
func TestGCPercent(t *testing.T) {
	testRuntimeSetting(t, "gc_percent: 150\n", "go_gc_gogc_percent", []runtimeSetting{
		{"default", false, nil, 75},
		{"configured", true, nil, 150},
		{"GOGC wins", true, []string{"GOGC=120"}, 120},
	})
}

// runtimeSetting is a server started with the test's configuration or
// without, with env, and the runtime's value it must have.
type runtimeSetting struct {
	name       string
	configured bool
	env        []string
	want       float64
}

// testRuntimeSetting starts a server for each case and reads the
// runtime's value back from metric on its metrics listener.
func testRuntimeSetting(t *testing.T, config, metric string, cases []runtimeSetting) {
	conf := filepath.Join(t.TempDir(), "runtime.yaml")
	if err := os.WriteFile(conf, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			args := []string{"--metrics-listen", "127.0.0.1:0"}
			if tc.configured {
				args = append(args, "--config", conf)
			}
			srv := testserver.Start(t, testserver.Options{Args: args, Env: tc.env})
			if got := metricValue(t, srv, metric); got != tc.want {
				t.Fatalf("%s = %.0f, want %.0f", metric, got, tc.want)
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
