package pgtest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

func TestMain(m *testing.M) {
	code := m.Run()
	StopShared()
	os.Exit(code)
}

func TestVersionLess(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want bool
	}{
		{"9.6", "10", true}, {"10", "9.6", false}, {"15", "16", true}, {"16", "15", false},
		{"15", "15", false}, {"9.5", "9.6", true}, {"15", "15.1", true},
	} {
		if got := versionLess(tc.a, tc.b); got != tc.want {
			t.Errorf("versionLess(%q, %q) = %v", tc.a, tc.b, got)
		}
	}
}

func TestFindBinaries(t *testing.T) {
	root := t.TempDir()
	mk := func(dir string, names ...string) {
		must(t, os.MkdirAll(dir, 0o755))
		for _, n := range names {
			must(t, os.WriteFile(filepath.Join(dir, n), []byte("#!/bin/sh\n"), 0o755))
		}
	}
	mk(filepath.Join(root, "9.6", "bin"), "initdb", "pg_ctl")
	mk(filepath.Join(root, "14", "bin"), "initdb", "pg_ctl")
	mk(filepath.Join(root, "17", "bin"), "initdb") // incomplete: skipped
	old := versionedBinDirs
	versionedBinDirs = filepath.Join(root, "*", "bin")
	t.Cleanup(func() { versionedBinDirs = old })

	t.Setenv("PATH", t.TempDir())
	got, err := findBinaries()
	must(t, err)
	if want := filepath.Join(root, "14", "bin"); got != want {
		t.Fatalf("findBinaries() = %s, want %s", got, want)
	}

	onPath := t.TempDir()
	mk(onPath, "initdb", "pg_ctl")
	t.Setenv("PATH", onPath)
	got, err = findBinaries()
	must(t, err)
	if got != onPath {
		t.Fatalf("findBinaries() = %s, want the PATH entry %s", got, onPath)
	}

	t.Setenv("PATH", t.TempDir())
	versionedBinDirs = filepath.Join(t.TempDir(), "*", "bin")
	_, err = findBinaries()
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("findBinaries() without binaries: %v, want ErrUnavailable", err)
	}
}

func TestUnavailableSkips(t *testing.T) {
	t.Setenv(EnvRequire, "")
	t.Setenv(EnvSkipDir, "") // no marker for make test's warning: nothing real was skipped
	skipped := false
	t.Run("sub", func(t *testing.T) {
		defer func() { skipped = t.Skipped() }()
		skipOrFail(t, fmt.Errorf("%w: none here", ErrUnavailable))
	})
	if !skipped {
		t.Fatal("the test was not skipped")
	}
}

// A skip leaves one marker per skipped test in TRIBUTARY_PGTEST_SKIP_DIR,
// naming the test and the reason; a failure leaves none.
func TestUnavailableLeavesMarker(t *testing.T) {
	dir := t.TempDir()
	t.Setenv(EnvSkipDir, dir)
	t.Setenv(EnvRequire, "")
	for range 2 {
		t.Run("skipped", func(t *testing.T) {
			skipOrFail(t, fmt.Errorf("%w: none here", ErrUnavailable))
		})
	}
	entries, err := os.ReadDir(dir)
	must(t, err)
	if len(entries) != 2 {
		t.Fatalf("%d markers in %s, want 2", len(entries), dir)
	}
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), filepath.Base(os.Args[0])+"-") {
			t.Errorf("marker %s is not named after the test binary %s", e.Name(), filepath.Base(os.Args[0]))
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		must(t, err)
		if !strings.HasPrefix(string(b), t.Name()+"/skipped") || !strings.Contains(string(b), "PostgreSQL is not available: none here") {
			t.Errorf("marker %s holds %q, want the test name and the reason", e.Name(), b)
		}
	}

	// A required PostgreSQL fails instead and leaves no marker.
	dir2 := t.TempDir()
	t.Setenv(EnvSkipDir, dir2)
	cmd := exec.Command(os.Args[0], "-test.run=^TestUnavailableFailsWhenRequired$")
	cmd.Env = append(os.Environ(), "PGTEST_HELPER=1", EnvRequire+"=1", EnvURL+"=")
	if out, err := cmd.CombinedOutput(); err == nil {
		t.Fatalf("required and unavailable: passed\n%s", out)
	}
	if entries, _ := os.ReadDir(dir2); len(entries) != 0 {
		t.Fatalf("a failure left markers %v", entries)
	}
}

