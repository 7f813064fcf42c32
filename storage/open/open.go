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

// Open opens the store named by dsn: "postgres://…" or "postgresql://…" for
// PostgreSQL, "sqlite:PATH" or a plain file path for SQLite.
func Open(ctx context.Context, dsn string) (storage.Store, error) {
	switch {
	case strings.HasPrefix(dsn, "postgres://"), strings.HasPrefix(dsn, "postgresql://"):
		return postgres.Open(ctx, dsn)
	case strings.HasPrefix(dsn, "sqlite:"):
		return sqlite.Open(ctx, strings.TrimPrefix(dsn, "sqlite:"))
	case strings.Contains(dsn, "://"):
		return nil, fmt.Errorf("unsupported database URL scheme (use postgres:// or a SQLite file path)")
	case dsn == "":
		return nil, fmt.Errorf("no database configured")
	default:
		return sqlite.Open(ctx, dsn)
	}
}
