package e2eirc

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/bridges/irc/ircconn"
	"github.com/tributary-hs/tributary/internal/irctest"
	"github.com/tributary-hs/tributary/internal/testserver"
	"github.com/tributary-hs/tributary/plugins/plugintest"
)

const (
	ircPluginPackage = "github.com/tributary-hs/tributary/bridges/irc/cmd/tributary-irc"
	ircBot           = id.UserID("@ircbot:localhost")
)

// startWithIRCPlugin starts tributary with the tributary-irc plugin
// binary in its config, bridging to the IRC server at ircAddr.
func startWithIRCPlugin(t testing.TB, bin, ircAddr string) *testserver.Server {
	t.Helper()
	cfg := fmt.Sprintf(`app_services:
  retry_backoff: 200ms
  max_retry_backoff: 2s
plugins:
  - name: irc
    binary: %q
    ghost_prefix: irc_
    bot_localpart: ircbot
    config:
      network:
        server: %q
        tls: false
        network_id: testnet
        flood_burst: 1000
        flood_interval: 1ms
        reconnect_min: 10ms
      backfill:
        enabled: true
        max_initial_messages: 50
        max_catchup_messages: 50
        unread_hours_threshold: 720
`, bin, ircAddr)
	cfgPath := filepath.Join(t.TempDir(), "tributary.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return testserver.Start(t, testserver.Options{Args: []string{"--config", cfgPath,
		"--enable-registration", "--disable-rate-limits"}})
}

// pluginPID is the pid of the server's child process running bin.
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

// botSays waits for a message of the bot in room, after the event
// `after`, whose body contains text.
func (w *watcher) botSays(ctx context.Context, room id.RoomID, after id.EventID, text string) *event.Event {
	w.t.Helper()
	return w.wait(ctx, room, "the bot saying "+strconv.Quote(text), func(evt *event.Event) bool {
		if evt.Type != event.EventMessage || evt.Sender != ircBot || !strings.Contains(evt.Content.AsMessage().Body, text) {
			return false
		}
		for _, e := range w.seen[room] {
			if e.ID == after {
				return true
			}
			if e == evt {
				return false
			}
		}
		return false
	})
}

// command sends a command to the bot and waits for its answer.
func command(ctx context.Context, t testing.TB, cli *mautrix.Client, w *watcher, room id.RoomID, cmd, want string) {
	t.Helper()
	sent, err := cli.SendText(ctx, room, cmd)
	if err != nil {
		t.Fatal(err)
	}
	w.botSays(ctx, room, sent.EventID, want)
}

// roomNamed waits until the user is invited to or in a room of that name.
func (w *watcher) roomNamed(ctx context.Context, name string) id.RoomID {
	w.t.Helper()
	checked := map[id.RoomID]bool{}
	for {
		var rooms []id.RoomID
		rooms = append(rooms, w.invites...)
		for r := range w.seen {
			rooms = append(rooms, r)
		}
		for _, r := range rooms {
			if checked[r] {
				continue
			}
			var n event.RoomNameEventContent
			if w.cli.StateEvent(ctx, r, event.StateRoomName, "", &n) == nil {
				checked[r] = true
				if n.Name == name {
					return r
				}
			}
		}
		if ctx.Err() != nil {
			w.t.Fatalf("no room named %q: %v", name, ctx.Err())
		}
		w.next(ctx)
	}
}

// pluginSetup is tributary running the tributary-irc plugin in front of
// InspIRCd, with alice registered and her management room with the bot.
type pluginSetup struct {
	ircAddr, bin string
	s            *testserver.Server
	alice        *mautrix.Client
	w            *watcher
	mgmt         id.RoomID
}