// TestUnavailableFailsWhenRequired runs the test binary again to see a test
// fail, which this test itself must not.
func TestUnavailableFailsWhenRequired(t *testing.T) {
	if os.Getenv("PGTEST_HELPER") == "1" {
		skipOrFail(t, fmt.Errorf("%w: none here", ErrUnavailable))
		return
	}
	for _, tc := range []struct {
		require string
		fail    bool
	}{{"1", true}, {"", false}} {
		cmd := exec.Command(os.Args[0], "-test.run=^TestUnavailableFailsWhenRequired$", "-test.v")
		cmd.Env = append(os.Environ(), "PGTEST_HELPER=1", EnvRequire+"="+tc.require, EnvURL+"=", EnvSkipDir+"=")
		out, err := cmd.CombinedOutput()
		var exit *exec.ExitError
		if failed := errors.As(err, &exit); failed != tc.fail || (err != nil && exit == nil) {
			t.Fatalf("%s=%q: failed %v (%v), want %v\n%s", EnvRequire, tc.require, failed, err, tc.fail, out)
		}
		if !strings.Contains(string(out), "PostgreSQL is not available") {
			t.Fatalf("output lacks the reason:\n%s", out)
		}
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func databases(t *testing.T, serverURL string) map[string]bool {
	t.Helper()
	ctx := t.Context()
	conn, err := pgx.Connect(ctx, serverURL)
	must(t, err)
	defer conn.Close(context.Background())
	rows, err := conn.Query(ctx, `SELECT datname FROM pg_database`)
	must(t, err)
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	must(t, err)
	out := map[string]bool{}
	for _, n := range names {
		out[n] = true
	}
	return out
}

// TestCluster starts a private cluster, creates databases on it directly
// and through TRIBUTARY_TEST_POSTGRES_URL, and stops it.
func TestCluster(t *testing.T) {
	t.Setenv(EnvURL, "")
	c, err := Start()
	if err != nil {
		skipOrFail(t, err)
	}
	defer c.Stop()

	u1, u2 := c.NewDatabase(t), c.NewDatabase(t)
	if u1 == u2 {
		t.Fatalf("NewDatabase returned %s twice", u1)
	}
	for _, u := range []string{u1, u2} {
		conn, err := pgx.Connect(t.Context(), u)
		must(t, err)
		var tables int
		must(t, conn.QueryRow(t.Context(), `SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'`).Scan(&tables))
		if tables != 0 {
			t.Errorf("new database has %d tables", tables)
		}
		_, err = conn.Exec(t.Context(), `CREATE TABLE t (x INT)`)
		must(t, err)
		_ = conn.Close(context.Background())
	}

	// The same cluster used as an external server: databases are dropped
	// when the test ends, and Stop leaves the server alone.
	t.Setenv(EnvURL, c.URL())
	ext, err := Start()
	must(t, err)
	var name string
	t.Run("external", func(t *testing.T) {
		u := ext.NewDatabase(t)
		name = u[strings.LastIndex(u, "/")+1:]
		if i := strings.IndexByte(name, '?'); i >= 0 {
			name = name[:i]
		}
		if !databases(t, c.URL())[name] {
			t.Fatalf("database %s not created", name)
		}
		conn, err := pgx.Connect(t.Context(), u)
		must(t, err)
		_ = conn // left open: the drop must not depend on every connection being closed
	})
	if databases(t, c.URL())[name] {
		t.Fatalf("database %s not dropped at the end of the test", name)
	}
	ext.Stop()
	if _, err := pgx.Connect(t.Context(), u1); err != nil {
		t.Fatalf("external Stop stopped the server: %v", err)
	}

	dir := c.dir
	c.Stop()
	c.Stop()
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("cluster directory still there after Stop: %v", err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if conn, err := pgx.Connect(ctx, u1); err == nil {
		_ = conn.Close(context.Background())
		t.Fatal("server still answers after Stop")
	}
}

func TestSharedURL(t *testing.T) {
	u1, u2 := URL(t), URL(t)
	if u1 == u2 {
		t.Fatalf("URL returned %s twice", u1)
	}
	conn, err := pgx.Connect(t.Context(), u2)
	must(t, err)
	must(t, conn.Ping(t.Context()))
	_ = conn.Close(context.Background())
}

// TestEveryUserStopsTheCluster: a test package that starts the shared
// cluster (URL, NewDatabase) must stop it in its TestMain, or each run
// leaves a PostgreSQL server running and its directory behind.
func TestEveryUserStopsTheCluster(t *testing.T) {
	uses, stops := map[string]bool{}, map[string]bool{}
	err := filepath.WalkDir("../..", func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "testdata" || strings.HasPrefix(d.Name(), ".")) && path != "../.." {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, "_test.go") {
			return nil
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		dir := filepath.Dir(path)
		if strings.Contains(string(src), "pgtest.URL(") || strings.Contains(string(src), ".NewDatabase(") {
			uses[dir] = true
		}
		if strings.Contains(string(src), "pgtest.StopShared()") {
			stops[dir] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(uses) == 0 {
		t.Fatal("found no package using the shared cluster: the walk looked in the wrong place")
	}
	for dir := range uses {
		if !stops[dir] {
			t.Errorf("%s uses the shared cluster but never calls pgtest.StopShared (add a TestMain)", dir)
		}
	}
}
