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
	migrateFrom(t, storagetest.TxnScopeVersion, storagetest.TxnScopeMigration)
}

// Migration 0160 moves the messages and reactions imports recorded into
// event_aliases.
func TestAliasMessagesMigration(t *testing.T) {
	migrateFrom(t, storagetest.AliasMessagesVersion, storagetest.AliasMessagesMigration)
}

// migrateFrom runs a storagetest migration check on a database migrated up
// to (not including) version: the check writes old rows through exec, then
// open gives the store that migrating the rest made of them.
func migrateFrom(t *testing.T, version string, check func(t *testing.T, exec func(string) error, open func(*testing.T) storage.Store)) {
	ctx := context.Background()
	url := pgtest.URL(t)
	cfg, err := pgconnConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	raw := stdlib.OpenDB(*cfg)
	old := sqldb.New(raw, raw, dialect{})
	t.Cleanup(func() { _ = old.Close() })
	if err := old.Migrate(ctx, migrationsBefore(t, version)); err != nil {
		t.Fatal(err)
	}
	check(t, func(q string) error {
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
