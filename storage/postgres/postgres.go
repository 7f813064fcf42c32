// Package postgres opens the PostgreSQL backend: a pgx/v5 pool behind
// database/sql (the stdlib adapter) and the shared migrations, serialised
// between processes with an advisory lock.
package postgres

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/tributary-hs/tributary/storage/sqldb"
)

type dialect struct{}

func (dialect) Name() string { return "postgres" }

func (dialect) IsUniqueViolation(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23505"
}

// migrationLockKey is an arbitrary constant naming Tributary's migration lock.
const migrationLockKey = 0x7472_6962_7574

func (dialect) LockMigrations(ctx context.Context, tx *sql.Tx) error {
	_, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(migrationLockKey))
	return err
}

// The pool keeps every connection it opens: with fewer idle than open
// connections, each burst of work (long-polls waking together, concurrent
// sends) closed the connections above the idle limit and opened them again
// for the next burst, a new PostgreSQL backend each time, whose start cost
// PostgreSQL more CPU than the queries and whose statements had to be
// prepared again (issue 14: ~2,600 sessions in one light load run). Idle
// connections close after a while of quiet, and every connection is
// renewed now and then so that a server-side setting or a backend's memory
// does not stay with it forever.
const (
	poolSize        = 20
	poolMaxIdleTime = 10 * time.Minute
	poolMaxLifetime = time.Hour
)

func configurePool(pool *sql.DB) {
	pool.SetMaxOpenConns(poolSize)
	pool.SetMaxIdleConns(poolSize)
	pool.SetConnMaxIdleTime(poolMaxIdleTime)
	pool.SetConnMaxLifetime(poolMaxLifetime)
}

// Open connects to the database at the postgres:// URL and migrates it.
func Open(ctx context.Context, url string) (*sqldb.DB, error) {
	cfg, err := pgconnConfig(url)
	if err != nil {
		return nil, err
	}
	pool := stdlib.OpenDB(*cfg)
	configurePool(pool)
	if err := pool.PingContext(ctx); err != nil {
		_ = pool.Close()
		return nil, fmt.Errorf("connect to postgres: %w", err)
	}
	db := sqldb.New(pool, pool, dialect{})
	if err := db.Migrate(ctx, sqldb.Migrations()); err != nil {
		_ = db.Close()
		return nil, err
	}
	return db, nil
}
