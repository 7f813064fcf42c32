package postgres

import (
	"context"
	"io/fs"
	"testing"
	"testing/fstest"

	"github.com/jackc/pgx/v5/stdlib"

	"github.com/tributary-hs/tributary/internal/pgtest"
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
	url := pgtest.URL(t)
	cfg, err := pgconnConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	raw := stdlib.OpenDB(*cfg)
	old := sqldb.New(raw, raw, dialect{})
	t.Cleanup(func() { _ = old.Close() })
	if err := old.Migrate(ctx, migrationsBefore(t, storagetest.TxnScopeVersion)); err != nil {
		t.Fatal(err)
	}
	storagetest.TxnScopeMigration(t, func(q string) error {
		_, err := raw.ExecContext(ctx, q)
		return err
	}, func(t *testing.T) storage.Store {
		s, err := Open(ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() })
		return s
	})
}

// Migration 0160 moves the messages and reactions imports recorded into
// event_aliases.
func TestAliasMessagesMigration(t *testing.T) {
	ctx := context.Background()
	url := pgtest.URL(t)
	cfg, err := pgconnConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	raw := stdlib.OpenDB(*cfg)
	old := sqldb.New(raw, raw, dialect{})
	t.Cleanup(func() { _ = old.Close() })
	if err := old.Migrate(ctx, migrationsBefore(t, storagetest.AliasMessagesVersion)); err != nil {
		t.Fatal(err)
	}
	storagetest.AliasMessagesMigration(t, func(q string) error {
		_, err := raw.ExecContext(ctx, q)
		return err
	}, func(t *testing.T) storage.Store {
		s, err := Open(ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() })
		return s
	})
}
