// Package open picks the storage backend for a database URL.
package open

import (
	"context"
	"fmt"
	"strings"

	"github.com/tributary-hs/tributary/storage"
	"github.com/tributary-hs/tributary/storage/postgres"
	"github.com/tributary-hs/tributary/storage/sqlite"
)

// Options tune the backend; zero values take its defaults.
type Options struct {
	// SQLiteCacheMiB bounds the SQLite writer's page cache.
	SQLiteCacheMiB int
	// SQLiteBulk tunes the SQLite writer for one long bulk insert (an
	// import on a stopped server's data): sqlite.WithBulk.
	SQLiteBulk bool
}

// Open opens the store named by dsn: "postgres://…" or "postgresql://…" for
// PostgreSQL, "sqlite:PATH" or a plain file path for SQLite.
func Open(ctx context.Context, dsn string, opts ...Options) (storage.Store, error) {
	var o Options
	if len(opts) > 0 {
		o = opts[0]
	}
	switch {
	case strings.HasPrefix(dsn, "postgres://"), strings.HasPrefix(dsn, "postgresql://"):
		return postgres.Open(ctx, dsn)
	case strings.HasPrefix(dsn, "sqlite:"):
		return sqlite.Open(ctx, strings.TrimPrefix(dsn, "sqlite:"), sqlite.WithCacheMiB(o.SQLiteCacheMiB), sqlite.WithBulk(o.SQLiteBulk))
	case strings.Contains(dsn, "://"):
		return nil, fmt.Errorf("unsupported database URL scheme (use postgres:// or a SQLite file path)")
	case dsn == "":
		return nil, fmt.Errorf("no database configured")
	default:
		return sqlite.Open(ctx, dsn, sqlite.WithCacheMiB(o.SQLiteCacheMiB), sqlite.WithBulk(o.SQLiteBulk))
	}
}
