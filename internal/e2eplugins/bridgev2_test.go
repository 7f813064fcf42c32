package e2eplugins

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/internal/pgtest"
	"github.com/tributary-hs/tributary/internal/testserver"
	"github.com/tributary-hs/tributary/plugins/plugintest"
	"github.com/tributary-hs/tributary/plugins/plugintest/fakenet"
)

// The fake network's bridge: a bridgev2 NetworkConnector (plugins/
// plugintest/fakebridge/connector) that sdk.Serve runs as a plugin, with
// the stock bridgev2 bridge and the SDK's Matrix connector over gRPC.
const (
	fakeBridgePackage = "github.com/tributary-hs/tributary/plugins/plugintest/fakebridge"
	fakeBot           = id.UserID("@fakenetbot:localhost")
)

func fakeGhost(netID string) id.UserID { return id.UserID("@fakenet_" + netID + ":localhost") }

// fakeBridgeEntry is the plugins section running the fake bridge against
// the network at url; extra is more of its config block (YAML, indented
// for the block).
func fakeBridgeEntry(bin, url, extra string) string {
	return fmt.Sprintf(`  - name: fakenet
    binary: %q
    ghost_prefix: fakenet_
    bot_localpart: fakenetbot
    config:
      network:
        address: %q
        history_now: true
      bridge:
        personal_filtering_spaces: true
%s`, bin, url, extra)
}

// fakeBridgeBin builds the plugin once per test binary, into
// fakeBridgeDir (TestMain removes it).
var (
	fakeBridgeDir string
	fakeBridgeBin = sync.OnceValues(func() (string, error) {
		dir, err := os.MkdirTemp("", "fakebridge-")
		if err != nil {
			return "", err
		}
		fakeBridgeDir = dir
		return plugintest.BuildInto(dir, fakeBridgePackage)
	})
)

