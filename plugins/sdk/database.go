package sdk

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"go.mau.fi/util/dbutil"
	_ "modernc.org/sqlite" // the SQLite driver of the plugin's own database
)

// schemaRE is what the host names plugin schemas (bridges/manager).
var schemaRE = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

// openDatabase opens the plugin's own bridge database: in the server's
// PostgreSQL database, in a schema of its own, when the host says so;
// otherwise an SQLite file in the plugin's data directory.
func openDatabase(ctx context.Context, env *Env) (*dbutil.Database, error) {
	if env.DatabaseURL != "" {
		return openPostgres(ctx, env.DatabaseURL, env.DatabaseSchema)
	}
	if env.DataDir == "" {
		return nil, fmt.Errorf("no data directory for the bridge database")
	}
	if err := os.MkdirAll(env.DataDir, 0o700); err != nil {
		return nil, err
	}
	return openSQLite(filepath.Join(env.DataDir, "bridge.db"))
}

// openSQLite opens path with foreign keys (bridgev2's schema relies on
// them), WAL, and write transactions that take the lock at BEGIN, so that
// bridgev2's concurrent writers wait for each other instead of failing.
func openSQLite(path string) (*dbutil.Database, error) {
	q := url.Values{}
	for _, p := range []string{"foreign_keys(1)", "journal_mode(WAL)", "synchronous(NORMAL)", "busy_timeout(10000)"} {
		q.Add("_pragma", p)
	}
	q.Set("_txlock", "immediate")
	raw, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
	if err != nil {
		return nil, err
	}
	raw.SetMaxOpenConns(5)
	raw.SetMaxIdleConns(5)
	db, err := dbutil.NewWithDB(raw, "sqlite3")
	if err != nil {
		_ = raw.Close()
		return nil, err
	}
	return db, nil
}

// openPostgres opens the database at dsn with every connection's
// search_path on the plugin's schema, which it creates if needed: the
// plugin's tables (bridgev2's "portal", "message"…) never meet the
// server's or another plugin's.
func openPostgres(ctx context.Context, dsn, schema string) (*dbutil.Database, error) {
	if !schemaRE.MatchString(schema) {
		return nil, fmt.Errorf("invalid database schema %q", schema)
	}
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("database URL: %w", err)
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connecting to the database: %w", err)
	}
	_, err = conn.Exec(ctx, `CREATE SCHEMA IF NOT EXISTS "`+schema+`"`)
	_ = conn.Close(ctx)
	if err != nil {
		return nil, fmt.Errorf("creating schema %s: %w", schema, err)
	}
	cfg.RuntimeParams["search_path"] = schema
	raw := stdlib.OpenDB(*cfg)
	raw.SetMaxOpenConns(10)
	raw.SetMaxIdleConns(2)
	db, err := dbutil.NewWithDB(raw, "postgres")
	if err != nil {
		_ = raw.Close()
		return nil, err
	}
	return db, nil
}
