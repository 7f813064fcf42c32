package e2eplugins

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/tributary-hs/tributary/internal/pgtest"
)

// TestMain stops the PostgreSQL cluster the tests shared and removes the
// plugin binary they shared.
func TestMain(m *testing.M) {
	code := m.Run()
	pgtest.StopShared()
	if bin, err := fakeBridgeBin(); err == nil {
		_ = os.RemoveAll(filepath.Dir(bin))
	}
	os.Exit(code)
}
