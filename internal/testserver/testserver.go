// Package testserver starts the real tributary binary for end-to-end tests:
// on a loopback port picked by the kernel, with its own data directory, logs
// kept and shown when the test fails.
package testserver

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"maunium.net/go/mautrix"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// Binary returns the tributary binary: $TRIBUTARY_BIN (make test sets it to
// bin/tributary), else one built once per test process.
func Binary(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("TRIBUTARY_BIN"); p != "" {
		return p
	}
	buildOnce.Do(func() {
		root, err := moduleRoot()
		if err != nil {
			buildErr = err
			return
		}
		dir, err := os.MkdirTemp("", "tributary-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "tributary")
		cmd := exec.Command("go", "build", "-o", binPath, "./cmd/tributary")
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "GOEXPERIMENT=jsonv2")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("go.mod not found above the working directory")
		}
		dir = parent
	}
}

// Options configure a server.
type Options struct {
	// Args are extra arguments to "serve" (flags such as --enable-registration).
	Args []string
	// Env are extra environment variables (KEY=VALUE).
	Env []string
	// DataDir to reuse (for restarts); empty makes a fresh one.
	DataDir string
	// ServerName defaults to "localhost".
	ServerName string
	// Federation gives the server a federation listener with a self-signed
	// certificate on a free loopback port P and the server name
	// 127.0.0.1:P, so that servers started alike federate with no DNS:
	// they skip verifying certificates and may reach loopback.
	Federation bool
}

// Server is a running tributary process.
type Server struct {
	URL  string
	Addr string
	// FederationAddr is the federation listener's host:port (Options.Federation).
	FederationAddr string
	DataDir        string
	Opts           Options
	// Started is the time the process was started.
	Started time.Time

	t    testing.TB
	cmd  *exec.Cmd
	logs *syncBuffer
	done chan struct{}
	// metricsAddr is the metrics listener's address, if it has one.
	metricsAddr atomic.Value
}

// MetricsURL is the base URL of the metrics listener (serve
// --metrics-listen); "" when the server has none.
func (s *Server) MetricsURL() string {
	if a, _ := s.metricsAddr.Load().(string); a != "" {
		return "http://" + a
	}
	return ""
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Start runs "tributary serve" and waits until it listens. The server is
// stopped when the test ends; its logs are printed if the test failed.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	if opts.DataDir == "" {
		opts.DataDir = t.TempDir()
	}
	var fedArgs []string
	if opts.Federation {
		if opts.ServerName == "" { // a restart keeps its name, and so its port
			opts.ServerName = "127.0.0.1:" + freePort(t)
		}
		fedArgs = []string{"--federation-listen", opts.ServerName, "--tls-self-signed",
			"--federation-insecure-skip-verify", "--federation-allow-range", "127.0.0.0/8"}
	}
	if opts.ServerName == "" {
		opts.ServerName = "localhost"
	}
	args := append(append([]string{"serve", "--data-dir", opts.DataDir, "--listen", "127.0.0.1:0",
		"--server-name", opts.ServerName}, fedArgs...), opts.Args...)
	cmd := exec.Command(Binary(t), args...)
	cmd.SysProcAttr = childAttrs()
	cmd.Env = append(append(os.Environ(), "TRIBUTARY_LOG_FORMAT=json", "TRIBUTARY_LOG_LEVEL=info"), opts.Env...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{DataDir: opts.DataDir, Opts: opts, t: t, cmd: cmd, logs: &syncBuffer{}, done: make(chan struct{})}
	s.Started = time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	addrc := make(chan string, 1)
	go func() {
		defer close(s.done)
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64*1024), 1024*1024)
		for sc.Scan() {
			line := sc.Text()
			s.logs.Write([]byte(line + "\n"))
			// Most lines are request logs (thousands a second under a
			// benchmark's load): only those that may name a listener are
			// parsed.
			var rec struct {
				Msg  string `json:"msg"`
				Addr string `json:"addr"`
			}
			if !strings.HasPrefix(line, "{") || !strings.Contains(line, `listening"`) || json.Unmarshal([]byte(line), &rec) != nil {
				continue
			}
			if rec.Msg == "metrics listening" {
				s.metricsAddr.Store(rec.Addr)
			}
			if rec.Msg == "listening" {
				select {
				case addrc <- rec.Addr:
				default:
				}
			}
		}
		_, _ = io.Copy(io.Discard, stderr)
		_ = cmd.Wait()
	}()
	t.Cleanup(func() {
		s.Stop()
		if t.Failed() {
			t.Logf("tributary logs:\n%s", s.logs.String())
		}
	})
	select {
	case addr := <-addrc:
		s.Addr = addr
		s.URL = "http://" + addr
		if opts.Federation {
			s.FederationAddr = opts.ServerName
		}
	case <-s.done:
		t.Fatalf("tributary exited before listening:\n%s", s.logs.String())
	case <-time.After(30 * time.Second):
		t.Fatalf("tributary did not listen within 30s:\n%s", s.logs.String())
	}
	return s
}

