// Package e2eplugins tests bridge plugins end to end: the real tributary
// binary runs the echo plugin (plugins/plugintest/echoplugin) from its
// config, and a user talks to the plugin's ghost with the mautrix client.
package e2eplugins

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/internal/testserver"
	"github.com/tributary-hs/tributary/plugins/plugintest"
)

const ghost = id.UserID("@echo_echo:localhost")

// eventually checks cond every 20 ms until it holds (a condition, not a
// fixed wait), failing after a minute.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// pluginPID is the pid of the server's child process running bin (any of
// the server's threads may have started it).
func pluginPID(s *testserver.Server, bin string) int {
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", s.Pid()))
	for _, task := range tasks {
		raw, err := os.ReadFile(task)
		if err != nil {
			continue
		}
		for _, f := range strings.Fields(string(raw)) {
			pid, _ := strconv.Atoi(f)
			if exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid)); err == nil && exe == bin {
				return pid
			}
		}
	}
	return 0
}

// waitForEcho syncs as c until the ghost's reply to body arrives and
// returns it.
func waitForEcho(t *testing.T, c *mautrix.Client, room id.RoomID, since *string, body string) *event.Event {
	t.Helper()
	return waitFor(t, c, room, since, body, func(b string) bool { return b == "echo: "+body })
}

// waitForEchoPrefix waits for a reply starting with "echo: " + prefix.
func waitForEchoPrefix(t *testing.T, c *mautrix.Client, room id.RoomID, since *string, prefix string) *event.Event {
	t.Helper()
	return waitFor(t, c, room, since, prefix, func(b string) bool { return strings.HasPrefix(b, "echo: "+prefix) })
}

func waitFor(t *testing.T, c *mautrix.Client, room id.RoomID, since *string, body string, match func(string) bool) *event.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	for {
		resp, err := c.SyncRequest(ctx, 30000, *since, "", false, event.PresenceOnline)
		if err != nil {
			t.Fatalf("sync waiting for the echo of %q: %v", body, err)
		}
		*since = resp.NextBatch
		joined := resp.Rooms.Join[room]
		if joined == nil {
			continue
		}
		for _, ev := range joined.Timeline.Events {
			if ev.Sender != ghost || ev.Type != event.EventMessage {
				continue
			}
			_ = ev.Content.ParseRaw(ev.Type)
			if match(ev.Content.AsMessage().Body) {
				return ev
			}
		}
	}
}

// startWithPlugins starts a server whose config has the given plugins
// section.
func startWithPlugins(t *testing.T, plugins string, env ...string) *testserver.Server {
	cfgPath := filepath.Join(t.TempDir(), "tributary.yaml")
	cfg := "app_services:\n  retry_backoff: 200ms\n  max_retry_backoff: 2s\nplugins:\n" + plugins
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return testserver.Start(t, testserver.Options{Args: []string{"--config", cfgPath, "--enable-registration",
		"--disable-rate-limits", "--metrics-listen", "127.0.0.1:0"}, Env: env})
}

func echoEntry(bin string) string {
	return fmt.Sprintf(`  - name: echo
    binary: %q
    ghost_prefix: echo_
    bot_localpart: echobot
    config: {greeting: hi}
`, bin)
}

