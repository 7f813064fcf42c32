// Package pgtest gives tests a real, throwaway PostgreSQL.
//
// If TRIBUTARY_TEST_POSTGRES_URL is set (a postgres:// URL of an existing
// server, as a role that may create databases), databases are created there
// and dropped when the test ends. Otherwise Start runs a private cluster with
// the PostgreSQL binaries it finds (initdb and pg_ctl on PATH, else the
// highest version under /usr/lib/postgresql/*/bin) in a temporary directory,
// listening on a free loopback port, and Stop throws it away.
//
// Tests that cannot get a PostgreSQL skip, unless TRIBUTARY_REQUIRE_POSTGRES=1,
// in which case they fail. A skip is easy to miss in the output of many
// packages, so when TRIBUTARY_PGTEST_SKIP_DIR names a directory, every skipped
// test also writes a marker file there (one per test, named after the test
// binary); make test sets it and prints a warning if any marker exists.
//
// A package using URL should stop the shared cluster in TestMain:
//
//	func TestMain(m *testing.M) {
//		code := m.Run()
//		pgtest.StopShared()
//		os.Exit(code)
//	}
//
// A test binary killed before StopShared runs (a -timeout panic, kill -9)
// leaves the server running and its directory behind (tributary-pg-* in the
// temporary directory); pg_ctl -D DIR/data -m immediate stop ends it.
package pgtest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

const (
	// EnvURL names an existing server to create test databases on.
	EnvURL = "TRIBUTARY_TEST_POSTGRES_URL"
	// EnvRequire, set to 1, turns "no PostgreSQL available" from a skip into a failure.
	EnvRequire = "TRIBUTARY_REQUIRE_POSTGRES"
	// EnvSkipDir names an existing directory where each test skipped for want
	// of PostgreSQL leaves a marker file (see the package comment).
	EnvSkipDir = "TRIBUTARY_PGTEST_SKIP_DIR"
)

// ErrUnavailable is wrapped by Start's error when this machine cannot run a
// PostgreSQL (no binaries, or running as root without a postgres user);
// tests skip on it unless TRIBUTARY_REQUIRE_POSTGRES=1.
var ErrUnavailable = errors.New("PostgreSQL is not available")

// Cluster is a PostgreSQL server tests create databases on: a private one
// started by Start, or the server named by TRIBUTARY_TEST_POSTGRES_URL.
type Cluster struct {
	server   *url.URL // URL of the server; its path is replaced per database
	external bool     // the server is not ours: drop databases, never stop it

	bin     string     // directory of initdb and pg_ctl
	dir     string     // temporary directory holding data/, sock/ and log
	runAs   *user.User // non-nil when running as root: run the binaries as this user
	seq     atomic.Int64
	stopped sync.Once
}

// Start returns a cluster to create databases on: the server named by
// TRIBUTARY_TEST_POSTGRES_URL, or a new private one.
func Start() (*Cluster, error) {
	if s := os.Getenv(EnvURL); s != "" {
		return external(s)
	}
	bin, err := findBinaries()
	if err != nil {
		return nil, err
	}
	c := &Cluster{bin: bin}
	if os.Geteuid() == 0 {
		// PostgreSQL refuses to run as root.
		if c.runAs, err = user.Lookup("postgres"); err != nil {
			return nil, fmt.Errorf("%w: running as root and there is no postgres user to run the server as: %v", ErrUnavailable, err)
		}
		if _, err := exec.LookPath("runuser"); err != nil {
			return nil, fmt.Errorf("%w: running as root and runuser is not installed: %v", ErrUnavailable, err)
		}
	}
	if err := c.start(); err != nil {
		c.Stop()
		return nil, err
	}
	return c, nil
}

func external(s string) (*Cluster, error) {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") || u.Host == "" {
		return nil, fmt.Errorf("%s must be a postgres://user@host:port URL", EnvURL)
	}
	c := &Cluster{server: u, external: true}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := c.connect(ctx, "postgres")
	if err != nil {
		return nil, fmt.Errorf("connect to the server in %s: %w", EnvURL, err)
	}
	_ = conn.Close(ctx)
	return c, nil
}

// versionedBinDirs is where Debian and Ubuntu install each major version.
var versionedBinDirs = "/usr/lib/postgresql/*/bin"

// findBinaries returns the directory holding initdb and pg_ctl.
func findBinaries() (string, error) {
	if p, err := exec.LookPath("initdb"); err == nil {
		dir := filepath.Dir(p)
		if isExecutable(filepath.Join(dir, "pg_ctl")) {
			return dir, nil
		}
		// initdb on PATH may be a symlink into the real bin directory.
		if real, err := filepath.EvalSymlinks(p); err == nil && isExecutable(filepath.Join(filepath.Dir(real), "pg_ctl")) {
			return filepath.Dir(real), nil
		}
	}
	dirs, _ := filepath.Glob(versionedBinDirs)
	// Highest version first, compared as numbers ("9.6" < "10" < "15").
	sort.Slice(dirs, func(i, j int) bool {
		return versionLess(filepath.Base(filepath.Dir(dirs[j])), filepath.Base(filepath.Dir(dirs[i])))
	})
	for _, d := range dirs {
		if isExecutable(filepath.Join(d, "initdb")) && isExecutable(filepath.Join(d, "pg_ctl")) {
			return d, nil
		}
	}
	return "", fmt.Errorf("%w: initdb and pg_ctl are neither on PATH nor in /usr/lib/postgresql/*/bin (install PostgreSQL, e.g. apt-get install postgresql, or set %s)", ErrUnavailable, EnvURL)
}

