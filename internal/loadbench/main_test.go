package loadbench

import (
	"os"
	"testing"

	"github.com/tributary-hs/tributary/internal/pgtest"
)

// TestMain stops the PostgreSQL cluster the benchmarks' postgres variants
// shared, which would otherwise outlive the test binary.
//
// With TRIBUTARY_CROWD_PROBE set, the binary is BenchmarkSyncCrowd's probe
// in a process of its own (see probeApart) and runs nothing else.
func TestMain(m *testing.M) {
	if u := os.Getenv("TRIBUTARY_CROWD_PROBE"); u != "" {
		os.Exit(probeProcess(u))
	}
	code := m.Run()
	pgtest.StopShared()
	os.Exit(code)
}
