package loadbench

import (
	"os"
	"testing"

	"github.com/tributary-hs/tributary/internal/pgtest"
)

// TestMain stops the PostgreSQL cluster the benchmarks' postgres variants
// shared, which would otherwise outlive the test binary.
func TestMain(m *testing.M) {
	code := m.Run()
	pgtest.StopShared()
	os.Exit(code)
}
