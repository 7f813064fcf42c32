package e2e

import (
	"context"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"maunium.net/go/mautrix"

	"github.com/tributary-hs/tributary/internal/testserver"
)

// cleanEnv is the test's environment without TRIBUTARY_* variables, so that
// a developer's settings do not leak into CLI runs.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "TRIBUTARY_") {
			env = append(env, kv)
		}
	}
	return env
}

// runBinary runs the tributary binary with args and no server, returning its
// combined output and exit code. It fails the test if the command does not
// end within 30 s (a "serve" that should have refused to start).
func runBinary(t *testing.T, stdin string, args ...string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, testserver.Binary(t), args...)
	cmd.Env = cleanEnv()
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("tributary %v did not end: %s", args, out)
	}
	var ee *exec.ExitError
	switch {
	case err == nil:
		return string(out), 0
	case errors.As(err, &ee):
		return string(out), ee.ExitCode()
	default:
		t.Fatalf("tributary %v: %v", args, err)
		return "", -1
	}
}

// wantOneLineError checks a failed command: non-zero exit and a single line
// of output containing every one of want.
func wantOneLineError(t *testing.T, what, out string, code int, want ...string) {
	t.Helper()
	if code == 0 {
		t.Fatalf("%s: exit 0, want failure; output:\n%s", what, out)
	}
	if l := lines(out); len(l) != 1 {
		t.Fatalf("%s: %d lines of output, want one:\n%s", what, len(l), out)
	}
	for _, w := range want {
		if !strings.Contains(out, w) {
			t.Fatalf("%s: output %q does not mention %q", what, out, w)
		}
	}
}

func TestCLIUsers(t *testing.T) {
	srv := startClosed(t)
	run := func(t *testing.T, stdin string, args ...string) (string, error) {
		t.Helper()
		return srv.Run(t, stdin, args...)
	}

	t.Run("add admin", func(t *testing.T) {
		out, err := run(t, "", "user", "add", "bob", "--password", "bob's password", "--admin")
		if err != nil {
			t.Fatalf("user add: %v\n%s", err, out)
		}
		if !strings.Contains(out, "Created @bob:localhost (admin)") {
			t.Fatalf("user add output %q", out)
		}
		bob := login(t, srv, passwordLogin("bob", "bob's password"))
		st, body := srv.Do(t, "GET", tokensPath, bob.AccessToken, nil)
		wantStatus(t, "admin API as bob", st, body, http.StatusOK, "")
		name, err := srv.Client(t).GetDisplayName(t.Context(), bob.UserID)
		if err != nil || name.DisplayName != "bob" {
			t.Fatalf("bob's display name %+v %v", name, err)
		}
	})

	t.Run("add duplicate", func(t *testing.T) {
		out, err := run(t, "", "user", "add", "bob", "--password", "another password")
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			t.Fatalf("duplicate user add: %v\n%s", err, out)
		}
		wantOneLineError(t, "duplicate", out, ee.ExitCode(), "already taken")
		out, err = run(t, "", "user", "add", "Bob", "--password", "another password")
		if err == nil {
			t.Fatalf("user add Bob after bob succeeded: %s", out)
		}
		login(t, srv, passwordLogin("bob", "bob's password")) // password unchanged
	})

	t.Run("add refusals", func(t *testing.T) {
		for name, args := range map[string][]string{
			"invalid name":   {"user", "add", "not valid", "--password", defaultPassword},
			"weak password":  {"user", "add", "weakling", "--password", "short"},
			"empty password": {"user", "add", "weakling", "--password", ""},
		} {
			out, err := run(t, "", args...)
			var ee *exec.ExitError
			if !errors.As(err, &ee) {
				t.Fatalf("%s: %v\n%s", name, err, out)
			}
			wantOneLineError(t, name, out, ee.ExitCode())
		}
		out, err := run(t, "", "user", "add", "weakling")
		if err == nil || !strings.Contains(out, "no password on stdin") {
			t.Fatalf("no password on stdin: %v %q", err, out)
		}
		_, err = srv.Client(t).GetProfile(t.Context(), userID("weakling"))
		wantErr(t, err, mautrix.MNotFound)
	})

	t.Run("password from stdin", func(t *testing.T) {
		out, err := run(t, "stdin password\n", "user", "add", "carol")
		if err != nil {
			t.Fatalf("user add from stdin: %v\n%s", err, out)
		}
		if strings.Contains(out, "(admin)") {
			t.Fatalf("carol created as admin: %q", out)
		}
		carol := login(t, srv, passwordLogin("carol", "stdin password"))
		st, body := srv.Do(t, "GET", tokensPath, carol.AccessToken, nil)
		wantStatus(t, "admin API as carol", st, body, http.StatusForbidden, "M_FORBIDDEN")
	})

	t.Run("list", func(t *testing.T) {
		out, err := run(t, "", "user", "list")
		if err != nil {
			t.Fatalf("user list: %v\n%s", err, out)
		}
		rows := map[string][]string{}
		for _, l := range lines(out)[1:] {
			f := strings.Fields(l)
			rows[f[0]] = f[1:]
		}
		if got := rows["@bob:localhost"]; len(got) != 2 || got[0] != "true" || got[1] != "false" {
			t.Fatalf("bob's row %v in\n%s", got, out)
		}
		if got := rows["@carol:localhost"]; len(got) != 2 || got[0] != "false" || got[1] != "false" {
			t.Fatalf("carol's row %v in\n%s", got, out)
		}
		if len(rows) != 2 {
			t.Fatalf("user list has %d users, want 2:\n%s", len(rows), out)
		}
	})

	t.Run("deactivate", func(t *testing.T) {
		carol := login(t, srv, passwordLogin("carol", "stdin password"))
		out, err := run(t, "", "user", "deactivate", "carol")
		if err != nil || !strings.Contains(out, "Deactivated @carol:localhost") {
			t.Fatalf("user deactivate: %v\n%s", err, out)
		}
		_, err = srv.Client(t).Login(t.Context(), passwordLogin("carol", "stdin password"))
		wantErr(t, err, mUserDeactivated)
		wantTokenDead(t, srv, carol.AccessToken)
		out, err = run(t, "", "user", "list")
		if err != nil || !strings.Contains(out, "@carol:localhost") {
			t.Fatalf("user list after deactivate: %v\n%s", err, out)
		}
		for _, l := range lines(out) {
			if f := strings.Fields(l); f[0] == "@carol:localhost" && f[2] != "true" {
				t.Fatalf("carol not listed as deactivated: %q", l)
			}
		}
		out, err = run(t, "", "user", "deactivate", "nobody")
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			t.Fatalf("deactivate nobody: %v\n%s", err, out)
		}
		wantOneLineError(t, "deactivate nobody", out, ee.ExitCode(), "nobody")
	})
}

