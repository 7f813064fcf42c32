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

func dsn(path string, readOnly bool) string {
	q := url.Values{}
	for _, p := range []string{"journal_mode(WAL)", "busy_timeout(10000)", "foreign_keys(ON)", "synchronous(NORMAL)"} {
		q.Add("_pragma", p)
	}
	q.Set("_txlock", "immediate")
	if readOnly {
		q.Add("_pragma", "query_only(ON)")
	}
	return "file:" + path + "?" + q.Encode()
}

// Open opens (creating if needed) the database file at path and migrates it.
//
// synchronous=NORMAL in WAL mode keeps every committed transaction across a
// process crash (kill -9); only a power loss can take the last commits.
func Open(ctx context.Context, path string) (*sqldb.DB, error) {
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("create database directory: %w", err)
		}
	}
	writer, err := sql.Open("sqlite", dsn(path, false))
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
	reader, err := sql.Open("sqlite", dsn(path, true))
	if err != nil {
		_ = writer.Close()
		return nil, err
	}
	reader.SetMaxOpenConns(max(4, runtime.NumCPU()))
	reader.SetMaxIdleConns(2)
	return sqldb.New(writer, reader, dialect{}), nil
}
