package host_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tributary-hs/tributary/plugins/host"
	"github.com/tributary-hs/tributary/plugins/plugintest"
	"github.com/tributary-hs/tributary/plugins/proto"
)

var echoBin string

// TestMain builds the echo plugin once for all tests.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "plugins-host-test")
	if err != nil {
		panic(err)
	}
	echoBin, err = plugintest.BuildInto(dir, plugintest.EchoPackage)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func echoPlugin(*testing.T) string { return echoBin }

func config(t *testing.T, bin string, fh *plugintest.FakeHost, log *slog.Logger) host.Config {
	return host.Config{
		Name: "echo", Path: bin, Host: fh, Logger: log,
		Start: &proto.StartRequest{ServerName: "test.local", BotUserId: "@echobot:test.local",
			GhostLocalpartPrefix: "echo_", GhostUserRegex: "^@echo_.*:test\\.local$"},
		MinBackoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond,
		HealthInterval: 100 * time.Millisecond, HealthTimeout: 500 * time.Millisecond,
	}
}

func start(t *testing.T, cfg host.Config) *host.Supervisor {
	t.Helper()
	s, err := host.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	s.Start(context.Background())
	t.Cleanup(s.Stop)
	return s
}

func waitFor(t *testing.T, s *host.Supervisor, what string, cond func(host.Status) bool) host.Status {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := s.Wait(ctx, cond); err != nil {
		t.Fatalf("waiting until %s: %v", what, err)
	}
	return s.Status()
}

func message(id int64, body string) *proto.Transaction {
	content, _ := json.Marshal(map[string]string{"msgtype": "m.text", "body": body})
	return &proto.Transaction{Id: id, Events: []*proto.Event{{
		EventId: "$ev" + body, RoomId: "!room:test.local", Sender: "@alice:test.local",
		Type: "m.room.message", OriginServerTs: 1000, Content: content}}}
}

// expectEcho delivers a message and checks the plugin replied as its ghost.
func expectEcho(t *testing.T, s *host.Supervisor, fh *plugintest.FakeHost, txn int64, body string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.Deliver(ctx, message(txn, body)); err != nil {
		t.Fatalf("delivering %q: %v", body, err)
	}
	// The plugin sends its reply before it acknowledges.
	select {
	case got := <-fh.Sent:
		var c struct{ Body string }
		_ = json.Unmarshal(got.Content, &c)
		if got.UserId != "@echo_echo:test.local" || got.RoomId != "!room:test.local" ||
			c.Body != "echo: "+body || got.Timestamp != 1001 {
			t.Fatalf("reply: %+v (body %q)", got, c.Body)
		}
	default:
		t.Fatal("the transaction was acknowledged but no reply was sent")
	}
}

func running(st host.Status) bool { return st.State == host.StateRunning }

