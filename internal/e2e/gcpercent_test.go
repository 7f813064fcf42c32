package e2e

import (
	"os"
	"path/filepath"
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
			if got := metricValue(t, srv, "go_gc_gogc_percent"); got != tc.want {
				t.Fatalf("go_gc_gogc_percent = %.0f, want %.0f", got, tc.want)
			}
		})
	}
}
