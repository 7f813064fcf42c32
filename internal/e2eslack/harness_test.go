// Package e2eslack runs the real tributary with the real tributary-slack
// plugin binary against a local fake of Slack (internal/slackfake).
package e2eslack

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/internal/pgtest"
	"github.com/tributary-hs/tributary/internal/slackfake"
	"github.com/tributary-hs/tributary/internal/testserver"
	"github.com/tributary-hs/tributary/plugins/plugintest"
)

const (
	slackPluginPackage = "github.com/tributary-hs/tributary/bridges/slack/cmd/tributary-slack"
	slackBot           = id.UserID("@slackbot:localhost")
)

var (
	buildOnce sync.Once
	builtBin  string
	builtDir  string
	buildErr  error
)

// pluginBinary builds tributary-slack once for the package's tests.
func pluginBinary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "e2eslack-plugin-")
		if err != nil {
			buildErr = err
			return
		}
		builtDir = dir
		builtBin, buildErr = plugintest.BuildInto(dir, slackPluginPackage)
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return builtBin
}

// writeConfig writes a server config running the plugin against the fake;
// the import of Slack exports acts as the plugin (same ghost prefix).
func writeConfig(t testing.TB, bin, apiURL string) string {
	t.Helper()
	return writeConfigWith(t, bin, apiURL, "")
}

// writeConfigWith is writeConfig with more of the plugin's network
// section (YAML lines indented by 8).
func writeConfigWith(t testing.TB, bin, apiURL, network string) string {
	t.Helper()
	cfg := fmt.Sprintf(`app_services:
  retry_backoff: 200ms
  max_retry_backoff: 2s
plugins:
  - name: slack
    binary: %q
    ghost_prefix: slack_
    bot_localpart: slackbot
    config:
      network:
        api_url: %q
        reconnect_min: 50ms
%s      log_level: debug
imports:
  slack:
    ghost_prefix: slack_
    bot_localpart: slackbot
`, bin, apiURL, network)
	path := filepath.Join(t.TempDir(), "tributary.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// startServer runs the server with the config; dbArgs choose its database
// (none: SQLite in the data directory).
func startServer(t testing.TB, cfgPath, dataDir string, dbArgs ...string) *testserver.Server {
	t.Helper()
	return testserver.Start(t, testserver.Options{DataDir: dataDir, Args: append([]string{"--config", cfgPath,
		"--enable-registration", "--disable-rate-limits"}, dbArgs...)})
}

// databases runs fn on SQLite and on a fresh PostgreSQL database.
func databases(t *testing.T, fn func(t *testing.T, dbArgs []string)) {
	t.Run("sqlite", func(t *testing.T) { fn(t, nil) })
	t.Run("postgres", func(t *testing.T) { fn(t, []string{"--database-url", pgtest.URL(t)}) })
}

func TestMain(m *testing.M) {
	code := m.Run()
	pgtest.StopShared()
	if builtDir != "" {
		// The plugin binary's directory (43 MB a run).
		_ = os.RemoveAll(builtDir)
	}
	os.Exit(code)
}

// ghost is the Matrix user of a Slack user of the fake's workspace.
func ghost(user string) id.UserID {
	return id.UserID("@slack_" + strings.ToLower(slackfake.TeamID+"-"+user) + ":localhost")
}

// watcher follows a Matrix user's /sync and keeps every room event it saw.
type watcher struct {
	t       testing.TB
	cli     *mautrix.Client
	since   string
	seen    map[id.RoomID][]*event.Event
	invites []id.RoomID
	// autoJoin accepts every invite.
	autoJoin bool
}

func newWatcher(t testing.TB, cli *mautrix.Client) *watcher {
	return &watcher{t: t, cli: cli, seen: map[id.RoomID][]*event.Event{}}
}

const syncFilter = `{"room":{"timeline":{"limit":500}}}`

// next runs one /sync long-poll.
func (w *watcher) next(ctx context.Context) {
	w.t.Helper()
	resp, err := w.cli.SyncRequest(ctx, 5000, w.since, syncFilter, false, "")
	if err != nil {
		if ctx.Err() != nil {
			return
		}
		w.t.Fatalf("/sync: %v", err)
	}
	w.since = resp.NextBatch
	for roomID := range resp.Rooms.Invite {
		w.invites = append(w.invites, roomID)
		if w.autoJoin {
			if _, err := w.cli.JoinRoomByID(ctx, roomID); err != nil {
				w.t.Fatalf("joining %s: %v", roomID, err)
			}
		}
	}
	for roomID, room := range resp.Rooms.Join {
		for _, evt := range append(room.State.Events, room.Timeline.Events...) {
			evt.RoomID = roomID
			_ = evt.Content.ParseRaw(evt.Type)
			w.seen[roomID] = append(w.seen[roomID], evt)
		}
	}
}

// wait returns the first event of the room matching pred, syncing until
// one arrives.
func (w *watcher) wait(ctx context.Context, roomID id.RoomID, what string, pred func(*event.Event) bool) *event.Event {
	w.t.Helper()
	for {
		for _, evt := range w.seen[roomID] {
			if pred(evt) {
				return evt
			}
		}
		if ctx.Err() != nil {
			w.t.Fatalf("waiting for %s in %s: %v", what, roomID, ctx.Err())
		}
		w.next(ctx)
	}
}

func (w *watcher) waitMessage(ctx context.Context, roomID id.RoomID, body string) *event.Event {
	w.t.Helper()
	return w.wait(ctx, roomID, "message "+strconv.Quote(body), func(evt *event.Event) bool {
		return evt.Type == event.EventMessage && evt.Content.AsMessage().Body == body
	})
}

// botSays waits for a message of the bot in room whose body contains text.
func (w *watcher) botSays(ctx context.Context, room id.RoomID, text string) *event.Event {
	w.t.Helper()
	return w.wait(ctx, room, "the bot saying "+strconv.Quote(text), func(evt *event.Event) bool {
		return evt.Type == event.EventMessage && evt.Sender == slackBot && strings.Contains(evt.Content.AsMessage().Body, text)
	})
}

// count counts the room's events matching pred.
func (w *watcher) count(roomID id.RoomID, pred func(*event.Event) bool) int {
	n := 0
	for _, evt := range w.seen[roomID] {
		if pred(evt) {
			n++
		}
	}
	return n
}

// managementRoom opens a DM with the bridge bot and waits for its welcome.
func managementRoom(ctx context.Context, t testing.TB, cli *mautrix.Client, w *watcher) id.RoomID {
	t.Helper()
	for {
		if _, err := cli.GetProfile(ctx, slackBot); err == nil {
			break
		}
		if ctx.Err() != nil {
			t.Fatal("the plugin never registered its bot")
		}
		w.next(ctx)
	}
	created, err := cli.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "trusted_private_chat", IsDirect: true,
		Invite: []id.UserID{slackBot}})
	if err != nil {
		t.Fatal(err)
	}
	w.botSays(ctx, created.RoomID, "management room")
	return created.RoomID
}