func versionLess(a, b string) bool {
	as, bs := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < len(as) && i < len(bs); i++ {
		x, errx := strconv.Atoi(as[i])
		y, erry := strconv.Atoi(bs[i])
		if errx != nil || erry != nil {
			if as[i] != bs[i] {
				return as[i] < bs[i]
			}
			continue
		}
		if x != y {
			return x < y
		}
	}
	return len(as) < len(bs)
}

func isExecutable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

func (c *Cluster) start() error {
	parent := os.TempDir()
	if c.runAs != nil {
		// The server user must be able to reach the directory.
		if fi, err := os.Stat(parent); err != nil || fi.Mode().Perm()&0o001 == 0 {
			parent = "/tmp"
		}
	}
	dir, err := os.MkdirTemp(parent, "tributary-pg-")
	if err != nil {
		return err
	}
	c.dir = dir
	if err := os.Mkdir(filepath.Join(dir, "sock"), 0o700); err != nil {
		return err
	}
	if c.runAs != nil {
		if err := chownTree(dir, c.runAs); err != nil {
			return fmt.Errorf("hand %s to the postgres user: %w", dir, err)
		}
	}

	// --locale=C: do not depend on the locales installed here; --no-sync: a
	// throwaway cluster needs no durability.
	if out, err := c.run(2*time.Minute, "initdb", "-D", c.dataDir(), "-U", "postgres", "--auth=trust",
		"-E", "UTF8", "--locale=C", "--no-sync"); err != nil {
		return fmt.Errorf("initdb: %w\n%s", err, out)
	}

	// The free port is found by binding and releasing it, so another process
	// can take it in between: try a few ports.
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		port, err := freePort()
		if err != nil {
			return err
		}
		opts := fmt.Sprintf("-c listen_addresses=127.0.0.1 -p %d -k '%s' -c fsync=off -c full_page_writes=off -c synchronous_commit=off -c max_connections=200",
			port, filepath.Join(dir, "sock"))
		out, err := c.run(90*time.Second, "pg_ctl", "-D", c.dataDir(), "-l", c.logFile(), "-o", opts, "-w", "-t", "60", "start")
		if err != nil {
			lastErr = fmt.Errorf("pg_ctl start: %w\n%s\nserver log:\n%s", err, out, c.logTail())
			continue
		}
		c.server = &url.URL{
			Scheme:   "postgres",
			User:     url.User("postgres"),
			Host:     net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
			Path:     "/postgres",
			RawQuery: "sslmode=disable",
		}
		if err := c.waitReady(30 * time.Second); err != nil {
			return fmt.Errorf("%w\nserver log:\n%s", err, c.logTail())
		}
		return nil
	}
	return lastErr
}

func (c *Cluster) dataDir() string { return filepath.Join(c.dir, "data") }
func (c *Cluster) logFile() string { return filepath.Join(c.dir, "log") }

func (c *Cluster) logTail() string {
	b, _ := os.ReadFile(c.logFile())
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// run runs a PostgreSQL binary, as the postgres user when we are root, and
// returns its combined output. The server started by pg_ctl writes to the log
// file (-l), so it does not hold our output pipe open.
func (c *Cluster) run(timeout time.Duration, name string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	prog := filepath.Join(c.bin, name)
	var cmd *exec.Cmd
	if c.runAs != nil {
		cmd = exec.CommandContext(ctx, "runuser", append([]string{"-u", c.runAs.Username, "--", prog}, args...)...)
	} else {
		cmd = exec.CommandContext(ctx, prog, args...)
	}
	cmd.Dir = c.dir
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.Bytes(), err
}

// waitReady connects and pings until the server answers or the deadline passes.
func (c *Cluster) waitReady(within time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	backoff := 10 * time.Millisecond
	for {
		conn, err := c.connect(ctx, "postgres")
		if err == nil {
			err = conn.Ping(ctx)
			_ = conn.Close(context.Background())
			if err == nil {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("PostgreSQL did not become ready within %v: %w", within, err)
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 200*time.Millisecond)
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func chownTree(root string, u *user.User) error {
	uid, err := strconv.Atoi(u.Uid)
	if err != nil {
		return err
	}
	gid, err := strconv.Atoi(u.Gid)
	if err != nil {
		return err
	}
	return filepath.WalkDir(root, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, uid, gid)
	})
}

// dbURL is the server URL with the database replaced.
func (c *Cluster) dbURL(name string) string {
	u := *c.server
	u.Path = "/" + name
	u.RawPath = ""
	return u.String()
}

func (c *Cluster) connect(ctx context.Context, database string) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig(c.dbURL(database))
	if err != nil {
		return nil, errors.New("invalid PostgreSQL URL") // do not echo a password
	}
	return pgx.ConnectConfig(ctx, cfg)
}

// URL returns the postgres:// URL of the server's maintenance database.
func (c *Cluster) URL() string { return c.dbURL("postgres") }

// NewDatabase creates a new empty database with a unique name and returns its
// postgres:// URL. On a server named by TRIBUTARY_TEST_POSTGRES_URL the
// database is dropped when the test ends.
func (c *Cluster) NewDatabase(t testing.TB) string {
	t.Helper()
	var rnd [4]byte
	_, _ = rand.Read(rnd[:])
	name := fmt.Sprintf("tributary_test_%d_%d_%s", os.Getpid(), c.seq.Add(1), hex.EncodeToString(rnd[:]))

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	conn, err := c.connect(ctx, "postgres")
	if err != nil {
		t.Fatalf("pgtest: connect to the maintenance database: %v", err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, `CREATE DATABASE `+pgx.Identifier{name}.Sanitize()); err != nil {
		t.Fatalf("pgtest: create database %s: %v", name, err)
	}
	if c.external {
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			conn, err := c.connect(ctx, "postgres")
			if err != nil {
				t.Errorf("pgtest: connect to drop %s: %v", name, err)
				return
			}
			defer conn.Close(context.Background())
			if _, err := conn.Exec(ctx, `DROP DATABASE IF EXISTS `+pgx.Identifier{name}.Sanitize()+` WITH (FORCE)`); err != nil {
				t.Errorf("pgtest: drop database %s: %v", name, err)
			}
		})
	}
	return c.dbURL(name)
}

