// Package postgres opens the PostgreSQL backend: a pgx/v5 pool behind
// database/sql (the stdlib adapter) and the shared migrations, serialised
// between processes with an advisory lock.
package postgres

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

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

// Open connects to the database at the postgres:// URL and migrates it.
func Open(ctx context.Context, url string) (*sqldb.DB, error) {
	cfg, err := pgconnConfig(url)
	if err != nil {
		return nil, err
	}
	pool := stdlib.OpenDB(*cfg)
	pool.SetMaxOpenConns(20)
	pool.SetMaxIdleConns(5)
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