// login logs in through the bot: flow "user" or "bot".
func login(ctx context.Context, t testing.TB, cli *mautrix.Client, w *watcher, mgmt id.RoomID, flow, token string) {
	t.Helper()
	// The tokens go with the command, in one step (the prompted steps are
	// the other bridges' tests).
	command(ctx, t, cli, w, mgmt, "login "+flow+" "+token+" "+slackfake.AppToken, "Logged in to Slack as")
}

// command sends text to the bot and waits for an answer containing want
// (after the command).
func command(ctx context.Context, t testing.TB, cli *mautrix.Client, w *watcher, room id.RoomID, text, want string) {
	t.Helper()
	sent, err := cli.SendText(ctx, room, text)
	if err != nil {
		t.Fatal(err)
	}
	after := false
	w.wait(ctx, room, "the bot answering "+strconv.Quote(text), func(evt *event.Event) bool {
		if evt.ID == sent.EventID {
			after = true
			return false
		}
		return after && evt.Type == event.EventMessage && evt.Sender == slackBot &&
			strings.Contains(evt.Content.AsMessage().Body, want)
	})
}

// awaitCall waits for a Web API call of the fake matching pred.
func awaitCall(ctx context.Context, t testing.TB, fake *slackfake.Server, what string, pred func(slackfake.Call) bool) slackfake.Call {
	t.Helper()
	for {
		changed := fake.Changed()
		for _, c := range fake.Calls() {
			if pred(c) {
				return c
			}
		}
		select {
		case <-changed:
		case <-ctx.Done():
			t.Fatalf("waiting for Slack to get %s: %v", what, ctx.Err())
		}
	}
}

// awaitSocket waits until the plugin holds a Socket Mode connection.
func awaitSocket(ctx context.Context, t testing.TB, fake *slackfake.Server) {
	t.Helper()
	awaitCall(ctx, t, fake, "apps.connections.open", func(c slackfake.Call) bool { return c.Method == "apps.connections.open" })
	for {
		changed := fake.Changed()
		if fake.Sockets() > 0 {
			return
		}
		select {
		case <-changed:
		case <-ctx.Done():
			t.Fatal("no Socket Mode connection")
		}
	}
}

// findMessage waits for a message with the body in any room.
func (w *watcher) findMessage(ctx context.Context, body string) *event.Event {
	w.t.Helper()
	for {
		for _, evs := range w.seen {
			for _, evt := range evs {
				if evt.Type == event.EventMessage && evt.Content.AsMessage().Body == body {
					return evt
				}
			}
		}
		if ctx.Err() != nil {
			w.t.Fatalf("no message %q in any room: %v", body, ctx.Err())
		}
		w.next(ctx)
	}
}

// logCallsOnFailure lists the Web API calls the plugin made when the test
// fails.
func logCallsOnFailure(t *testing.T, fake *slackfake.Server) {
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		for _, c := range fake.Calls() {
			t.Logf("Slack call %s %s %v", c.At.Format("15:04:05.000"), c.Method, c.Args)
		}
		t.Logf("Socket Mode acks: %d", len(fake.Acks()))
	})
}
