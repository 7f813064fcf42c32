package sqlite_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"

	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/storage"
	"github.com/tributary-hs/tributary/storage/sqlite"
	"github.com/tributary-hs/tributary/storage/storagetest"
)

func open(t *testing.T, path string) storage.Store {
	t.Helper()
	s, err := sqlite.Open(t.Context(), path)
	if err != nil {
		t.Fatalf("open %s: %v", path, err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return s
}

func TestConformance(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storage.Store {
		return open(t, filepath.Join(t.TempDir(), "tributary.db"))
	})
}

func TestReopenKeepsData(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "dir", "tributary.db") // missing directories are created
	storagetest.ReopenKeepsData(t, func(ctx context.Context) (storage.Store, error) { return sqlite.Open(ctx, path) },
		func(t *testing.T) storage.Store { return open(t, path) })
}

// TestReaderSeesWrites checks that reads, which go through the reader pool,
// see committed writes at once: of the same handle and of another one.
func TestReaderSeesWrites(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "tributary.db")
	a, b := open(t, path), open(t, path)
	for i, user := range []id.UserID{"@a:x", "@b:x", "@c:x"} {
		if err := a.CreateAccount(ctx, &storage.Account{UserID: user, Localpart: user.Localpart(), CreatedAt: 1}); err != nil {
			t.Fatal(err)
		}
		for _, s := range []storage.Store{a, b} {
			if n, err := s.CountAccounts(ctx); err != nil || n != int64(i+1) {
				t.Fatalf("CountAccounts after %d writes = %d, %v", i+1, n, err)
			}
			if _, err := s.GetAccount(ctx, user); err != nil {
				t.Fatalf("GetAccount(%s) after its write: %v", user, err)
			}
		}
	}
	if err := a.SetMeta(ctx, "k", "v1"); err != nil {
		t.Fatal(err)
	}
	if err := b.SetMeta(ctx, "k", "v2"); err != nil {
		t.Fatal(err)
	}
	if v, err := a.GetMeta(ctx, "k"); err != nil || v != "v2" {
		t.Fatalf("GetMeta through the first handle = %q, %v; want the second handle's write", v, err)
	}
	// Inside a transaction, reads see the transaction's writes.
	err := a.WithTx(ctx, func(ctx context.Context) error {
		if err := a.SetMeta(ctx, "k", "v3"); err != nil {
			return err
		}
		if v, err := a.GetMeta(ctx, "k"); err != nil || v != "v3" {
			t.Errorf("GetMeta inside the transaction = %q, %v", v, err)
		}
		return errors.New("roll back")
	})
	if err == nil {
		t.Fatal("WithTx returned nil")
	}
	if v, err := b.GetMeta(ctx, "k"); err != nil || v != "v2" {
		t.Fatalf("GetMeta after rollback = %q, %v; want v2", v, err)
	}
}

// TestAwkwardPath opens a database whose path holds characters that mean
// something in a URI.
func TestAwkwardPath(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "a dir?x=1#frag%41", "tributary.db")
	s := open(t, path)
	if err := s.SetMeta(ctx, "k", "v"); err != nil {
		t.Fatal(err)
	}
	s2 := open(t, path)
	if v, err := s2.GetMeta(ctx, "k"); err != nil || v != "v" {
		t.Fatalf("GetMeta through a second handle = %q, %v", v, err)
	}
	if matches, _ := filepath.Glob(filepath.Join(filepath.Dir(path), "tributary.db")); len(matches) != 1 {
		t.Fatalf("database file not at %s", path)
	}
}

// TestQueryPlans: no hot statement reads a large table whole.
func TestQueryPlans(t *testing.T) {
	s, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "tributary.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	storagetest.QueryPlans(t, s)
}

// TestPurge: PurgeRoom leaves no row of the room and covers the schema.
func TestPurge(t *testing.T) {
	s, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "tributary.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	storagetest.Purge(t, s)
}

// TestPurgeHistory: PurgeHistory deletes the history before the point and
// what depends on it, keeps the state, and covers the schema.
func TestPurgeHistory(t *testing.T) {
	s, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "tributary.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	storagetest.PurgeHistory(t, s)
}
