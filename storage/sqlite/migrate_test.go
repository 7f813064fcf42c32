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
	path := filepath.Join(t.TempDir(), "tributary.db")
	raw, err := sql.Open("sqlite", dsn(path, false, options{}))
	if err != nil {
		t.Fatal(err)
	}
	raw.SetMaxOpenConns(1)
	old := sqldb.New(raw, raw, dialect{})
	if err := old.Migrate(ctx, migrationsBefore(t, version)); err != nil {
		t.Fatal(err)
	}
	check(t, func(q string) error {
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

// Migration 0026 drops the "value":null that stored push rules hold on
// set_tweak actions, and leaves tweaks with a value alone.
func TestPushRulesNullTweakMigration(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "tributary.db")
	raw, err := sql.Open("sqlite", dsn(path, false, options{}))
	if err != nil {
		t.Fatal(err)
	}
	raw.SetMaxOpenConns(1)
	old := sqldb.New(raw, raw, dialect{})
	if err := old.Migrate(ctx, migrationsBefore(t, "0026")); err != nil {
		t.Fatal(err)
	}
	const stored = `{"global":{"override":[{"actions":["notify",{"set_tweak":"highlight","value":null},` +
		`{"set_tweak":"sound","value":"default"}],"rule_id":"x"}]}}`
	if _, err := raw.ExecContext(ctx, `INSERT INTO account_data (user_id, room_id, data_type, content, stream_pos)
		VALUES ('@a:x', '', 'm.push_rules', ?, 1)`, stored); err != nil {
		t.Fatal(err)
	}
	if err := old.Close(); err != nil {
		t.Fatal(err)
	}
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	e, err := s.GetAccountData(ctx, "@a:x", "", "m.push_rules")
	if err != nil {
		t.Fatal(err)
	}
	want := `{"global":{"override":[{"actions":["notify",{"set_tweak":"highlight"},` +
		`{"set_tweak":"sound","value":"default"}],"rule_id":"x"}]}}`
	if string(e.Content) != want {
		t.Fatalf("after the migration:\n %s\nwant\n %s", e.Content, want)
	}
}

// The connections take the pragmas their DSN names: statement journals in
// memory on both, a writer's longer write-ahead log than SQLite's default
// and a bulk writer's longer still, and a writer's page cache of as many
// pages as fit its MiB (8 KiB each, see pageMemory).
func TestConnectionPragmas(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "tributary.db")
	for _, c := range []struct {
		name       string
		readOnly   bool
		o          options
		checkpoint int
		cacheSize  int
	}{
		{"writer", false, options{cacheMiB: 32}, writerCheckpointPages, 4096},
		{"bulk writer", false, options{cacheMiB: 256, bulk: true}, writerCheckpointPages, 32768},
		{"reader", true, options{}, 1000, -2000},
	} {
		t.Run(c.name, func(t *testing.T) {
			raw, err := sql.Open("sqlite", dsn(path, c.readOnly, c.o))
			if err != nil {
				t.Fatal(err)
			}
			defer raw.Close()
			var tempStore, checkpoint int
			if err := raw.QueryRowContext(ctx, `PRAGMA temp_store`).Scan(&tempStore); err != nil {
				t.Fatal(err)
			}
			if err := raw.QueryRowContext(ctx, `PRAGMA wal_autocheckpoint`).Scan(&checkpoint); err != nil {
				t.Fatal(err)
			}
			if tempStore != 2 || checkpoint != c.checkpoint {
				t.Fatalf("temp_store %d (want 2, memory), wal_autocheckpoint %d (want %d)", tempStore, checkpoint, c.checkpoint)
			}
			var cacheSize int
			if err := raw.QueryRowContext(ctx, `PRAGMA cache_size`).Scan(&cacheSize); err != nil {
				t.Fatal(err)
			}
			if cacheSize != c.cacheSize {
				t.Fatalf("cache_size %d, want %d", cacheSize, c.cacheSize)
			}
		})
	}
}