func buildFakeBridge(t testing.TB) string {
	t.Helper()
	bin, err := fakeBridgeBin()
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// watcher follows a user's /sync and keeps every timeline event and
// invite it saw, so that a wait finds what arrived before it began.
type watcher struct {
	t       testing.TB
	c       *mautrix.Client
	since   string
	seen    []*event.Event
	eph     []*event.Event // typing and receipts
	invites []id.RoomID
	joined  []id.RoomID
}

func newWatcher(t testing.TB, c *mautrix.Client) *watcher { return &watcher{t: t, c: c} }

func (w *watcher) sync(ctx context.Context) {
	w.t.Helper()
	resp, err := w.c.SyncRequest(ctx, 5000, w.since, "", false, event.PresenceOnline)
	if err != nil {
		w.t.Fatalf("sync as %s: %v", w.c.UserID, err)
	}
	w.since = resp.NextBatch
	for roomID := range resp.Rooms.Invite {
		w.invites = append(w.invites, roomID)
	}
	for roomID, room := range resp.Rooms.Join {
		if !containsRoom(w.joined, roomID) {
			w.joined = append(w.joined, roomID)
		}
		for _, ev := range room.Timeline.Events {
			ev.RoomID = roomID
			_ = ev.Content.ParseRaw(ev.Type)
			w.seen = append(w.seen, ev)
		}
		for _, ev := range room.Ephemeral.Events {
			ev.RoomID = roomID
			ev.Type.Class = event.EphemeralEventType
			_ = ev.Content.ParseRaw(ev.Type)
			w.eph = append(w.eph, ev)
		}
	}
}

// wait syncs until an event of the room matches, and returns it.
func (w *watcher) wait(what string, room id.RoomID, match func(*event.Event) bool) *event.Event {
	w.t.Helper()
	return w.waitIn(&w.seen, what, room, match)
}

// waitEphemeral is wait for typing notifications and receipts.
func (w *watcher) waitEphemeral(what string, room id.RoomID, match func(*event.Event) bool) *event.Event {
	w.t.Helper()
	return w.waitIn(&w.eph, what, room, match)
}

func (w *watcher) waitIn(list *[]*event.Event, what string, room id.RoomID, match func(*event.Event) bool) *event.Event {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	for {
		for _, ev := range *list {
			if (room == "" || ev.RoomID == room) && match(ev) {
				return ev
			}
		}
		if ctx.Err() != nil {
			w.t.Fatalf("timed out waiting for %s", what)
		}
		w.sync(ctx)
	}
}

// waitRoomNamed syncs until the user is invited to or joined a room of
// that name.
func (w *watcher) waitRoomNamed(name string) id.RoomID {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	checked := map[id.RoomID]bool{}
	for {
		for _, r := range append(append([]id.RoomID(nil), w.invites...), w.joined...) {
			if checked[r] {
				continue
			}
			var n event.RoomNameEventContent
			if w.c.StateEvent(ctx, r, event.StateRoomName, "", &n) == nil {
				checked[r] = true
				if n.Name == name {
					return r
				}
			}
		}
		if ctx.Err() != nil {
			w.t.Fatalf("timed out waiting for the room %q", name)
		}
		w.sync(ctx)
	}
}

func containsRoom(list []id.RoomID, r id.RoomID) bool {
	for _, x := range list {
		if x == r {
			return true
		}
	}
	return false
}

func body(ev *event.Event) string {
	if m, ok := ev.Content.Parsed.(*event.MessageEventContent); ok {
		return m.Body
	}
	return ""
}

// fromWith matches a message from sender whose body contains text.
func fromWith(sender id.UserID, text string) func(*event.Event) bool {
	return func(ev *event.Event) bool {
		return ev.Type == event.EventMessage && ev.Sender == sender && strings.Contains(body(ev), text)
	}
}

// waitAction waits for what the bridge did on the network.
func waitAction(t testing.TB, net *fakenet.Network, what string, match func(*fakenet.Event) bool) *fakenet.Event {
	t.Helper()
	timeout := time.After(90 * time.Second)
	for {
		select {
		case e := <-net.Actions():
			if match(e) {
				return e
			}
		case <-timeout:
			t.Fatalf("timed out waiting for the bridge to %s", what)
		}
	}
}

// newFakeNetwork is a network with three users and a chat of them.
func newFakeNetwork(t testing.TB) *fakenet.Network {
	t.Helper()
	net, err := fakenet.New()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(net.Close)
	net.AddUser("alice", "Alice Network", "alice-password")
	net.AddUser("bob", "Bob", "bob-password")
	net.AddUser("carol", "Carol", "carol-password")
	net.AddChat("general", "General", "Everyone", "alice", "bob", "carol")
	return net
}

// managementRoom: the user opens a DM with the bot, which becomes their
// management room.
func managementRoom(t testing.TB, c *mautrix.Client, w *watcher) id.RoomID {
	t.Helper()
	ctx := context.Background()
	eventually(t.(*testing.T), "the bridge registered its bot", func() bool {
		_, err := c.GetProfile(ctx, fakeBot)
		return err == nil
	})
	room, err := c.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "trusted_private_chat", IsDirect: true,
		Invite: []id.UserID{fakeBot}})
	if err != nil {
		t.Fatal(err)
	}
	w.wait("the bot's welcome", room.RoomID, fromWith(fakeBot, "This room has been marked as your management room"))
	return room.RoomID
}

// command sends a command to the bot and waits for the answer containing
// want.
func command(t testing.TB, c *mautrix.Client, w *watcher, room id.RoomID, cmd, want string) *event.Event {
	t.Helper()
	sent, err := c.SendText(context.Background(), room, cmd)
	if err != nil {
		t.Fatal(err)
	}
	return w.wait(fmt.Sprintf("the bot's answer to %q", cmd), room, func(ev *event.Event) bool {
		return ev.Type == event.EventMessage && ev.Sender == fakeBot && strings.Contains(body(ev), want) &&
			ev.Timestamp >= 0 && ev.ID != sent.EventID && after(w, sent.EventID, ev)
	})
}

// after reports whether ev came after the event first in the watcher's
// order.
func after(w *watcher, first id.EventID, ev *event.Event) bool {
	seenFirst := false
	for _, e := range w.seen {
		if e.ID == first {
			seenFirst = true
		}
		if e == ev {
			return seenFirst
		}
	}
	return false
}