// freePort is a loopback TCP port free a moment ago. The federation
// listener's port is part of the server name, which must be known before
// the server starts; another process may take the port in between (rare on
// a test machine; the server then fails to start, loudly).
func freePort(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return port
}

// Logs returns what the server has written to stderr so far.
func (s *Server) Logs() string { return s.logs.String() }

// ExitCode is the process's exit status once it has ended (-1 before, or
// when a signal ended it).
func (s *Server) ExitCode() int {
	select {
	case <-s.done:
		return s.cmd.ProcessState.ExitCode()
	default:
		return -1
	}
}

// Pid is the server's process ID.
func (s *Server) Pid() int { return s.cmd.Process.Pid }

// Stop asks the server to shut down (SIGTERM) and waits for it.
func (s *Server) Stop() { s.signal(syscall.SIGTERM) }

// Kill ends the server with SIGKILL, as a crash would, and waits for it.
func (s *Server) Kill() { s.signal(syscall.SIGKILL) }

func (s *Server) signal(sig syscall.Signal) {
	select {
	case <-s.done:
		return
	default:
	}
	_ = s.cmd.Process.Signal(sig)
	select {
	case <-s.done:
	case <-time.After(15 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
}

// Restart stops the server (killing it when kill is set) and starts a new
// process on the same data directory and options.
func (s *Server) Restart(kill bool) *Server {
	if kill {
		s.Kill()
	} else {
		s.Stop()
	}
	return Start(s.t, s.Opts)
}

// Client returns a mautrix client for the server without credentials.
func (s *Server) Client(t testing.TB) *mautrix.Client {
	t.Helper()
	cli, err := mautrix.NewClient(s.URL, "", "")
	if err != nil {
		t.Fatal(err)
	}
	return cli
}

// Register registers a user with m.login.dummy (the server needs
// --enable-registration) and returns a client logged in as them.
func (s *Server) Register(t testing.TB, req *mautrix.ReqRegister[any]) *mautrix.Client {
	t.Helper()
	cli := s.Client(t)
	res, err := cli.RegisterDummy(t.Context(), req)
	if err != nil {
		t.Fatalf("register %s: %v", req.Username, err)
	}
	cli.UserID, cli.AccessToken, cli.DeviceID = res.UserID, res.AccessToken, res.DeviceID
	return cli
}

// Do sends a raw request and decodes the JSON answer into a map.
func (s *Server) Do(t testing.TB, method, path, token string, body any) (int, map[string]any) {
	t.Helper()
	code, raw := s.DoRaw(t, method, path, token, body)
	out := map[string]any{}
	if len(raw) > 0 && raw[0] == '{' {
		if err := json.Unmarshal(raw, &out); err != nil {
			t.Fatalf("%s %s: invalid JSON answer %q", method, path, raw)
		}
	}
	return code, out
}

// DoRaw sends a request (body: nil, a string, bytes, or a value sent as
// JSON) and returns the status and the raw answer.
func (s *Server) DoRaw(t testing.TB, method, path, token string, body any) (int, []byte) {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(raw)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, s.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, raw
}

// Run runs a tributary CLI command (user add, …) against the server's data
// directory and returns its combined output.
func (s *Server) Run(t testing.TB, stdin string, args ...string) (string, error) {
	t.Helper()
	return RunCLI(t, s.DataDir, s.Opts.ServerName, stdin, s.Opts.Env, args...)
}

// RunCLI runs a tributary command with --data-dir and --server-name set.
func RunCLI(t testing.TB, dataDir, serverName, stdin string, env []string, args ...string) (string, error) {
	t.Helper()
	full := append(append([]string{}, args...), "--data-dir", dataDir, "--server-name", serverName)
	cmd := exec.Command(Binary(t), full...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	return string(out), err
}
