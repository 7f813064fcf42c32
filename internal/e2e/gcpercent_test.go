package e2e

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/tributary-hs/tributary/internal/testserver"
)

// The server sets Go's GOGC from gc_percent (75 by default), and leaves a
// GOGC the operator set. The runtime's value is read back from the
// metrics listener.
func TestGCPercent(t *testing.T) {
	conf := filepath.Join(t.TempDir(), "gc.yaml")
	if err := os.WriteFile(conf, []byte("gc_percent: 150\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
		env  []string
		want float64
	}{
		{"default", nil, nil, 75},
		{"configured", []string{"--config", conf}, nil, 150},
		{"GOGC wins", []string{"--config", conf}, []string{"GOGC=120"}, 120},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := testserver.Start(t, testserver.Options{Args: append([]string{"--metrics-listen", "127.0.0.1:0"}, tc.args...),
				Env: tc.env})
			resp, raw := rawRequest(t, nil, "GET", srv.MetricsURL()+"/metrics", nil, nil)
			if resp.StatusCode != 200 {
				t.Fatalf("/metrics: HTTP %d", resp.StatusCode)
			}
			for _, l := range strings.Split(string(raw), "\n") {
				if v, ok := strings.CutPrefix(l, "go_gc_gogc_percent "); ok {
					got, err := strconv.ParseFloat(v, 64)
					if err != nil || got != tc.want {
						t.Fatalf("go_gc_gogc_percent = %s, want %.0f", v, tc.want)
					}
					return
				}
			}
			t.Fatalf("/metrics has no go_gc_gogc_percent:\n%s", raw)
		})
	}
}
