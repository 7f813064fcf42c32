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
func dsn(path string, readOnly bool, cacheMiB int) string {
	q := url.Values{}
	for _, p := range []string{"busy_timeout(10000)", "journal_mode(WAL)", "foreign_keys(ON)", "synchronous(NORMAL)"} {
		q.Add("_pragma", p)
	}
	q.Set("_txlock", "immediate")
	if readOnly {
		q.Add("_pragma", "query_only(ON)")
	} else if cacheMiB > 0 {
		// The one writer may keep more pages than SQLite's 2 MiB: a big
		// database's indexes keyed by event ID take random pages, which
		// otherwise are read again from the file for each insert (an
		// import of a million messages with 128 MiB: a third less system
		// time, a quarter less wall time). A small database never fills it.
		q.Add("_pragma", fmt.Sprintf("cache_size(%d)", -cacheMiB*1024))
	}
	return "file:" + uriPath.Replace(filepath.ToSlash(path)) + "?" + q.Encode()
}

// Option tunes Open.
type Option func(*options)

type options struct{ cacheMiB int }

// WithCacheMiB bounds the writer's page cache (0: SQLite's default).
func WithCacheMiB(n int) Option { return func(o *options) { o.cacheMiB = n } }

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
	writer, err := sql.Open("sqlite", dsn(path, false, o.cacheMiB))
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
	reader, err := sql.Open("sqlite", dsn(path, true, 0))
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
	return sqldb.New(writer, reader, dialect{}), nil
}
