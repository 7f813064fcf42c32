package rooms

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/tributary-hs/tributary/internal/pgtest"
	"github.com/tributary-hs/tributary/storage"
	"github.com/tributary-hs/tributary/storage/postgres"
	"github.com/tributary-hs/tributary/storage/sqlite"
)

func TestMain(m *testing.M) {
	code := m.Run()
	pgtest.StopShared()
	os.Exit(code)
}

// openStore opens an empty database of the kind named ("sqlite" or
// "postgres", which skips when no PostgreSQL can be had).
func openStore(t *testing.T, db string) storage.Store {
	t.Helper()
	ctx := context.Background()
	var (
		s   storage.Store
		err error
	)
	if db == "postgres" {
		s, err = postgres.Open(ctx, pgtest.URL(t))
	} else {
		s, err = sqlite.Open(ctx, filepath.Join(t.TempDir(), "rooms.db"))
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}
