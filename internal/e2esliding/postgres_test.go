package e2esliding

import (
	"strings"
	"testing"

	"github.com/tributary-hs/tributary/internal/pgtest"
)

// TestPostgres runs the flows against PostgreSQL, on one server with a
// database of its own. It skips when no PostgreSQL can be had, unless
// TRIBUTARY_REQUIRE_POSTGRES=1.
func TestPostgres(t *testing.T) {
	e := newEnv(t, "--database-url", pgtest.URL(t))
	if !strings.Contains(e.srv.Logs(), `"database":"postgres"`) {
		t.Fatalf("server does not report a PostgreSQL backend:\n%s", e.srv.Logs())
	}
	for _, f := range flows {
		t.Run(f.name, func(t *testing.T) { f.run(t, e) })
	}
}
