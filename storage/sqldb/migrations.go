package sqldb

import (
	"embed"
	"io/fs"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Migrations are the schema files both engines run. They stay shared while
// the SQL is portable; a dialect that needs its own statement for a step can
// pass its own fs.FS to Migrate.
func Migrations() fs.FS {
	sub, err := fs.Sub(migrationFiles, "migrations")
	if err != nil {
		panic(err) // the embedded directory is fixed at build time
	}
	return sub
}