func TestCLIStandalone(t *testing.T) {
	t.Run("version", func(t *testing.T) {
		out, code := runBinary(t, "", "version")
		if code != 0 || !strings.HasPrefix(out, "tributary ") || len(lines(out)) != 1 {
			t.Fatalf("version: exit %d %q", code, out)
		}
	})

	t.Run("generate-config", func(t *testing.T) {
		out, code := runBinary(t, "", "generate-config", "--server-name", "example.org")
		if code != 0 || !strings.Contains(out, `server_name: "example.org"`) {
			t.Fatalf("generate-config: exit %d\n%s", code, out)
		}
		// The generated file is a configuration serve accepts: a user add
		// with it succeeds.
		dir := t.TempDir()
		path := filepath.Join(dir, "gen.yaml")
		out, code = runBinary(t, "", "generate-config", "--server-name", "example.org", "-o", path)
		if code != 0 {
			t.Fatalf("generate-config -o: exit %d %s", code, out)
		}
		out, code = runBinary(t, "", "user", "add", "gen", "--password", defaultPassword, "--config", path,
			"--data-dir", dir)
		if code != 0 || !strings.Contains(out, "@gen:example.org") {
			t.Fatalf("user add with the generated config: exit %d %s", code, out)
		}
		// -o refuses to overwrite.
		out, code = runBinary(t, "", "generate-config", "-o", path)
		wantOneLineError(t, "generate-config over an existing file", out, code)
	})

	t.Run("bad config", func(t *testing.T) {
		dir := t.TempDir()
		for name, tc := range map[string]struct{ yaml, key string }{
			"log level":   {"log:\n  level: loud\n", "log.level"},
			"unknown key": {"server_name: localhost\nbogus_key: 1\n", "bogus_key"},
			"nested key":  {"registration:\n  enabeld: true\n", "enabeld"},
			"bad listen":  {"listen: nowhere\n", "listen"},
			"short token": {"auth:\n  access_token_lifetime: 10s\n", "auth.access_token_lifetime"},
			"bad db url":  {"database:\n  url: mysql://x\n", "database.url"},
		} {
			path := filepath.Join(dir, strings.ReplaceAll(name, " ", "_")+".yaml")
			if err := os.WriteFile(path, []byte(tc.yaml), 0o600); err != nil {
				t.Fatal(err)
			}
			args := []string{"serve", "--config", path, "--data-dir", filepath.Join(dir, "data")}
			if name != "bad listen" {
				// Should the file be accepted, the server must not take a fixed port.
				args = append(args, "--listen", "127.0.0.1:0")
			}
			out, code := runBinary(t, "", args...)
			wantOneLineError(t, "serve with "+name, out, code, tc.key)
		}
		out, code := runBinary(t, "", "serve", "--config", filepath.Join(dir, "missing.yaml"), "--data-dir",
			filepath.Join(dir, "data"), "--listen", "127.0.0.1:0")
		wantOneLineError(t, "serve with a missing config file", out, code, "missing.yaml")
	})

	t.Run("server name mismatch", func(t *testing.T) {
		dir := t.TempDir()
		out, err := testserver.RunCLI(t, dir, "localhost", "", nil, "user", "add", "first", "--password", defaultPassword)
		if err != nil {
			t.Fatalf("user add: %v\n%s", err, out)
		}
		out, err = testserver.RunCLI(t, dir, "other.example", "", nil, "user", "list")
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			t.Fatalf("user list with another server name: %v\n%s", err, out)
		}
		wantOneLineError(t, "user list", out, ee.ExitCode(), "server_name", "other.example", "localhost")
		out, code := runBinary(t, "", "serve", "--data-dir", dir, "--server-name", "other.example", "--listen", "127.0.0.1:0")
		if code == 0 || !strings.Contains(out, "server_name") {
			t.Fatalf("serve with another server name: exit %d\n%s", code, out)
		}
		// The right name still works.
		out, err = testserver.RunCLI(t, dir, "localhost", "", nil, "user", "list")
		if err != nil || !strings.Contains(out, "@first:localhost") {
			t.Fatalf("user list: %v\n%s", err, out)
		}
	})
}