func TestEchoPluginAndRestart(t *testing.T) {
	bin := plugintest.Build(t, plugintest.EchoPackage)
	s := startWithPlugins(t, echoEntry(bin))
	alice := s.Register(t, &mautrix.ReqRegister[any]{Username: "alice", Password: "correct horse battery"})
	ctx := context.Background()
	room, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "private_chat"})
	if err != nil {
		t.Fatal(err)
	}
	// The plugin registers its ghost when it starts; it accepts the invite.
	eventually(t, "the plugin registered its ghost", func() bool {
		_, err := alice.GetProfile(ctx, ghost)
		return err == nil
	})
	if _, err := alice.InviteUser(ctx, room.RoomID, &mautrix.ReqInviteUser{UserID: ghost}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the ghost joined", func() bool {
		m, err := alice.JoinedMembers(ctx, room.RoomID)
		_, in := m.Joined[ghost]
		return err == nil && in
	})

	var since string
	sent, err := alice.SendText(ctx, room.RoomID, "hello")
	if err != nil {
		t.Fatal(err)
	}
	reply := waitForEcho(t, alice, room.RoomID, &since, "hello")
	orig, err := alice.GetEvent(ctx, room.RoomID, sent.EventID)
	if err != nil {
		t.Fatal(err)
	}
	if reply.Timestamp != orig.Timestamp+1 {
		t.Errorf("the ghost's reply is at %d, want the timestamp the plugin asked for, %d", reply.Timestamp, orig.Timestamp+1)
	}

	// The plugin may act as its bot and ghosts only.
	if _, err := alice.SendText(ctx, room.RoomID, "!impersonate"); err != nil {
		t.Fatal(err)
	}
	waitForEcho(t, alice, room.RoomID, &since, "impersonating @alice:localhost: rpc error: code = PermissionDenied desc = M_FORBIDDEN: Application service cannot masquerade as @alice:localhost")

	// Kill the plugin: what is sent meanwhile reaches it after the restart.
	pid := pluginPID(s, bin)
	if pid == 0 {
		t.Fatal("no plugin process under the server")
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	for _, body := range []string{"while down 1", "while down 2"} {
		if _, err := alice.SendText(ctx, room.RoomID, body); err != nil {
			t.Fatal(err)
		}
	}
	waitForEcho(t, alice, room.RoomID, &since, "while down 1")
	waitForEcho(t, alice, room.RoomID, &since, "while down 2")
	// They were queued while it was down: a delivery found it not running.
	if !strings.Contains(s.Logs(), `"consumer":"plugin:echo"`) || !strings.Contains(s.Logs(), "plugin is not running") {
		t.Error("no delivery was attempted while the plugin was down")
	}
	if newPID := pluginPID(s, bin); newPID == pid || newPID == 0 {
		t.Errorf("plugin pid after the restart: %d (before: %d)", newPID, pid)
	}
	if !strings.Contains(s.Logs(), "plugin stopped running; restarting") {
		t.Error("the crash was not logged")
	}
	out, err := s.Run(t, "", "plugins", "list")
	if err != nil || !strings.Contains(out, "echo") || !strings.Contains(out, "running") {
		t.Errorf("plugins list: %v\n%s", err, out)
	}
	metrics := get(t, s.MetricsURL()+"/metrics")
	for _, want := range []string{`tributary_plugin_up{plugin="echo"} 1`, `tributary_plugin_restarts_total{plugin="echo"} 1`,
		`tributary_plugin_state{plugin="echo",state="running"} 1`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

func get(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(body)
}

// A binary that is no plugin leaves the server (and the other plugins)
// running, with one clear error line however often it is retried.
func TestBrokenPluginLeavesServerRunning(t *testing.T) {
	bin := plugintest.Build(t, plugintest.EchoPackage)
	s := startWithPlugins(t, echoEntry(bin)+`  - name: broken
    binary: /bin/true
    ghost_prefix: broken_
    bot_localpart: brokenbot
`, "TRIBUTARY_LOG_LEVEL=debug") // repeated failures are logged at debug
	alice := s.Register(t, &mautrix.ReqRegister[any]{Username: "alice", Password: "correct horse battery"})
	ctx := context.Background()
	eventually(t, "the echo plugin registered its ghost", func() bool {
		_, err := alice.GetProfile(ctx, ghost)
		return err == nil
	})
	var lines []string
	eventually(t, "the broken plugin was tried again", func() bool {
		lines = lines[:0]
		tries := 0
		for _, line := range strings.Split(s.Logs(), "\n") {
			if strings.Contains(line, `"plugin":"broken"`) && strings.Contains(line, `"level":"ERROR"`) {
				lines = append(lines, line)
			}
			if strings.Contains(line, `"plugin":"broken"`) && strings.Contains(line, "failed to start") {
				tries++
			}
		}
		return tries >= 3
	})
	if len(lines) != 1 || !strings.Contains(lines[0], "plugin broken: handshake failed") {
		t.Errorf("error lines for the broken plugin:\n%s", strings.Join(lines, "\n"))
	}
	if _, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{}); err != nil {
		t.Errorf("the server stopped serving: %v", err)
	}
}

// The plugin creates a portal as its ghost, invites the user and fills it
// with history from several ghosts at their original times (batch send).
func TestPluginPortalWithHistory(t *testing.T) {
	bin := plugintest.Build(t, plugintest.EchoPackage)
	s := startWithPlugins(t, echoEntry(bin))
	alice := s.Register(t, &mautrix.ReqRegister[any]{Username: "alice", Password: "correct horse battery"})
	ctx := context.Background()
	room, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "private_chat"})
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "the plugin registered its ghost", func() bool {
		_, err := alice.GetProfile(ctx, ghost)
		return err == nil
	})
	if _, err := alice.InviteUser(ctx, room.RoomID, &mautrix.ReqInviteUser{UserID: ghost}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the ghost joined", func() bool {
		m, err := alice.JoinedMembers(ctx, room.RoomID)
		_, in := m.Joined[ghost]
		return err == nil && in
	})
	if _, err := alice.SendText(ctx, room.RoomID, "!portal"); err != nil {
		t.Fatal(err)
	}
	since := ""
	var portal id.RoomID
	for _, ev := range []*event.Event{waitForEchoPrefix(t, alice, room.RoomID, &since, "portal ")} {
		portal = id.RoomID(strings.TrimPrefix(ev.Content.AsMessage().Body, "echo: portal "))
	}
	if _, err := alice.JoinRoomByID(ctx, portal); err != nil {
		t.Fatal(err)
	}
	msgs, err := alice.Messages(ctx, portal, "", "", mautrix.DirectionBackward, nil, 50)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for i := len(msgs.Chunk) - 1; i >= 0; i-- {
		ev := msgs.Chunk[i]
		if ev.Type != event.EventMessage {
			continue
		}
		_ = ev.Content.ParseRaw(ev.Type)
		got = append(got, fmt.Sprintf("%s %d %s", ev.Sender, ev.Timestamp, ev.Content.AsMessage().Body))
	}
	want := []string{
		"@echo_h0:localhost 1600000000000 history 0",
		"@echo_h1:localhost 1600000060000 history 1",
		"@echo_h2:localhost 1600000120000 history 2",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("portal history:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	// A reply to a backfilled message reaches the plugin with the event ID
	// it chose for it, as an HTTP bridge's transactions have it.
	var first id.EventID
	for _, ev := range msgs.Chunk {
		if ev.Type == event.EventMessage && ev.Sender == "@echo_h0:localhost" {
			first = ev.ID
		}
	}
	content := &event.MessageEventContent{MsgType: event.MsgText, Body: "re"}
	content.SetReply(&event.Event{ID: first, RoomID: portal, Sender: "@echo_h0:localhost"})
	if _, err := alice.SendMessageEvent(ctx, portal, event.EventMessage, content); err != nil {
		t.Fatal(err)
	}
	psince := ""
	waitForEcho(t, alice, portal, &psince, "re (in reply to $echohistory0:localhost)")
}
