package e2eplugins

import (
	"os"
	"testing"

	"github.com/tributary-hs/tributary/internal/pgtest"
)

// TestMain stops the PostgreSQL cluster the tests shared and removes the
// plugin binary they shared.
func TestMain(m *testing.M) {
	code := m.Run()
	pgtest.StopShared()
	if fakeBridgeDir != "" {
		_ = os.RemoveAll(fakeBridgeDir)
	}
	os.Exit(code)
}
