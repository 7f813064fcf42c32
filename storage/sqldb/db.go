// Package sqldb is the one database/sql implementation of every storage
// interface, shared by the SQLite and PostgreSQL backends. SQL is written once
// in the subset both engines accept ($N placeholders, ON CONFLICT, RETURNING,
// BIGINT and TEXT columns); Dialect carries the few differences. It imports
// storage and core/types only.
package sqldb

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"reflect"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/tributary-hs/tributary/core/types"
	"github.com/tributary-hs/tributary/storage"
)

// Dialect is what differs between the engines.
type Dialect interface {
	Name() string
	// IsUniqueViolation reports whether err is a unique or primary key violation.
	IsUniqueViolation(err error) bool
	// LockMigrations serialises migrations between processes inside tx.
	LockMigrations(ctx context.Context, tx *sql.Tx) error
}

// DB implements storage.Store. Writes go to writer, reads to reader; for
// SQLite writer has one connection so that the database has a single writer,
// for PostgreSQL both are the same pool.
type DB struct {
	writer  *sql.DB
	reader  *sql.DB
	dialect Dialect
	// Prepared statements by SQL text, one cache per pool: parsing SQL was
	// a quarter of the CPU of an incremental /sync on SQLite.
	wstmts, rstmts *stmtCache
	// searchIndexed is the position up to which the timeline's events
	// were last seen in the search index (SQLite; see catchUpSearch).
	searchIndexed atomic.Int64
	// closers run first in Close (a backend's background work).
	closers []func() error
}

var _ storage.Store = (*DB)(nil)

// New wraps opened pools. Call Migrate before use.
func New(writer, reader *sql.DB, d Dialect) *DB {
	db := &DB{writer: writer, reader: reader, dialect: d, wstmts: newStmtCache(writer)}
	db.rstmts = db.wstmts
	if reader != writer {
		db.rstmts = newStmtCache(reader)
	}
	return db
}

func (db *DB) Backend() string { return db.dialect.Name() }

// OnClose has Close run fn first: a backend's background work on the
// database stops before its pools close.
func (db *DB) OnClose(fn func() error) { db.closers = append(db.closers, fn) }

func (db *DB) Close() error {
	var errs []error
	for _, fn := range db.closers {
		errs = append(errs, fn())
	}
	db.wstmts.close()
	if db.rstmts != db.wstmts {
		db.rstmts.close()
	}
	errs = append(errs, db.writer.Close())
	if db.reader != db.writer {
		errs = append(errs, db.reader.Close())
	}
	return errors.Join(errs...)
}

// txKey carries a transaction of one DB in a context: a context made by
// another store's WithTx does not divert this store's calls.
type txKey struct{ db *DB }

func (db *DB) tx(ctx context.Context) (*txn, bool) {
	tx, ok := ctx.Value(txKey{db}).(*txn)
	return tx, ok
}

// txn is a write transaction and, on SQLite, the statements it ran
// prepared (wc) that the writer's statement cache did not hold yet.
type txn struct {
	*sql.Tx
	db     *DB
	unseen map[string]bool
}

// stmt is the transaction's handle of a cached statement, nil if the cache
// holds none (then the query is noted, to be prepared after the commit).
// On SQLite only: the one writer connection is the transaction's, so the
// statement was prepared on it and runs without being parsed again — a
// commit of a few events parsed a dozen statements, the SQL text of a
// multi-row insert of thousands of rows as long as its values. PostgreSQL's
// driver keeps its own cache of prepared statements per connection.
func (t *txn) stmt(ctx context.Context, query string) *sql.Stmt {
	if t.db.dialect.Name() != "sqlite" {
		return nil
	}
	c := t.db.wstmts
	c.mu.RLock()
	st := c.stmts[query]
	c.mu.RUnlock()
	if st == nil {
		if t.unseen == nil {
			t.unseen = map[string]bool{}
		}
		t.unseen[query] = true
		return nil
	}
	return t.StmtContext(ctx, st)
}

// stmtQuerier runs one prepared statement, whatever query it is given (the
// statement's own).
type stmtQuerier struct{ st *sql.Stmt }

func (q stmtQuerier) ExecContext(ctx context.Context, _ string, args ...any) (sql.Result, error) {
	return q.st.ExecContext(ctx, args...)
}

func (q stmtQuerier) QueryContext(ctx context.Context, _ string, args ...any) (*sql.Rows, error) {
	return q.st.QueryContext(ctx, args...)
}

func (q stmtQuerier) QueryRowContext(ctx context.Context, _ string, args ...any) *sql.Row {
	return q.st.QueryRowContext(ctx, args...)
}

// wc is w for the statements a commit of events runs every time, whose SQL
// text is one of a few (the multi-row inserts come in power-of-two sizes):
// in a transaction on SQLite they run prepared. Never for SQL whose text
// varies from call to call (IN lists), which would fill the cache.
func (db *DB) wc(ctx context.Context, query string) querier {
	if tx, ok := db.tx(ctx); ok {
		if st := tx.stmt(ctx, query); st != nil {
			return querier{stmtQuerier{st}}
		}
		return querier{tx}
	}
	return querier{db.wstmts}
}

