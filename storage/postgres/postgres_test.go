package postgres_test

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"

	"github.com/tributary-hs/tributary/internal/pgtest"
	"github.com/tributary-hs/tributary/storage"
	"github.com/tributary-hs/tributary/storage/postgres"
	"github.com/tributary-hs/tributary/storage/sqldb"
	"github.com/tributary-hs/tributary/storage/storagetest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	pgtest.StopShared()
	os.Exit(code)
}

func open(t *testing.T, url string) *sqldb.DB {
	t.Helper()
	s, err := postgres.Open(t.Context(), url)
	if err != nil {
		t.Fatalf("open: %v", err)
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
		return open(t, pgtest.URL(t))
	})
}

func TestReopenKeepsData(t *testing.T) {
	url := pgtest.URL(t)
	storagetest.ReopenKeepsData(t, func(ctx context.Context) (storage.Store, error) { return postgres.Open(ctx, url) },
		func(t *testing.T) storage.Store { return open(t, url) })
}

// TestConcurrentOpen opens a fresh database from several goroutines at once,
// as several server processes starting together would: the advisory lock
// must let exactly one of them apply each migration.
func TestConcurrentOpen(t *testing.T) {
	const n = 8
	url := pgtest.URL(t)
	stores := make([]*sqldb.DB, n)
	errs := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			stores[i], errs[i] = postgres.Open(t.Context(), url)
		})
	}
	close(start)
	wg.Wait()
	for i, s := range stores {
		if s != nil {
			t.Cleanup(func() { _ = s.Close() })
		}
		if errs[i] != nil {
			t.Errorf("Open %d: %v", i, errs[i])
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	// Each store works, and they share one account data stream.
	ctx := t.Context()
	seen := map[int64]bool{}
	for i, s := range stores {
		pos, err := s.PutAccountData(ctx, "@a:x", "", fmt.Sprint(i), []byte(`{}`))
		if err != nil {
			t.Fatal(err)
		}
		if seen[pos] {
			t.Fatalf("store %d got position %d again: the stream row was inserted twice", i, pos)
		}
		seen[pos] = true
	}
	if err := stores[0].WithTx(ctx, func(ctx context.Context) error {
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// TestQueryPlans: no hot statement reads a large table whole.
func TestQueryPlans(t *testing.T) {
	storagetest.QueryPlans(t, open(t, pgtest.URL(t)))
}
