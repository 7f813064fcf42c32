package open_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tributary-hs/tributary/storage/open"
)

func TestSQLitePath(t *testing.T) {
	for _, tc := range []struct{ name, prefix string }{{"plain path", ""}, {"sqlite: prefix", "sqlite:"}} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "tributary.db")
			s, err := open.Open(t.Context(), tc.prefix+path)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if b := s.Backend(); b != "sqlite" {
				t.Fatalf("Backend() = %q, want sqlite", b)
			}
			if err := s.SetMeta(t.Context(), "k", "v"); err != nil {
				t.Fatal(err)
			}
			if _, err := os.Stat(path); err != nil {
				t.Fatalf("database file: %v", err)
			}
		})
	}
}

func TestRefused(t *testing.T) {
	for _, dsn := range []string{"", "mysql://x", "sqlite:"} {
		s, err := open.Open(t.Context(), dsn)
		if err == nil {
			s.Close()
			t.Errorf("Open(%q) succeeded", dsn)
		}
	}
}

// TestPostgresURL checks that postgres URLs go to the PostgreSQL backend,
// and that its errors do not echo the password in the URL.
func TestPostgresURL(t *testing.T) {
	for _, dsn := range []string{
		"postgres://tributary:s3cr3t-pw@127.0.0.1:1/tributary?connect_timeout=5",
		"postgresql://tributary:s3cr3t-pw@127.0.0.1:1/tributary?connect_timeout=5",
		"postgres://tributary:s3cr3t-pw@127.0.0.1:1/tributary?sslmode=nonsense",
	} {
		s, err := open.Open(t.Context(), dsn)
		if err == nil {
			s.Close()
			t.Fatalf("Open of an unreachable PostgreSQL succeeded")
		}
		if !strings.Contains(strings.ToLower(err.Error()), "postgres") {
			t.Errorf("Open(%s): error %q does not come from the PostgreSQL backend", dsn[:strings.Index(dsn, ":")], err)
		}
		if strings.Contains(err.Error(), "s3cr3t-pw") {
			t.Errorf("error echoes the password: %v", err)
		}
	}
}