// WithTx runs fn in one write transaction carried by the context. The
// transaction is rolled back if fn fails or panics (the panic goes on): on
// SQLite it holds the only writer connection, which must not leak.
func (db *DB) WithTx(ctx context.Context, fn func(ctx context.Context) error) (err error) {
	if _, ok := db.tx(ctx); ok {
		return fn(ctx)
	}
	sqlTx, err := db.writer.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	tx := &txn{Tx: sqlTx, db: db}
	committed := false
	defer func() {
		if !committed {
			_ = tx.Rollback()
		}
	}()
	if err := fn(context.WithValue(ctx, txKey{db}, tx)); err != nil {
		return err
	}
	committed = true // Commit releases the transaction even when it fails
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	// Now that the writer connection is free: prepare what the next
	// transactions will run again.
	for q := range tx.unseen {
		db.wstmts.stmt(ctx, q)
	}
	return nil
}

// sqlQuerier is what *sql.Tx and the statement caches offer.
type sqlQuerier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// row is a *sql.Row, or the error of a query that was not run.
type row interface {
	Scan(dest ...any) error
	Err() error
}

type errRow struct{ err error }

func (r errRow) Scan(...any) error { return r.err }
func (r errRow) Err() error        { return r.err }

// querier runs statements whose arguments are text both engines can hold
// (checkText); the others fail without reaching the database.
type querier struct{ q sqlQuerier }

func (g querier) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	logQuery(ctx, query, args)
	if err := checkText(args); err != nil {
		return nil, err
	}
	return g.q.ExecContext(ctx, query, args...)
}

func (g querier) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	logQuery(ctx, query, args)
	if err := checkText(args); err != nil {
		return nil, err
	}
	return g.q.QueryContext(ctx, query, args...)
}

func (g querier) QueryRowContext(ctx context.Context, query string, args ...any) row {
	logQuery(ctx, query, args)
	if err := checkText(args); err != nil {
		return errRow{err}
	}
	return g.q.QueryRowContext(ctx, query, args...)
}

// w is the handle for writes: the context's transaction or the writer pool.
func (db *DB) w(ctx context.Context) querier {
	if tx, ok := db.tx(ctx); ok {
		return querier{tx}
	}
	return querier{db.wstmts}
}

// r is the handle for reads: the context's transaction (to see its own
// writes) or the reader pool.
func (db *DB) r(ctx context.Context) querier {
	if tx, ok := db.tx(ctx); ok {
		return querier{tx}
	}
	return querier{db.rstmts}
}

// exec runs a write and maps unique violations to storage.ErrConflict.
func (db *DB) exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	return db.execOn(ctx, db.w(ctx), query, args...)
}

// execCached is exec through wc.
func (db *DB) execCached(ctx context.Context, query string, args ...any) (sql.Result, error) {
	return db.execOn(ctx, db.wc(ctx, query), query, args...)
}

func (db *DB) execOn(ctx context.Context, q querier, query string, args ...any) (sql.Result, error) {
	res, err := q.ExecContext(ctx, query, args...)
	if err != nil {
		if db.dialect.IsUniqueViolation(err) {
			return nil, fmt.Errorf("%w: %v", storage.ErrConflict, err)
		}
		return nil, err
	}
	return res, nil
}

// checkText refuses, with a 400 M_INVALID_PARAM, statements with text
// arguments that are not types.ValidText: PostgreSQL fails them (a 500) where
// SQLite stores or looks the text up, and both engines must answer the same
// inputs alike. Handlers refuse the common cases earlier (path and query
// parameters, event types and state keys); this catches every text column,
// also those no one thought of. JSON kept as text holds NUL as the escape
// "\u0000", which passes.
func checkText(args []any) error {
	for _, a := range args {
		ok := true
		switch v := a.(type) {
		case nil, int, int64, bool, float64:
		case string:
			ok = types.ValidText(v)
		case []byte:
			ok = bytes.IndexByte(v, 0) < 0 && utf8.Valid(v)
		default: // named string types (id.UserID…) and pointers to them
			rv := reflect.ValueOf(a)
			for rv.Kind() == reflect.Pointer && !rv.IsNil() {
				rv = rv.Elem()
			}
			if rv.Kind() == reflect.String {
				ok = types.ValidText(rv.String())
			}
		}
		if !ok {
			return types.InvalidParam("Text must be valid UTF-8 without NUL characters")
		}
	}
	return nil
}