// startPluginSetup builds the plugin, starts InspIRCd (with services as
// ircOpts asks) and the server (the IRC server first, so a test can prepare
// channels and accounts before alice comes), registers alice and opens her
// management room.
func startPluginSetup(ctx context.Context, t testing.TB, ircOpts irctest.Options, beforeLogin func(irc *irctest.Server)) *pluginSetup {
	t.Helper()
	irc := irctest.Start(t, ircOpts)
	ircAddr := irc.Addr
	binDir, err := os.MkdirTemp("", "e2eirc-plugin-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(binDir) })
	bin, err := plugintest.BuildInto(binDir, ircPluginPackage)
	if err != nil {
		t.Fatal(err)
	}
	s := startWithIRCPlugin(t, bin, ircAddr)
	logs := &bridgeLog{} // the plugin logs into the server's log
	if beforeLogin != nil {
		beforeLogin(irc)
	}
	alice := s.Register(t, &mautrix.ReqRegister[any]{Username: "alice", Password: "correct horse battery"})
	w := newWatcher(t, alice, logs)
	for {
		if _, err := alice.GetProfile(ctx, ircBot); err == nil {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("the plugin never registered its bot; server log:\n%s", s.Logs())
		}
		w.next(ctx) // a /sync long-poll paces the wait
	}
	created, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "trusted_private_chat", IsDirect: true,
		Invite: []id.UserID{ircBot}})
	if err != nil {
		t.Fatal(err)
	}
	mgmt := created.RoomID
	t.Cleanup(func() {
		if t.Failed() {
			for _, evt := range w.seen[mgmt] {
				if evt.Type == event.EventMessage {
					t.Logf("management room: %s: %s", evt.Sender, evt.Content.AsMessage().Body)
				}
			}
		}
	})
	w.wait(ctx, mgmt, "the bot's welcome", func(evt *event.Event) bool {
		return evt.Type == event.EventMessage && evt.Sender == ircBot &&
			strings.Contains(evt.Content.AsMessage().Body, "management room")
	})
	return &pluginSetup{ircAddr: ircAddr, bin: bin, s: s, alice: alice, w: w, mgmt: mgmt}
}

// loginAndJoin logs alice in through the bot (nick alice, no SASL), joins
// channel with the bot's command and returns its portal, joined.
func (p *pluginSetup) loginAndJoin(ctx context.Context, t testing.TB, channel string) id.RoomID {
	t.Helper()
	command(ctx, t, p.alice, p.w, p.mgmt, "login", "Nick")
	command(ctx, t, p.alice, p.w, p.mgmt, "alice", "SASL password")
	command(ctx, t, p.alice, p.w, p.mgmt, "skip", "SASL account")
	command(ctx, t, p.alice, p.w, p.mgmt, "skip", "as alice")
	command(ctx, t, p.alice, p.w, p.mgmt, "join "+channel, "Joined "+channel)
	portal := p.w.roomNamed(ctx, channel)
	if _, err := p.alice.JoinRoomByID(ctx, portal); err != nil {
		t.Fatal(err)
	}
	return portal
}

