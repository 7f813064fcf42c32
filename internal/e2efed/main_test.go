package e2efed

import (
	"os"
	"testing"

	"github.com/tributary-hs/tributary/internal/pgtest"
)

// TestMain stops the PostgreSQL cluster the package's tests shared.
func TestMain(m *testing.M) {
	code := m.Run()
	pgtest.StopShared()
	os.Exit(code)
}