// insertNew runs an INSERT of a row that must not exist yet; ErrConflict if
// it does. The conflict is detected with ON CONFLICT DO NOTHING rather than
// by the unique violation: on PostgreSQL an error aborts the whole
// transaction, so a caller inside WithTx could not go on after a conflict as
// it can on SQLite.
func (db *DB) insertNew(ctx context.Context, what, query string, args ...any) error {
	res, err := db.exec(ctx, query+` ON CONFLICT DO NOTHING`, args...)
	if err != nil {
		return err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n == 0 {
		return fmt.Errorf("%w: %s", storage.ErrConflict, what)
	}
	return nil
}

// execOne runs a write that must touch a row, else ErrNotFound.
func (db *DB) execOne(ctx context.Context, query string, args ...any) error {
	res, err := db.exec(ctx, query, args...)
	if err != nil {
		return err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n == 0 {
		return storage.ErrNotFound
	}
	return nil
}

// notFound maps sql.ErrNoRows to storage.ErrNotFound.
func notFound(err error) error {
	if errors.Is(err, sql.ErrNoRows) {
		return storage.ErrNotFound
	}
	return err
}

func b2i(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

// Migrate applies the embedded migrations (files NNNN_name.sql in fsys) that
// have not been applied yet, each in its own transaction. Safe to run again
// and from several processes at once.
func (db *DB) Migrate(ctx context.Context, fsys fs.FS) error {
	names, err := fs.Glob(fsys, "*.sql")
	if err != nil {
		return err
	}
	sort.Strings(names)
	for _, name := range names {
		body, err := fs.ReadFile(fsys, name)
		if err != nil {
			return err
		}
		if err := db.applyMigration(ctx, strings.TrimSuffix(name, ".sql"), string(body)); err != nil {
			return fmt.Errorf("migration %s: %w", name, err)
		}
	}
	return nil
}

func (db *DB) applyMigration(ctx context.Context, version, body string) error {
	tx, err := db.writer.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback() }()
	if err := db.dialect.LockMigrations(ctx, tx); err != nil {
		return err
	}
	// Under the lock: on PostgreSQL, concurrent CREATE TABLE IF NOT EXISTS
	// of the same table can fail with a unique violation in the catalog.
	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version TEXT PRIMARY KEY, applied_at BIGINT NOT NULL)`); err != nil {
		return fmt.Errorf("create schema_migrations: %w", err)
	}
	var one int
	err = tx.QueryRowContext(ctx, `SELECT 1 FROM schema_migrations WHERE version = $1`, version).Scan(&one)
	if err == nil {
		return nil // already applied
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return err
	}
	for _, stmt := range splitStatements(body, db.dialect.Name()) {
		if _, err := tx.ExecContext(ctx, stmt); err != nil {
			return fmt.Errorf("%w\n%s", err, stmt)
		}
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)`,
		version, time.Now().UnixMilli()); err != nil {
		return err
	}
	return tx.Commit()
}

// splitStatements splits a migration on semicolons at line ends. Migrations
// hold no procedural code, so this is enough. A statement preceded by a
// comment line "-- only: NAME" runs only on the dialect of that name.
func splitStatements(body, dialect string) []string {
	var out []string
	for _, part := range strings.Split(body, ";\n") {
		var lines []string
		skip := false
		for _, l := range strings.Split(part, "\n") {
			t := strings.TrimSpace(l)
			if only, ok := strings.CutPrefix(t, "-- only:"); ok && strings.TrimSpace(only) != dialect {
				skip = true
			}
			if t != "" && !strings.HasPrefix(t, "--") {
				lines = append(lines, l)
			}
		}
		if skip {
			continue
		}
		if s := strings.TrimSuffix(strings.TrimSpace(strings.Join(lines, "\n")), ";"); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// stmtCache runs queries through prepared statements kept by SQL text. It
// stops adding statements past maxStmts (queries with IN lists of varying
// length would otherwise grow it without bound) and then runs them directly.
type stmtCache struct {
	pool  *sql.DB
	mu    sync.RWMutex
	stmts map[string]*sql.Stmt
}

const maxStmts = 512

func newStmtCache(pool *sql.DB) *stmtCache {
	return &stmtCache{pool: pool, stmts: map[string]*sql.Stmt{}}
}

func (c *stmtCache) stmt(ctx context.Context, query string) *sql.Stmt {
	c.mu.RLock()
	st, ok := c.stmts[query]
	n := len(c.stmts)
	c.mu.RUnlock()
	if ok || n >= maxStmts {
		return st
	}
	st, err := c.pool.PrepareContext(ctx, query)
	if err != nil {
		return nil // run directly; the error comes from there
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if old, ok := c.stmts[query]; ok {
		_ = st.Close()
		return old
	}
	c.stmts[query] = st
	return st
}

func (c *stmtCache) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if st := c.stmt(ctx, query); st != nil {
		return st.ExecContext(ctx, args...)
	}
	return c.pool.ExecContext(ctx, query, args...)
}

func (c *stmtCache) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	if st := c.stmt(ctx, query); st != nil {
		return st.QueryContext(ctx, args...)
	}
	return c.pool.QueryContext(ctx, query, args...)
}

func (c *stmtCache) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	if st := c.stmt(ctx, query); st != nil {
		return st.QueryRowContext(ctx, args...)
	}
	return c.pool.QueryRowContext(ctx, query, args...)
}

func (c *stmtCache) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, st := range c.stmts {
		_ = st.Close()
	}
	c.stmts = map[string]*sql.Stmt{}
}