// login logs the user in to the network through the bot, as a user of a
// standalone bridge does.
func login(t testing.TB, c *mautrix.Client, w *watcher, mgmt id.RoomID) {
	t.Helper()
	command(t, c, w, mgmt, "login", "Username")
	command(t, c, w, mgmt, "alice", "Password")
	command(t, c, w, mgmt, "alice-password", "Logged in as Alice Network (alice)")
}

// TestBridgev2PluginFlows runs the stock bridgev2 flows through the plugin:
// management room and bot commands, login, a portal with ghosts and its
// history, messages both ways with replies, edits, reactions and
// redactions, the bridge state in `tributary plugins list`, a crash of the
// plugin mid-conversation (nothing is lost either way), and logout.
func TestBridgev2PluginFlows(t *testing.T) {
	net := newFakeNetwork(t)
	base := time.Date(2022, 1, 2, 3, 4, 5, 0, time.UTC)
	hist := net.Seed("general", 3, func(i int) string { return []string{"bob", "carol", "alice"}[i] },
		func(i int) string { return fmt.Sprintf("old %d", i) }, func(i int) time.Time { return base.Add(time.Duration(i) * time.Minute) })
	bin := buildFakeBridge(t)
	s := startWithPlugins(t, fakeBridgeEntry(bin, net.URL(), ""))
	testFlows(t, s, net, bin, hist, base)
}