// Stop stops a private cluster and removes its directory; for a server
// named by TRIBUTARY_TEST_POSTGRES_URL it does nothing. Safe to call twice.
func (c *Cluster) Stop() {
	if c == nil || c.external {
		return
	}
	c.stopped.Do(func() {
		if c.dir == "" {
			return
		}
		if _, err := os.Stat(filepath.Join(c.dataDir(), "postmaster.pid")); err == nil {
			if out, err := c.run(60*time.Second, "pg_ctl", "-D", c.dataDir(), "-m", "immediate", "-w", "stop"); err != nil {
				fmt.Fprintf(os.Stderr, "pgtest: pg_ctl stop: %v\n%s\n", err, out)
			}
		}
		if err := os.RemoveAll(c.dir); err != nil {
			fmt.Fprintf(os.Stderr, "pgtest: remove %s: %v\n", c.dir, err)
		}
	})
}

var shared struct {
	once    sync.Once
	mu      sync.Mutex
	cluster *Cluster
	err     error
}

// URL returns the URL of a new empty database on the test process's shared
// cluster, started on first use. It skips the test if no PostgreSQL can be
// had (fails instead if TRIBUTARY_REQUIRE_POSTGRES=1).
func URL(t testing.TB) string {
	t.Helper()
	shared.once.Do(func() {
		c, err := Start()
		shared.mu.Lock()
		shared.cluster, shared.err = c, err
		shared.mu.Unlock()
	})
	shared.mu.Lock()
	c, err := shared.cluster, shared.err
	shared.mu.Unlock()
	if err != nil {
		skipOrFail(t, err)
	}
	if c == nil {
		t.Fatal("pgtest: the shared cluster was stopped (StopShared) before this test")
	}
	return c.NewDatabase(t)
}

// skipOrFail ends the test for a failed Start: a skip if PostgreSQL is not
// available and not required, else a failure.
func skipOrFail(t testing.TB, err error) {
	t.Helper()
	if errors.Is(err, ErrUnavailable) && os.Getenv(EnvRequire) != "1" {
		markSkipped(t, err)
		t.Skipf("pgtest: %v (set %s=1 to fail instead of skipping)", err, EnvRequire)
	}
	t.Fatalf("pgtest: %v", err)
}

// markSkipped leaves a marker for t in the directory named by
// TRIBUTARY_PGTEST_SKIP_DIR, if set: a file named after the test binary
// holding the test's name and the reason. Test binaries of several packages
// run at once, so each marker is a new file. A marker that cannot be written
// fails the test: the skip would otherwise go unnoticed.
func markSkipped(t testing.TB, reason error) {
	t.Helper()
	dir := os.Getenv(EnvSkipDir)
	if dir == "" {
		return
	}
	f, err := os.CreateTemp(dir, filepath.Base(os.Args[0])+"-*")
	if err != nil {
		t.Fatalf("pgtest: PostgreSQL is not available and the skip cannot be recorded in %s: %v", EnvSkipDir, err)
	}
	_, err = fmt.Fprintf(f, "%s\t%s\n", t.Name(), reason)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatalf("pgtest: record the skip in %s: %v", f.Name(), err)
	}
}

// StopShared stops the cluster URL started, if any. Call it from TestMain
// after m.Run.
func StopShared() {
	shared.mu.Lock()
	c := shared.cluster
	shared.cluster = nil
	shared.mu.Unlock()
	c.Stop()
}
