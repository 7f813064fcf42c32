package sqlite

import (
	"context"
	"database/sql"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The checkpointer copies the whole log on its own connection while the
// writer holds no transaction; the writer's next transaction then starts
// the log over.
func TestCheckpointerCopiesTheLog(t *testing.T) {
	ctx := context.Background()
	path, insert := testLog(t)
	for range 20 {
		insert(100)
	}
	raw, err := sql.Open("sqlite", dsn(path, true, options{}))
	if err != nil {
		t.Fatal(err)
	}
	// A backlog it never reaches: the test runs the passes.
	c, err := startCheckpointer(raw, path, 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	status := func() (logPages, copied int) {
		t.Helper()
		var busy int
		if err := raw.QueryRowContext(ctx, `PRAGMA wal_checkpoint(PASSIVE)`).Scan(&busy, &logPages, &copied); err != nil {
			t.Fatal(err)
		}
		return logPages, copied
	}
	backlog := func() int {
		t.Helper()
		n, err := c.backlog()
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	// 2,000 rows of 1 KB: some 500 pages, below the writer's autocheckpoint,
	// all of them the backlog read from the log's index.
	before := backlog()
	long, err := c.pass(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if long < 400 || long >= writerCheckpointPages || before != long {
		t.Fatalf("the log is %d pages before the pass, its backlog %d", long, before)
	}
	if logPages, copied := status(); logPages != long || copied != long || backlog() != 0 {
		t.Fatalf("after the pass %d of %d pages copied (backlog %d), want all %d", copied, logPages, backlog(), long)
	}
	insert(1)
	if logPages, _ := status(); logPages >= long/10 {
		t.Fatalf("the writer's next commit left a log of %d pages (was %d): not started over", logPages, long)
	}
	insert(100)
	if n := backlog(); n == 0 {
		t.Fatal("no backlog after a commit")
	}
}

// The checkpointer's own loop copies a backlog of its threshold.
func TestCheckpointerRuns(t *testing.T) {
	path, insert := testLog(t)
	raw, err := sql.Open("sqlite", dsn(path, true, options{}))
	if err != nil {
		t.Fatal(err)
	}
	c, err := startCheckpointer(raw, path, 10)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	insert(50)
	deadline := time.Now().Add(10 * time.Second)
	for {
		n, err := c.backlog()
		if err != nil {
			t.Fatal(err)
		}
		if n < 10 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("a backlog of %d pages left after 10 s", n)
		}
		time.Sleep(checkpointPoll / 5)
	}
}

// testLog is a database written by a writer connection as the server's
// (its autocheckpoint far off); insert commits n rows of 1 KB.
func testLog(t *testing.T) (path string, insert func(n int)) {
	t.Helper()
	ctx := context.Background()
	path = filepath.Join(t.TempDir(), "tributary.db")
	w, err := sql.Open("sqlite", dsn(path, false, options{}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = w.Close() })
	w.SetMaxOpenConns(1)
	if _, err := w.ExecContext(ctx, `CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)`); err != nil {
		t.Fatal(err)
	}
	return path, func(n int) {
		t.Helper()
		tx, err := w.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		for range n {
			if _, err := tx.ExecContext(ctx, `INSERT INTO t (v) VALUES ($1)`, strings.Repeat("x", 1000)); err != nil {
				t.Fatal(err)
			}
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
	}
}