// On PostgreSQL, the bridge keeps its database in the server's, in a
// schema of its own.
func TestBridgev2PluginFlowsPostgres(t *testing.T) {
	dbURL := pgtest.URL(t)
	net := newFakeNetwork(t)
	base := time.Date(2022, 1, 2, 3, 4, 5, 0, time.UTC)
	hist := net.Seed("general", 3, func(i int) string { return []string{"bob", "carol", "alice"}[i] },
		func(i int) string { return fmt.Sprintf("old %d", i) }, func(i int) time.Time { return base.Add(time.Duration(i) * time.Minute) })
	bin := buildFakeBridge(t)
	s := startWithPlugins(t, fakeBridgeEntry(bin, net.URL(), ""), "TRIBUTARY_DATABASE_URL="+dbURL)
	testFlows(t, s, net, bin, hist, base)

	conn, err := pgx.Connect(t.Context(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var portals int
	if err := conn.QueryRow(t.Context(), `SELECT count(*) FROM plugin_fakenet.portal WHERE id = 'general'`).Scan(&portals); err != nil || portals != 1 {
		t.Errorf("portals in the plugin's schema: %d (%v), want 1", portals, err)
	}
	var elsewhere int
	if err := conn.QueryRow(t.Context(), `SELECT count(*) FROM information_schema.tables
		WHERE table_name = 'portal' AND table_schema <> 'plugin_fakenet'`).Scan(&elsewhere); err != nil || elsewhere != 0 {
		t.Errorf("bridge tables outside the plugin's schema: %d (%v)", elsewhere, err)
	}
}

func testFlows(t *testing.T, s *testserver.Server, net *fakenet.Network, bin string, hist []string, base time.Time) {
	ctx := context.Background()
	alice := s.Register(t, &mautrix.ReqRegister[any]{Username: "alice", Password: "correct horse battery"})
	w := newWatcher(t, alice)

	// Bot commands in the management room, as in a standalone bridge.
	mgmt := managementRoom(t, alice, w)
	command(t, alice, w, mgmt, "help", "list-logins")
	command(t, alice, w, mgmt, "list-logins", "You're not logged in")
	login(t, alice, w, mgmt)
	command(t, alice, w, mgmt, "list-logins", "alice")

	// The login's chat becomes a portal: the user is in it (bridgev2 joins
	// them: the host vouches for its own users, double puppeting without
	// a shared secret), the other members are ghosts, the chat's history
	// is there with its senders and times.
	portal := w.waitRoomNamed("General")
	eventually(t, "alice is in the portal", func() bool {
		m, err := alice.JoinedMembers(ctx, portal)
		if err != nil {
			return false
		}
		_, in := m.Joined[alice.UserID]
		return in
	})
	eventually(t, "the ghosts joined the portal", func() bool {
		m, err := alice.JoinedMembers(ctx, portal)
		if err != nil {
			return false
		}
		_, bob := m.Joined[fakeGhost("bob")]
		_, carol := m.Joined[fakeGhost("carol")]
		return bob && carol
	})
	// The user's space of the network's chats holds the portal.
	space := w.waitRoomNamed("Fake network (Alice Network)")
	eventually(t, "the portal in the user's space", func() bool {
		var child event.SpaceChildEventContent
		return alice.StateEvent(ctx, space, event.StateSpaceChild, string(portal), &child) == nil && len(child.Via) > 0
	})
	prof, err := alice.GetProfile(ctx, fakeGhost("bob"))
	if err != nil || prof.DisplayName != "Bob" {
		t.Errorf("bob's ghost's profile %+v (%v), want the name Bob", prof, err)
	}
	w.wait("the chat's history", portal, fromWith(alice.UserID, "old 2"))
	msgs, err := alice.Messages(ctx, portal, "", "", mautrix.DirectionBackward, nil, 100)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for i := len(msgs.Chunk) - 1; i >= 0; i-- {
		ev := msgs.Chunk[i]
		if ev.Type == event.EventMessage {
			_ = ev.Content.ParseRaw(ev.Type)
			got = append(got, fmt.Sprintf("%s %d %s", ev.Sender, ev.Timestamp, body(ev)))
		}
	}
	want := []string{
		fmt.Sprintf("%s %d old 0", fakeGhost("bob"), base.UnixMilli()),
		fmt.Sprintf("%s %d old 1", fakeGhost("carol"), base.Add(time.Minute).UnixMilli()),
		// The user's own message on the network is theirs on Matrix: the
		// host vouches for its users (double puppeting, no shared secret).
		fmt.Sprintf("%s %d old 2", alice.UserID, base.Add(2*time.Minute).UnixMilli()),
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("portal history:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	_ = hist

	// Network → Matrix.
	fromBob := net.Post("general", "bob", "hi from bob")
	bobEv := w.wait("bob's message", portal, fromWith(fakeGhost("bob"), "hi from bob"))

	// What the user says on the network from elsewhere (their phone) is
	// theirs on Matrix too, and is not bridged back as a new message.
	net.Post("general", "alice", "from alice's phone")
	w.wait("alice's own message from the network", portal, fromWith(alice.UserID, "from alice's phone"))

	// Matrix → network, with a reply.
	reply := &event.MessageEventContent{MsgType: event.MsgText, Body: "hello from matrix"}
	reply.SetReply(bobEv)
	sent, err := alice.SendMessageEvent(ctx, portal, event.EventMessage, reply)
	if err != nil {
		t.Fatal(err)
	}
	onNet := waitAction(t, net, "send alice's message", func(e *fakenet.Event) bool {
		if e.Message.Text == "from alice's phone" {
			t.Errorf("the bridge sent alice's message from the network back to it: %+v", e)
		}
		return e.Type == "message" && e.Message.Text == "hello from matrix"
	})
	if onNet.Sender != "alice" || onNet.Message.ReplyTo != fromBob.ID {
		t.Errorf("on the network: %+v, want from alice replying to %s", onNet.Message, fromBob.ID)
	}

	// The network's typing notifications and read receipts, on the ghosts.
	net.Typing("general", "bob")
	w.waitEphemeral("bob typing", portal, func(ev *event.Event) bool {
		return ev.Type == event.EphemeralEventTyping && slices.Contains(ev.Content.AsTyping().UserIDs, fakeGhost("bob"))
	})
	if err := net.Read(onNet.Message.ID, "carol"); err != nil {
		t.Fatal(err)
	}
	w.waitEphemeral("carol's read receipt", portal, func(ev *event.Event) bool {
		if ev.Type != event.EphemeralEventReceipt {
			return false
		}
		_, ok := (*ev.Content.AsReceipt())[sent.EventID][event.ReceiptTypeRead][fakeGhost("carol")]
		return ok
	})

	// Matrix → network: the user's typing and read receipts reach the
	// plugin with its queue's transactions, and the connector tells the
	// network.
	if _, err := alice.UserTyping(ctx, portal, true, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	waitAction(t, net, "alice typing", func(e *fakenet.Event) bool {
		return e.Type == "typing" && e.Sender == "alice" && e.Chat == "general" && !e.Stopped
	})
	if _, err := alice.UserTyping(ctx, portal, false, 0); err != nil {
		t.Fatal(err)
	}
	waitAction(t, net, "alice stopped typing", func(e *fakenet.Event) bool {
		return e.Type == "typing" && e.Sender == "alice" && e.Chat == "general" && e.Stopped
	})
	if err := alice.MarkRead(ctx, portal, bobEv.ID); err != nil {
		t.Fatal(err)
	}
	waitAction(t, net, "alice's read receipt", func(e *fakenet.Event) bool {
		return e.Type == "read" && e.Sender == "alice" && e.Message.ID == fromBob.ID
	})

	// Edits both ways.
	edit := &event.MessageEventContent{MsgType: event.MsgText, Body: "* hello, edited"}
	edit.SetEdit(sent.EventID)
	edit.NewContent = &event.MessageEventContent{MsgType: event.MsgText, Body: "hello, edited"}
	if _, err := alice.SendMessageEvent(ctx, portal, event.EventMessage, edit); err != nil {
		t.Fatal(err)
	}
	waitAction(t, net, "edit alice's message", func(e *fakenet.Event) bool {
		return e.Type == "edit" && e.Message.ID == onNet.Message.ID && e.Message.Text == "hello, edited"
	})
	if err := net.Edit(fromBob.ID, "hi from bob, edited"); err != nil {
		t.Fatal(err)
	}
	w.wait("bob's edit", portal, func(ev *event.Event) bool {
		m, ok := ev.Content.Parsed.(*event.MessageEventContent)
		return ok && ev.Sender == fakeGhost("bob") && m.RelatesTo != nil && m.RelatesTo.GetReplaceID() == bobEv.ID &&
			m.NewContent != nil && m.NewContent.Body == "hi from bob, edited"
	})

	// Reactions both ways, and taking one back.
	react, err := alice.SendReaction(ctx, portal, bobEv.ID, "👍")
	if err != nil {
		t.Fatal(err)
	}
	waitAction(t, net, "react", func(e *fakenet.Event) bool {
		return e.Type == "reaction" && e.Sender == "alice" && e.Message.ID == fromBob.ID && e.Emoji == "👍"
	})
	if _, err := alice.RedactEvent(ctx, portal, react.EventID); err != nil {
		t.Fatal(err)
	}
	waitAction(t, net, "take the reaction back", func(e *fakenet.Event) bool {
		return e.Type == "unreaction" && e.Message.ID == fromBob.ID && e.Emoji == "👍"
	})
	if err := net.React(onNet.Message.ID, "carol", "🎉"); err != nil {
		t.Fatal(err)
	}
	w.wait("carol's reaction", portal, func(ev *event.Event) bool {
		r, ok := ev.Content.Parsed.(*event.ReactionEventContent)
		return ok && ev.Sender == fakeGhost("carol") && r.RelatesTo.EventID == sent.EventID && r.RelatesTo.Key == "🎉"
	})

	// Files both ways, larger than one chunk of the media streams.
	image := bytes.Repeat([]byte("\x89PNG fake image "), 40_000)
	net.PostFile("general", "bob", &fakenet.File{Name: "cat.png", Mime: "image/png", Data: image})
	imgEv := w.wait("bob's image", portal, func(ev *event.Event) bool {
		m, ok := ev.Content.Parsed.(*event.MessageEventContent)
		return ok && ev.Sender == fakeGhost("bob") && m.MsgType == event.MsgImage && m.Body == "cat.png"
	})
	mxc, err := imgEv.Content.AsMessage().URL.Parse()
	if err != nil {
		t.Fatalf("the image's URL: %v", err)
	}
	if got, err := alice.DownloadBytes(ctx, mxc); err != nil || !bytes.Equal(got, image) {
		t.Fatalf("downloading the bridged image: %d bytes (%v), want %d", len(got), err, len(image))
	}
	doc := bytes.Repeat([]byte("a document "), 70_000)
	up, err := alice.UploadBytesWithName(ctx, doc, "application/pdf", "doc.pdf")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := alice.SendMessageEvent(ctx, portal, event.EventMessage, &event.MessageEventContent{MsgType: event.MsgFile,
		Body: "doc.pdf", URL: up.ContentURI.CUString(), Info: &event.FileInfo{MimeType: "application/pdf"}}); err != nil {
		t.Fatal(err)
	}
	fileOnNet := waitAction(t, net, "send alice's file", func(e *fakenet.Event) bool {
		return e.Type == "message" && e.Message.File != nil
	})
	if f := fileOnNet.Message.File; f.Name != "doc.pdf" || f.Mime != "application/pdf" || !bytes.Equal(f.Data, doc) {
		t.Fatalf("the network got %s (%s, %d bytes), want doc.pdf (application/pdf, %d bytes)", f.Name, f.Mime, len(f.Data), len(doc))
	}

	// Redactions both ways.
	if _, err := alice.RedactEvent(ctx, portal, sent.EventID); err != nil {
		t.Fatal(err)
	}
	waitAction(t, net, "delete alice's message", func(e *fakenet.Event) bool {
		return e.Type == "delete" && e.Message.ID == onNet.Message.ID
	})
	if err := net.Delete(fromBob.ID); err != nil {
		t.Fatal(err)
	}
	w.wait("the redaction of bob's message", portal, func(ev *event.Event) bool {
		return ev.Type == event.EventRedaction && ev.Sender == fakeGhost("bob") && ev.Redacts == bobEv.ID
	})

	// The admin sees the login's state: connected, a transient disconnect
	// while the network is down, connected again.
	loginState := func(state string) {
		t.Helper()
		eventually(t, "plugins list shows the login "+state, func() bool {
			out, err := s.Run(t, "", "plugins", "list")
			return err == nil && strings.Contains(out, "@alice:localhost/alice "+state)
		})
	}
	loginState("CONNECTED")
	net.SetDown(true)
	loginState("TRANSIENT_DISCONNECT")
	// While the network is down the login goes on trying (CONNECTING,
	// then TRANSIENT_DISCONNECT again): /metrics shows the state of the
	// moment.
	eventually(t, "/metrics counting the login as disconnected", func() bool {
		return strings.Contains(get(t, s.MetricsURL()+"/metrics"),
			`tributary_plugin_logins{plugin="fakenet",state="TRANSIENT_DISCONNECT"} 1`)
	})
	net.SetDown(false)
	loginState("CONNECTED")

	// Kill the plugin mid-conversation: what either side says meanwhile
	// arrives after the automatic restart.
	pid := pluginPID(s, bin)
	if pid == 0 {
		t.Fatal("no plugin process under the server")
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.SendText(ctx, portal, "sent while the bridge was down"); err != nil {
		t.Fatal(err)
	}
	net.Post("general", "carol", "carol while the bridge was down")
	waitAction(t, net, "deliver the message sent while it was down", func(e *fakenet.Event) bool {
		return e.Type == "message" && e.Message.Text == "sent while the bridge was down" && e.Sender == "alice"
	})
	w.wait("carol's message from while the bridge was down", portal,
		fromWith(fakeGhost("carol"), "carol while the bridge was down"))
	if newPID := pluginPID(s, bin); newPID == pid || newPID == 0 {
		t.Errorf("plugin pid after the restart: %d (before: %d)", newPID, pid)
	}

	// Bad credentials: the user is told in the management room, the admin
	// in plugins list.
	net.Revoke("alice")
	w.wait("the bad credentials notice", mgmt, fromWith(fakeBot, "BAD_CREDENTIALS"))
	loginState("BAD_CREDENTIALS")

	// Logout, as in a standalone bridge.
	command(t, alice, w, mgmt, "logout alice", "Logged out")
	command(t, alice, w, mgmt, "list-logins", "You're not logged in")

	// The bridge met no error on the way, and told the user of none (it
	// would have, as a notice of its bot in the portal).
	if errs := bridgeErrors(s); len(errs) > 0 {
		t.Errorf("the bridge logged errors:\n%s", strings.Join(errs, "\n"))
	}
	for _, ev := range w.seen {
		if ev.RoomID == portal && ev.Sender == fakeBot && ev.Type == event.EventMessage {
			t.Errorf("the bot said in the portal: %s", body(ev))
		}
	}
}

// bridgeErrors are the error lines the plugin logged itself (its records
// reach the server's log at their level).
func bridgeErrors(s *testserver.Server) []string {
	var out []string
	for _, line := range strings.Split(s.Logs(), "\n") {
		if strings.Contains(line, `"logger":"plugin.fakebridge"`) && strings.Contains(line, `"level":"ERROR"`) {
			out = append(out, line)
		}
	}
	return out
}

// TestBridgev2PluginBackfill is the bridgev2 backfill flow of the
// appservice tests (internal/e2ebridgev2) through the plugin: a chat with
// 10,000 messages of history; the new portal's forward backfill brings the
// newest 2,000, the backfill queue the older ones in backward batches of
// 3,000; a client paginates every message back in order, with its
// original sender and timestamp; the history is marked read for the user;
// replies to backfilled messages reach the network as replies to the
// right messages.
func TestBridgev2PluginBackfill(t *testing.T) {
	const (
		n         = 10_000
		initial   = 2_000
		batchSize = 3_000
	)
	start := time.Now()
	net := newFakeNetwork(t)
	ghosts := []string{"g0", "g1", "g2", "g3", "g4"}
	for _, g := range ghosts {
		net.AddUser(g, "Ghost "+g, "")
	}
	net.AddChat("history", "Backfill test chat", "10,000 messages of history", append([]string{"alice"}, ghosts...)...)
	base := time.Date(2021, 3, 4, 5, 6, 7, 0, time.UTC)
	sender := func(i int) string { return ghosts[i%len(ghosts)] }
	text := func(i int) string { return fmt.Sprintf("msg %d", i) }
	ts := func(i int) time.Time { return base.Add(time.Duration(i) * time.Second) }
	netIDs := net.Seed("history", n, sender, text, ts)
	// alice's other chat stays empty.
	bin := buildFakeBridge(t)
	s := startWithPlugins(t, fakeBridgeEntry(bin, net.URL(), fmt.Sprintf(`      backfill:
        enabled: true
        max_initial_messages: %d
        max_catchup_messages: %d
        unread_hours_threshold: 720
        queue: {enabled: true, batch_size: %d, batch_delay: 1, max_batches: -1}
`, initial, initial, batchSize)))
	ctx := context.Background()
	alice := s.Register(t, &mautrix.ReqRegister[any]{Username: "alice", Password: "correct horse battery"})
	w := newWatcher(t, alice)
	mgmt := managementRoom(t, alice, w)
	login(t, alice, w, mgmt)

	// The portal of the history chat (the login's other chat, "general",
	// has no messages).
	var portal id.RoomID
	eventually(t, "the history portal", func() bool {
		rooms, err := alice.JoinedRooms(ctx)
		if err != nil {
			return false
		}
		for _, r := range rooms.JoinedRooms {
			var name event.RoomNameEventContent
			if alice.StateEvent(ctx, r, event.StateRoomName, "", &name) == nil && name.Name == "Backfill test chat" {
				portal = r
				return true
			}
		}
		return false
	})
	w.wait("the newest message", portal, fromWith(id.UserID(fakeGhost(sender(n-1))), text(n-1)))
	// The oldest message arrives last, at the start of the room.
	eventually(t, "the oldest message at the start of the room", func() bool {
		page, err := alice.Messages(ctx, portal, "", "", mautrix.DirectionForward, nil, 100)
		if err != nil {
			return false
		}
		for _, ev := range page.Chunk {
			if ev.Type == event.EventMessage && ev.Content.Raw["body"] == text(0) {
				return true
			}
		}
		return false
	})
	backfilled := time.Now()

	got := paginateAll(t, alice, portal)
	if len(got) != n {
		t.Fatalf("paginated %d messages, want %d; history calls %+v", len(got), n, net.HistoryCalls())
	}
	realIDs := make([]id.EventID, n)
	for i := range n {
		ev := got[n-1-i] // newest first
		want := fakeGhost(sender(i))
		if b, _ := ev.Content.Raw["body"].(string); b != text(i) || ev.Sender != want || ev.Timestamp != ts(i).UnixMilli() {
			t.Fatalf("message %d read back as %q from %s at %d; want %q from %s at %d",
				i, b, ev.Sender, ev.Timestamp, text(i), want, ts(i).UnixMilli())
		}
		realIDs[i] = ev.ID
	}

	// The network was asked for the newest messages once, then for older
	// pages until it said there were no more.
	var calls []fakenet.HistoryCall
	for _, c := range net.HistoryCalls() {
		if c.Chat == "history" {
			calls = append(calls, c)
		}
	}
	wantCalls := []fakenet.HistoryCall{
		{Chat: "history", Forward: true, Limit: initial, Returned: initial, HasMore: true},
		{Chat: "history", Before: netIDs[n-initial], Limit: batchSize, Returned: batchSize, HasMore: true},
		{Chat: "history", Before: netIDs[n-initial-batchSize], Limit: batchSize, Returned: batchSize, HasMore: true},
		{Chat: "history", Before: netIDs[n-initial-2*batchSize], Limit: batchSize, Returned: n - initial - 2*batchSize},
	}
	if fmt.Sprint(calls) != fmt.Sprint(wantCalls) {
		t.Fatalf("history calls\n%+v\nwant\n%+v", calls, wantCalls)
	}

	// The chat is older than unread_hours_threshold: the bridge marked it
	// read for alice, on the newest message.
	if ev, ok := readReceipt(t, alice, portal); !ok || ev != realIDs[n-1] {
		t.Fatalf("alice's read receipt is on %q (found %v), want the newest message %s", ev, ok, realIDs[n-1])
	}

	// Replies to backfilled messages, by their real event IDs, reach the
	// network as replies to the right messages.
	for _, i := range []int{n - initial - batchSize - 1, n - 1} {
		b := fmt.Sprintf("reply to msg %d", i)
		content := map[string]any{"msgtype": "m.text", "body": b,
			"m.relates_to": map[string]any{"m.in_reply_to": map[string]any{"event_id": realIDs[i]}}}
		if _, err := alice.SendMessageEvent(ctx, portal, event.EventMessage, content); err != nil {
			t.Fatal(err)
		}
		e := waitAction(t, net, "send "+b, func(e *fakenet.Event) bool { return e.Type == "message" && e.Message.Text == b })
		if e.Message.ReplyTo != netIDs[i] {
			t.Fatalf("the network got %q replying to %q, want %s", b, e.Message.ReplyTo, netIDs[i])
		}
	}
	if errs := bridgeErrors(s); len(errs) > 0 {
		t.Fatalf("the bridge logged errors:\n%s", strings.Join(errs, "\n"))
	}
	t.Logf("%d messages backfilled %.1fs after start; paginated and checked in %.1fs",
		n, backfilled.Sub(start).Seconds(), time.Since(backfilled).Seconds())
}

// paginateAll reads the room's messages with /messages, newest first.
func paginateAll(t testing.TB, c *mautrix.Client, roomID id.RoomID) []*event.Event {
	t.Helper()
	var got []*event.Event
	from := ""
	for pages := 0; ; pages++ {
		page, err := c.Messages(context.Background(), roomID, from, "", mautrix.DirectionBackward, nil, 1000)
		if err != nil {
			t.Fatalf("/messages page %d: %v", pages, err)
		}
		for _, ev := range page.Chunk {
			if ev.Type == event.EventMessage {
				got = append(got, ev)
			}
		}
		if page.End == "" || len(page.Chunk) == 0 {
			return got
		}
		if pages > 10_000 {
			t.Fatal("/messages does not end")
		}
		from = page.End
	}
}

// readReceipt is the event of the user's m.read receipt in the room, as an
// initial /sync shows it.
func readReceipt(t testing.TB, c *mautrix.Client, roomID id.RoomID) (id.EventID, bool) {
	t.Helper()
	resp, err := c.SyncRequest(context.Background(), 0, "", "", true, "")
	if err != nil {
		t.Fatalf("initial /sync: %v", err)
	}
	room := resp.Rooms.Join[roomID]
	if room == nil {
		t.Fatalf("initial /sync has no joined room %s", roomID)
	}
	for _, ev := range room.Ephemeral.Events {
		if ev.Type != event.EphemeralEventReceipt {
			continue
		}
		for evID, byType := range ev.Content.Raw {
			read, _ := byType.(map[string]any)["m.read"].(map[string]any)
			if _, ok := read[string(c.UserID)]; ok {
				return id.EventID(evID), true
			}
		}
	}
	return "", false
}
