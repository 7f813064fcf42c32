// Package sqlite opens the SQLite backend (modernc.org/sqlite, pure Go): WAL,
// a busy timeout, one writer connection and a pool of readers, and the
// shared migrations applied at start.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/tributary-hs/tributary/storage/sqldb"
)

type dialect struct{}

func (dialect) Name() string { return "sqlite" }

func (dialect) IsUniqueViolation(err error) bool {
	var se *sqlite.Error
	if errors.As(err, &se) {
		c := se.Code()
		return c == sqlite3.SQLITE_CONSTRAINT_UNIQUE || c == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY
	}
	return false
}

// LockMigrations has nothing to do: write transactions begin IMMEDIATE, which
// already serialises them across processes.
func (dialect) LockMigrations(context.Context, *sql.Tx) error { return nil }

// uriPath escapes the characters that would end or alter the path part of
// an SQLite URI filename.
var uriPath = strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23")

// dsn is a URI filename for path, which must be absolute (a relative path
// starting with "//" would read as an authority). busy_timeout comes first
// so that the other pragmas (journal_mode needs a lock) wait for the lock
// instead of failing at once when another connection holds it.
//
// temp_store=MEMORY keeps statement journals off the disk: a multi-row
// insert inside a transaction journals the pages it changes, so that it
// can fail alone, and in a temporary file those were as many bytes written
// as the database's own (an import of 20,000 Slack messages: 311 MB in
// 147,000 writes, for a 71 MB database).
func dsn(path string, readOnly bool, o options) string {
	q := url.Values{}
	for _, p := range []string{"busy_timeout(10000)", "journal_mode(WAL)", "foreign_keys(ON)", "synchronous(NORMAL)", "temp_store(MEMORY)"} {
		q.Add("_pragma", p)
	}
	q.Set("_txlock", "immediate")
	if readOnly {
		q.Add("_pragma", "query_only(ON)")
	} else {
		// A checkpoint copies every page of the log into the database; a
		// long insert dirties the same pages (index interiors, the ends of
		// sequential indexes) again and again, and a bigger log copies them
		// fewer times: 16,384 pages (64 MiB) wrote 28% fewer bytes than
		// SQLite's 1,000 in an import of 20,000 Slack messages. A running
		// server's log is copied in the background besides (see
		// checkpointer), and its writer checkpoints only at this length, to
		// start the log over; readers look up only the part of the log not
		// yet copied, which the checkpointer keeps short. The log's file
		// keeps that length once it grew to it (journal_size_limit), so
		// that starting over rewrites it instead of growing it again.
		q.Add("_pragma", fmt.Sprintf("wal_autocheckpoint(%d)", writerCheckpointPages))
		q.Add("_pragma", fmt.Sprintf("journal_size_limit(%d)", writerCheckpointPages*4096))
	}
	if !readOnly && o.cacheMiB > 0 {
		// The one writer may keep more pages than SQLite's 2 MiB: a big
		// database's indexes keyed by event ID take random pages, which
		// otherwise are read again from the file for each insert (an
		// import of a million messages with 128 MiB of pages: a third
		// less system time, a quarter less wall time). A small database
		// never fills it. The size is of memory, not of pages: see
		// pageMemory.
		//
		// A big cache costs every commit that split a B-tree page,
		// though: balancing parks a page under the number of the lock
		// page (1 GiB into the file) while it swaps page numbers, and at
		// the commit SQLite drops the cached pages past the end of the
		// database by walking every page of the cache, since one of
		// them was seen that far out (pcache1TruncateUnsafe: 7% of a
		// send batch's commit with 4,096 pages cached). So a server
		// keeps a few MiB (core/config's sqlite_cache_mib), an import
		// with its few big commits many.
		q.Add("_pragma", fmt.Sprintf("cache_size(%d)", o.cacheMiB<<20/pageMemory))
	}
	return "file:" + uriPath.Replace(filepath.ToSlash(path)) + "?" + q.Encode()
}

// pageMemory is the memory a cached page takes: SQLite allocates each
// page of its cache (4 KiB) with its header (some 300 bytes), and modernc's
// allocator rounds that up to its next size class, 8 KiB. A cache_size of
// 32 MiB of pages held 62 MiB (issue 14: what grew run over run in
// BenchmarkRSSCurve was mostly this cache filling).
const pageMemory = 8 << 10

// Option tunes Open.
type Option func(*options)

type options struct {
	cacheMiB int
	bulk     bool
}

// WithCacheMiB bounds the memory of the writer's page cache, in MiB (0:
// SQLite's default, 2 MiB of pages).
func WithCacheMiB(n int) Option { return func(o *options) { o.cacheMiB = n } }

// WithBulk tunes the writer for one long bulk insert, such as an import
// on a stopped server's data: the write-ahead log is checkpointed less
// often, by the writer alone at its autocheckpoint (no checkpointer).
func WithBulk(on bool) Option { return func(o *options) { o.bulk = on } }

// Open opens (creating if needed) the database file at path and migrates it.
//
// synchronous=NORMAL in WAL mode keeps every committed transaction across a
// process crash (kill -9); only a power loss can take the last commits.
func Open(ctx context.Context, path string, opts ...Option) (*sqldb.DB, error) {
	var o options
	for _, f := range opts {
		f(&o)
	}
	if path == "" {
		return nil, errors.New("no SQLite database path")
	}
	path, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("create database directory: %w", err)
	}
	writer, err := sql.Open("sqlite", dsn(path, false, o))
	if err != nil {
		return nil, err
	}
	writer.SetMaxOpenConns(1)
	writer.SetMaxIdleConns(1)
	writer.SetConnMaxLifetime(0)
	if err := writer.PingContext(ctx); err != nil {
		_ = writer.Close()
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	db := sqldb.New(writer, writer, dialect{})
	if err := db.Migrate(ctx, sqldb.Migrations()); err != nil {
		_ = db.Close()
		return nil, err
	}
	reader, err := sql.Open("sqlite", dsn(path, true, options{}))
	if err != nil {
		_ = writer.Close()
		return nil, err
	}
	// Readers are kept, not closed after each burst (a woken crowd of
	// long-polls takes them all): a new connection starts with an empty
	// page cache.
	readers := max(4, runtime.NumCPU())
	reader.SetMaxOpenConns(readers)
	reader.SetMaxIdleConns(readers)
	out := sqldb.New(writer, reader, dialect{})
	if !o.bulk {
		ckpt, err := sql.Open("sqlite", dsn(path, true, options{}))
		if err != nil {
			_ = out.Close()
			return nil, err
		}
		c, err := startCheckpointer(ckpt, path, checkpointPages)
		if err != nil {
			_ = ckpt.Close()
			_ = out.Close()
			return nil, err
		}
		out.OnClose(c.Close)
	}
	return out, nil
}