func TestEchoAndRestartAfterCrash(t *testing.T) {
	fh := plugintest.NewFakeHost()
	var logs syncBuffer
	s := start(t, config(t, echoPlugin(t), fh, slog.New(slog.NewTextHandler(&logs, nil))))
	st := waitFor(t, s, "running", running)
	// The plugin's own log reaches the host's at its level.
	logs.waitFor(t, `level=INFO msg="echo bridge starting" plugin=echo ghost=@echo_echo:test.local logger=plugin.echoplugin`)
	if st.Network != "echo" || st.Version != "1" {
		t.Errorf("described as %q %q", st.Network, st.Version)
	}
	if got := fh.Registered(); len(got) != 1 || got[0] != "@echo_echo:test.local" {
		t.Fatalf("registered at Start: %v", got)
	}
	expectEcho(t, s, fh, 1, "hello")

	if err := syscall.Kill(st.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	st = waitFor(t, s, "restarted", func(st host.Status) bool { return running(st) && st.Restarts == 1 })
	if !strings.Contains(st.LastError, "exited") && !strings.Contains(st.LastError, "stream broke") {
		t.Errorf("last error after a crash: %q", st.LastError)
	}
	expectEcho(t, s, fh, 2, "again")
}

func TestRestartAfterHang(t *testing.T) {
	fh := plugintest.NewFakeHost()
	s := start(t, config(t, echoPlugin(t), fh, nil))
	st := waitFor(t, s, "running", running)
	// A stopped process answers nothing, like a deadlocked one.
	if err := syscall.Kill(st.PID, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	st = waitFor(t, s, "restarted", func(st host.Status) bool { return running(st) && st.Restarts == 1 })
	if !strings.Contains(st.LastError, "health check") {
		t.Errorf("last error after a hang: %q", st.LastError)
	}
	expectEcho(t, s, fh, 1, "awake")
}

func TestDeliverWhileNotRunning(t *testing.T) {
	s, err := host.New(config(t, "/nonexistent", plugintest.NewFakeHost(), nil))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Deliver(context.Background(), message(1, "x")); err == nil {
		t.Fatal("Deliver to a plugin never started succeeded")
	}
}

// syncBuffer collects log output from several goroutines.
type syncBuffer struct {
	mu      sync.Mutex
	b       bytes.Buffer
	written chan struct{} // closed and replaced on each write
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.written != nil {
		close(b.written)
		b.written = nil
	}
	return b.b.Write(p)
}

// waitFor returns once the output contains s.
func (b *syncBuffer) waitFor(t *testing.T, s string) {
	t.Helper()
	timeout := time.After(time.Minute)
	for {
		b.mu.Lock()
		found := strings.Contains(b.b.String(), s)
		if b.written == nil {
			b.written = make(chan struct{})
		}
		ch := b.written
		b.mu.Unlock()
		if found {
			return
		}
		select {
		case <-ch:
		case <-timeout:
			t.Fatalf("the log never showed %s:\n%s", s, b.String())
		}
	}
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

func TestHandshakeFailureLeavesHostRunning(t *testing.T) {
	var logs syncBuffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	cfg := config(t, echoPlugin(t), plugintest.NewFakeHost(), log)
	cfg.Args = []string{"-mode=bad-handshake"}
	s := start(t, cfg)
	// Retried with backoff, failing the same way each time.
	st := waitFor(t, s, "failed twice", func(st host.Status) bool { return st.State == host.StateFailed && st.Restarts >= 2 })
	if !strings.Contains(st.LastError, "handshake failed") || !strings.Contains(st.LastError, "99") {
		t.Errorf("last error: %q", st.LastError)
	}
	s.Stop()
	if st := s.Status(); st.State != host.StateStopped {
		t.Errorf("after Stop: %s", st.State)
	}
	var errorLines int
	for _, line := range strings.Split(logs.String(), "\n") {
		if strings.Contains(line, "level=ERROR") {
			errorLines++
			if !strings.Contains(line, "handshake failed") {
				t.Errorf("error line without the cause: %s", line)
			}
		}
	}
	if errorLines != 1 {
		t.Errorf("%d error lines for one repeated failure, want 1:\n%s", errorLines, logs.String())
	}
}

func TestChecksum(t *testing.T) {
	bin := echoPlugin(t)
	fh := plugintest.NewFakeHost()
	cfg := config(t, bin, fh, nil)
	wrong := sha256.Sum256([]byte("another binary"))
	cfg.Checksum = wrong[:]
	s := start(t, cfg)
	st := waitFor(t, s, "failed", func(st host.Status) bool { return st.State == host.StateFailed })
	if !strings.Contains(st.LastError, "checksum") {
		t.Errorf("last error: %q", st.LastError)
	}
	s.Stop()

	if _, err := host.New(host.Config{Name: "x", Path: bin, Host: fh, Checksum: []byte{1}}); err == nil {
		t.Error("a checksum that is not a SHA-256 was accepted")
	}
}

func TestRestartWhenAcksStop(t *testing.T) {
	fh := plugintest.NewFakeHost()
	cfg := config(t, echoPlugin(t), fh, nil)
	cfg.AckTimeout = 300 * time.Millisecond
	s := start(t, cfg)
	waitFor(t, s, "running", running)
	err := s.Deliver(context.Background(), message(1, "!hang"))
	if err == nil || !strings.Contains(err.Error(), "not acknowledged within") {
		t.Fatalf("delivering to a plugin that never acknowledges: %v", err)
	}
	st := waitFor(t, s, "restarted", func(st host.Status) bool { return running(st) && st.Restarts == 1 })
	if !strings.Contains(st.LastError, "not acknowledged") {
		t.Errorf("last error: %q", st.LastError)
	}
	expectEcho(t, s, fh, 2, "unstuck")
}

// A full transaction (100 events of 60 KB) is above gRPC's default message
// size; both sides accept it.
func TestLargeTransaction(t *testing.T) {
	fh := plugintest.NewFakeHost()
	s := start(t, config(t, echoPlugin(t), fh, nil))
	waitFor(t, s, "running", running)
	big := strings.Repeat("x", 60_000)
	txn := &proto.Transaction{Id: 1}
	for i := range 100 {
		ev := message(0, fmt.Sprintf("%d %s", i, big)).Events[0]
		ev.EventId = fmt.Sprintf("$big%d", i)
		txn.Events = append(txn.Events, ev)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := s.Deliver(ctx, txn); err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		got := <-fh.Sent
		if !strings.HasPrefix(string(got.Content), fmt.Sprintf(`{"msgtype":"m.notice","body":"echo: %d x`, i)) {
			t.Fatalf("reply %d: %.80s", i, got.Content)
		}
	}
}