// TestIRCPlugin is issue 16's "done means" through the plugin binary: the
// real tributary runs the real tributary-irc plugin from its config in
// front of InspIRCd. A Matrix user logs in through the bot's management
// room and joins a channel with the bot's join command; the channel's
// history (chanhistory, +H) fills the portal at its original times;
// messages go both ways with formatting; a topic and a kick on IRC reach
// the room; then the plugin is killed mid-conversation, IRC talks on, and
// what was said arrives in the room once the host has restarted the
// plugin.
func TestIRCPlugin(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 4*time.Minute)
	defer cancel()
	start := time.Now()
	const channel = "#plugged"
	var bob *ircUser
	var hist1, hist2 *ircconn.Message
	p := startPluginSetup(ctx, t, irctest.Options{}, func(irc *irctest.Server) {
		// bob opens the channel, keeps its history (+H) and says two
		// things.
		bob = dialIRC(t, irc.Addr, "bob")
		bob.join(channel)
		bob.send(ircconn.NewMessage("MODE", channel, "+H", "50:1h"))
		bob.awaitCmd("MODE", channel)
		hist1 = bob.say(channel, "history one")
		hist2 = bob.say(channel, "history \x02two\x02")
	})
	s, bin, ircAddr, alice, w := p.s, p.bin, p.ircAddr, p.alice, p.w

	// alice logs in through the bot, in her management room, and joins.
	portal := p.loginAndJoin(ctx, t, channel)
	bob.await("alice joining", func(m *ircconn.Message) bool {
		return m.Command == "JOIN" && m.Prefix().Name == "alice" && strings.EqualFold(m.Param(0), channel)
	})

	// The portal, with the channel's history at its original times.
	h1 := w.waitMessage(ctx, portal, "history one")
	h2 := w.waitMessage(ctx, portal, "history two")
	for i, c := range []struct {
		evt  *event.Event
		echo *ircconn.Message
	}{{h1, hist1}, {h2, hist2}} {
		want := c.echo.Time().Truncate(time.Second).UnixMilli() // chanhistory keeps whole seconds
		if c.evt.Sender != ghost("bob") || c.evt.Timestamp != want {
			t.Errorf("history line %d: from %s at %d, want %s at %d", i, c.evt.Sender, c.evt.Timestamp, ghost("bob"), want)
		}
	}
	if f := h2.Content.AsMessage().FormattedBody; f != "history <b>two</b>" {
		t.Errorf("formatted history line: %q", f)
	}

	// IRC → Matrix, with formatting.
	bob.say(channel, "hey alice: \x02bold\x02 and \x0304red\x03!")
	msg := w.waitMessage(ctx, portal, "hey alice: bold and red!")
	if mc := msg.Content.AsMessage(); msg.Sender != ghost("bob") ||
		mc.FormattedBody != `hey alice: <b>bold</b> and <font data-mx-color="#ff0000">red</font>!` {
		t.Fatalf("from IRC: %s %q", msg.Sender, mc.FormattedBody)
	}
	// Matrix → IRC, with formatting.
	if _, err := alice.SendMessageEvent(ctx, portal, event.EventMessage, &event.MessageEventContent{
		MsgType: event.MsgText, Body: "hi bob", Format: event.FormatHTML,
		FormattedBody: `<strong>hi</strong> <em>bob</em>`,
	}); err != nil {
		t.Fatal(err)
	}
	if got := bob.awaitFrom("PRIVMSG", channel, "alice"); got.Trailing() != "\x02hi\x02 \x1dbob\x0f" {
		t.Fatalf("bob got %q", got.Trailing())
	}

	// Typing both ways, as IRCv3 +typing client tags on TAGMSG: alice's
	// typing reaches the plugin with its queue's typing notifications.
	if _, err := alice.UserTyping(ctx, portal, true, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	bob.await("alice typing", func(m *ircconn.Message) bool {
		v, _ := m.Tag("+typing")
		return m.Command == "TAGMSG" && m.Prefix().Name == "alice" && v == "active"
	})
	if _, err := alice.UserTyping(ctx, portal, false, 0); err != nil {
		t.Fatal(err)
	}
	bob.await("alice done typing", func(m *ircconn.Message) bool {
		v, _ := m.Tag("+typing")
		return m.Command == "TAGMSG" && m.Prefix().Name == "alice" && v == "done"
	})
	typing := ircconn.NewMessage("TAGMSG", channel)
	typing.SetTag("+typing", "active")
	bob.send(typing)
	w.wait(ctx, portal, "bob typing", func(evt *event.Event) bool {
		return evt.Type == event.EphemeralEventTyping && slices.Contains(evt.Content.AsTyping().UserIDs, ghost("bob"))
	})

	// A topic set on IRC.
	bob.send(ircconn.NewMessage("TOPIC", channel, "the IRC topic"))
	topic := w.wait(ctx, portal, "topic from IRC", func(evt *event.Event) bool {
		return evt.Type == event.StateTopic && evt.Content.AsTopic().Topic == "the IRC topic"
	})
	if topic.Sender != ghost("bob") {
		t.Errorf("topic set by %s", topic.Sender)
	}

	// A kick on IRC: carol's ghost leaves the room, kicked by bob's.
	carol := dialIRC(t, ircAddr, "carol")
	carol.join(channel)
	w.waitMember(ctx, portal, ghost("carol"), event.MembershipJoin, nil)
	bob.send(ircconn.NewMessage("KICK", channel, "carol", "bye carol"))
	kick := w.waitMember(ctx, portal, ghost("carol"), event.MembershipLeave, nil)
	if kick.Sender != ghost("bob") || kick.Content.AsMember().Reason != "bye carol" {
		t.Fatalf("kick on Matrix: by %s, reason %q", kick.Sender, kick.Content.AsMember().Reason)
	}

	// bob ops alice (power level 50 in the room); carol comes back and
	// alice kicks her from Matrix: the kick reaches IRC from alice.
	bob.send(ircconn.NewMessage("MODE", channel, "+o", "alice"))
	w.wait(ctx, portal, "alice at power level 50", func(evt *event.Event) bool {
		return evt.Type == event.StatePowerLevels && evt.Content.AsPowerLevels().GetUserLevel(alice.UserID) == 50
	})
	carol.join(channel)
	w.wait(ctx, portal, "carol back", func(evt *event.Event) bool {
		return evt.Type == event.StateMember && evt.GetStateKey() == string(ghost("carol")) &&
			evt.Content.AsMember().Membership == event.MembershipJoin && evt.Timestamp > kick.Timestamp
	})
	if _, err := alice.KickUser(ctx, portal, &mautrix.ReqKickUser{UserID: ghost("carol"), Reason: "from Matrix"}); err != nil {
		t.Fatal(err)
	}
	if m := carol.awaitFrom("KICK", channel, "alice"); m.Param(1) != "carol" || m.Param(2) != "from Matrix" {
		t.Fatalf("carol saw %v", m)
	}

	// Kill the plugin mid-conversation; bob talks on while it is down.
	pid := pluginPID(s, bin)
	if pid == 0 {
		t.Fatal("no plugin process under the server")
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	bob.await("alice's connection dropping with the plugin", func(m *ircconn.Message) bool {
		return m.Command == "QUIT" && m.Prefix().Name == "alice"
	})
	bob.say(channel, "said while the bridge was down")
	bob.say(channel, "\x1ditalic\x1d while down")
	// alice writes from Matrix while the plugin is down: the host keeps it
	// for the plugin, which, restarted, gets it while its IRC connection
	// is still coming up, and waits for the connection rather than refuse
	// it.
	if _, err := alice.SendText(ctx, portal, "from Matrix while the bridge was down"); err != nil {
		t.Fatal(err)
	}
	// The host restarts the plugin; alice's login reconnects and rejoins,
	// and the channel's history brings what she missed.
	bob.await("alice back", func(m *ircconn.Message) bool {
		return m.Command == "JOIN" && m.Prefix().Name == "alice" && strings.EqualFold(m.Param(0), channel)
	})
	if got := bob.awaitFrom("PRIVMSG", channel, "alice"); got.Trailing() != "from Matrix while the bridge was down" {
		t.Fatalf("bob got %q after the restart", got.Trailing())
	}
	w.waitMessage(ctx, portal, "said while the bridge was down")
	if evt := w.waitMessage(ctx, portal, "italic while down"); evt.Content.AsMessage().FormattedBody != "<i>italic</i> while down" {
		t.Errorf("formatted line from while the bridge was down: %q", evt.Content.AsMessage().FormattedBody)
	}
	recovered := time.Now()
	if newPID := pluginPID(s, bin); newPID == pid || newPID == 0 {
		t.Errorf("plugin pid after the restart: %d (before: %d)", newPID, pid)
	}
	// And the bridge works both ways again.
	bob.say(channel, "after the restart")
	w.waitMessage(ctx, portal, "after the restart")
	if _, err := alice.SendText(ctx, portal, "me too"); err != nil {
		t.Fatal(err)
	}
	if got := bob.awaitFrom("PRIVMSG", channel, "alice"); got.Trailing() != "me too" {
		t.Fatalf("bob got %q after the restart", got.Trailing())
	}

	// Nothing is in the room twice (the history replays of the rejoin
	// overlap what was bridged before).
	// (Event IDs tell a second event from the same one synced twice.)
	ids := map[string][]id.EventID{}
	for _, evt := range w.seen[portal] {
		if evt.Type == event.EventMessage {
			body := evt.Content.AsMessage().Body
			ids[body] = append(ids[body], evt.ID)
		}
	}
	for body, evs := range ids {
		if len(evs) > 1 {
			t.Errorf("%q is in the room %d times: %v", body, len(evs), evs)
		}
	}
	for _, evt := range w.seen[portal] {
		if evt.Sender == ircBot && evt.Type == event.EventMessage {
			t.Errorf("the bot said in the portal: %s", evt.Content.AsMessage().Body)
		}
	}
	// The plugin logged no error of its own (its records reach the
	// server's log at their level; the host's restart notice is not one).
	for _, line := range strings.Split(s.Logs(), "\n") {
		if strings.Contains(line, `"logger":"plugin.tributary-irc"`) && strings.Contains(line, `"level":"ERROR"`) {
			t.Errorf("the plugin logged an error: %s", line)
		}
	}
	t.Logf("build and flows %.1fs; recovered %.1fs after SIGKILL",
		time.Since(start).Seconds(), recovered.Sub(killed).Seconds())
}
