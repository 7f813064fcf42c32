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
	// No JIT compilation unless the URL asks for it (?jit=on): the
	// planner's costs of the statements that read many rooms at once, on
	// tables it has no statistics of yet, pass jit_above_cost, and
	// compiling took a second where running takes milliseconds.
	if _, set := cfg.RuntimeParams["jit"]; !set {
		cfg.RuntimeParams["jit"] = "off"
	}
	return cfg, nil
}
