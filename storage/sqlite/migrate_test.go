package sqlite

import (
	"context"
	"database/sql"
	"io/fs"
	"path/filepath"
	"testing"
	"testing/fstest"

	"github.com/tributary-hs/tributary/storage"
	"github.com/tributary-hs/tributary/storage/sqldb"
	"github.com/tributary-hs/tributary/storage/storagetest"
)

// migrationsBefore are the migrations older than version.
func migrationsBefore(t *testing.T, version string) fs.FS {
	t.Helper()
	all := sqldb.Migrations()
	names, err := fs.Glob(all, "*.sql")
	if err != nil {
		t.Fatal(err)
	}
	out := fstest.MapFS{}
	for _, n := range names {
		if n < version {
			body, err := fs.ReadFile(all, n)
			if err != nil {
				t.Fatal(err)
			}
			out[n] = &fstest.MapFile{Data: body}
		}
	}
	return out
}

func TestTxnScopeMigration(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "tributary.db")
	raw, err := sql.Open("sqlite", dsn(path, false))
	if err != nil {
		t.Fatal(err)
	}
	raw.SetMaxOpenConns(1)
	old := sqldb.New(raw, raw, dialect{})
	if err := old.Migrate(ctx, migrationsBefore(t, storagetest.TxnScopeVersion)); err != nil {
		t.Fatal(err)
	}
	storagetest.TxnScopeMigration(t, func(q string) error {
		_, err := raw.ExecContext(ctx, q)
		return err
	}, func(t *testing.T) storage.Store {
		if err := old.Close(); err != nil {
			t.Fatal(err)
		}
		s, err := Open(ctx, path)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() })
		return s
	})
}
