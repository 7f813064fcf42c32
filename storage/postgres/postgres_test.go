package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"

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
	url := pgtest.URL(t)
	s := open(t, url)
	// "Without statistics" must mean without: autovacuum analysed a table
	// midway through the fill once (its statistics saw the 4 big rooms, not
	// yet the 150 small ones, and led the planner to a scan that neither a
	// new nor an analysed database plans). The check with statistics runs
	// its own ANALYZE.
	conn, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	rows, err := conn.Query(t.Context(), `SELECT format('ALTER TABLE %I SET (autovacuum_enabled = false)', tablename)
		FROM pg_tables WHERE schemaname = current_schema()`)
	if err != nil {
		t.Fatal(err)
	}
	stmts, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil || len(stmts) == 0 {
		t.Fatalf("tables: %v %v", stmts, err)
	}
	for _, stmt := range stmts {
		if _, err := conn.Exec(t.Context(), stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	storagetest.QueryPlans(t, s)
}

// TestPoolKeepsConnections: bursts of work that take every connection of
// the pool at once (long-polls waking together) reuse the connections of
// the first burst instead of opening new PostgreSQL sessions each time.
func TestPoolKeepsConnections(t *testing.T) {
	url := pgtest.URL(t)
	s := open(t, url)
	ctx := t.Context()
	mon, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer mon.Close(ctx)
	backends := func() map[int]bool {
		rows, err := mon.Query(ctx, `SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()`)
		if err != nil {
			t.Fatal(err)
		}
		pids, err := pgx.CollectRows(rows, pgx.RowTo[int])
		if err != nil {
			t.Fatal(err)
		}
		out := map[int]bool{}
		for _, p := range pids {
			out[p] = true
		}
		return out
	}
	burst := func() {
		var inside, wg sync.WaitGroup
		inside.Add(postgres.PoolSize)
		for range postgres.PoolSize {
			wg.Go(func() {
				err := s.WithTx(ctx, func(ctx context.Context) error {
					_, err := s.GetMeta(ctx, "k")
					inside.Done()
					inside.Wait() // every connection is taken at once
					if errors.Is(err, storage.ErrNotFound) {
						err = nil
					}
					return err
				})
				if err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
	}
	burst()
	first := backends()
	if len(first) < postgres.PoolSize {
		t.Fatalf("%d backends after a burst that took %d connections", len(first), postgres.PoolSize)
	}
	for i := range 3 {
		burst()
		for pid := range backends() {
			if !first[pid] {
				t.Fatalf("burst %d opened a new session (backend %d): the pool closed connections of the first burst", i+2, pid)
			}
		}
	}
}

// TestPurge: PurgeRoom leaves no row of the room and covers the schema.
func TestPurge(t *testing.T) {
	storagetest.Purge(t, open(t, pgtest.URL(t)))
}

// TestPurgeHistory: PurgeHistory deletes the history before the point and
// what depends on it, keeps the state, and covers the schema.
func TestPurgeHistory(t *testing.T) {
	storagetest.PurgeHistory(t, open(t, pgtest.URL(t)))
}

// TestNoJIT: statements are not JIT-compiled, however costly the planner
// guesses them (compiling the batched reads of a first /sync took a second
// where running them took milliseconds), unless the URL asks for it.
func TestNoJIT(t *testing.T) {
	url := pgtest.URL(t)
	costly := `SELECT COUNT(*) FROM generate_series(1, 100000000) a JOIN generate_series(1, 100000000) b ON a = b`
	jitted := func(s *sqldb.DB) bool {
		p, err := s.Explain(t.Context(), costly)
		if err != nil {
			t.Fatal(err)
		}
		return strings.Contains(p.String(), "JIT")
	}
	if jitted(open(t, url)) {
		t.Errorf("a statement is JIT-compiled")
	}
	sep := "?"
	if strings.Contains(url, "?") {
		sep = "&"
	}
	// Where the server has no JIT, "on" changes nothing and this tells nothing.
	t.Logf("with jit=on in the URL, JIT-compiled: %v", jitted(open(t, url+sep+"jit=on")))
}
