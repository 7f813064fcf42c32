package postgres

import (
	"fmt"

	"github.com/jackc/pgx/v5"
)

// pgconnConfig parses the URL without echoing it: it may hold a password.
func pgconnConfig(url string) (*pgx.ConnConfig, error) {
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("invalid postgres database URL")
	}
	return cfg, nil
}
