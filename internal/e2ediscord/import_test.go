package e2ediscord

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/internal/discordexport"
	"github.com/tributary-hs/tributary/internal/fakediscord"
	"github.com/tributary-hs/tributary/internal/pgtest"
	"github.com/tributary-hs/tributary/internal/testserver"
	"github.com/tributary-hs/tributary/plugins/plugintest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	pgtest.StopShared()
	os.Exit(code)
}

// TestDiscordPluginContinuesImport is issue 18's "the live plugin then
// continues in the same rooms": `tributary import discord` fills a stopped
// server's data from a generated export; the server then runs the plugin
// against a fake Discord with the same guild, a Matrix user logs in with a
// bot token, and what is said on Discord next lands in the imported rooms:
// a message in the imported channel's room, a thread message in the
// imported thread, a reply to an imported message pointing at it; a Matrix
// message there goes to the channel. The plugin makes no room of its own.
// On SQLite and PostgreSQL.
func TestDiscordPluginContinuesImport(t *testing.T) {
	bin := pluginBinary(t)
	t.Run("sqlite", func(t *testing.T) { continuesImport(t, bin) })
	t.Run("postgres", func(t *testing.T) { continuesImport(t, bin, "--database-url", pgtest.URL(t)) })
}

// continuesImport is TestDiscordPluginContinuesImport on the database
// dbArgs name.
func continuesImport(t *testing.T, bin string, dbArgs ...string) {
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	fake := fakediscord.New(t, botToken)
	export := filepath.Join(t.TempDir(), "export")
	m, err := discordexport.WriteDir(export, discordexport.Options{Seed: 18, Messages: 300, Channels: 2, Threads: 1,
		DMs: -1, Record: true})
	if err != nil {
		t.Fatal(err)
	}
	// The thread, its channel, and the messages to point at.
	var thread, parent *discordexport.Channel
	for _, c := range m.Channels {
		if c.ParentID != "" && !c.StarterIsNotice {
			thread = c
		}
	}
	if thread == nil {
		t.Fatal("the export has no thread started at a message")
	}
	for _, c := range m.Channels {
		if c.ID == thread.ParentID {
			parent = c
		}
	}
	var starter, target discordexport.Record
	for _, r := range m.Records {
		if r.Channel == parent.ID && r.ID == thread.StarterID {
			starter = r
		}
		if r.Channel == parent.ID && r.Type == "Default" && r.Content != "" && r.ID != thread.StarterID {
			target = r
		}
	}
	if starter.ID == "" || target.ID == "" {
		t.Fatalf("no thread starter (%q) or message to reply to (%q) in #%s", starter.ID, target.ID, parent.Name)
	}
	// Alice is a Discord user of the export who reacted to a message of
	// the channel (not one of those above), and a message of the thread
	// by someone else is for her to react to.
	authors := []string{starter.Author, target.Author}
	var alicesReaction reactedWith
	for _, r := range m.Records {
		if r.Channel != parent.ID || slices.Contains(authors, r.Author) || r.ID == starter.ID || r.ID == target.ID || r.Edited != 0 ||
			isBot(m, r.Author) {
			continue
		}
		for _, re := range r.Reactions {
			for _, u := range re.Users {
				if alicesReaction.user == "" && re.EmojiID == "" && !slices.Contains(authors, u) && u != r.Author && !isBot(m, u) {
					alicesReaction = reactedWith{rec: r, user: u, name: re.Name}
				}
			}
		}
	}
	var threadMsg discordexport.Record
	for _, r := range m.Records {
		if r.Channel == thread.ID && r.Type == "Default" && r.Author != alicesReaction.user && !isBot(m, r.Author) {
			threadMsg = r
		}
	}
	if alicesReaction.user == "" || threadMsg.ID == "" {
		t.Fatalf("no reaction for Alice (%+v) or message of the thread (%q)", alicesReaction, threadMsg.ID)
	}
	// The same guild on the fake Discord.
	var channels, threads []any
	for _, c := range m.Channels {
		if c.ParentID == "" {
			channels = append(channels, map[string]any{"id": c.ID, "type": 0, "guild_id": m.GuildID, "name": c.Name, "topic": c.Topic})
		} else {
			threads = append(threads, map[string]any{"id": c.ID, "type": 11, "guild_id": m.GuildID, "name": c.Name, "parent_id": c.ParentID})
		}
	}
	fake.SetGuild(m.GuildID, m.GuildName, channels, threads)

	cfgPath := writeConfig(t, bin, fake.URL())
	dataDir := t.TempDir()
	if out, err := testserver.RunCLI(t, dataDir, "localhost", "", nil,
		append([]string{"user", "add", "alice", "--password", "correct horse battery"}, dbArgs...)...); err != nil {
		t.Fatalf("tributary user add: %v\n%s", err, out)
	}
	userMap := filepath.Join(t.TempDir(), "users.txt")
	if err := os.WriteFile(userMap, []byte(alicesReaction.user+" @alice:localhost\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.CommandContext(ctx, testserver.Binary(t), append([]string{"import", "discord", export, "--no-download",
		"--config", cfgPath, "--user-map", userMap, "--data-dir", dataDir, "--server-name", "localhost"}, dbArgs...)...).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "Imported ") {
		t.Fatalf("tributary import discord: %v\n%s", err, out)
	}

	s := startServer(t, cfgPath, dataDir, dbArgs...)
	alice := s.Client(t)
	if _, err := alice.Login(ctx, &mautrix.ReqLogin{Type: mautrix.AuthTypePassword, StoreCredentials: true,
		Identifier: mautrix.UserIdentifier{Type: mautrix.IdentifierTypeUser, User: "alice"}, Password: "correct horse battery"}); err != nil {
		t.Fatal(err)
	}
	w := &watcher{t: t, cli: alice, seen: map[id.RoomID][]*event.Event{}, typing: map[id.RoomID][]id.UserID{}}
	mgmt := login(ctx, t, alice, w)

	// Discord → Matrix in the imported channel, by an imported author.
	author := map[string]any{"id": target.Author, "username": "someone", "discriminator": "0"}
	fake.Message("said live after the import", map[string]any{"channel_id": parent.ID, "guild_id": m.GuildID, "author": author})
	space := w.inSpace(ctx, m.GuildName)
	if want := "discord:*" + m.GuildID; portalOf(ctx, t, alice, space) != want {
		t.Fatalf("alice was invited to a space that is not the imported one (%s)", want)
	}
	// The imported channel's room, joined from the imported space.
	room := w.importedRoom(ctx, alice, space, parent.ID)
	live := w.message(ctx, room, "said live after the import")
	if live.Sender != ghost(target.Author) {
		t.Errorf("the live message is from %s, want the imported ghost %s", live.Sender, ghost(target.Author))
	}

	// The guild's roles are the imported room's power levels too.
	if got := powerOf(ctx, t, alice, room, ghost(fakediscord.BobID)); got != 50 {
		t.Errorf("bob (a moderator) has power %d in the imported room, want 50", got)
	}

	// A live message in the thread continues the imported thread.
	fake.Message("live in the imported thread", map[string]any{"channel_id": thread.ID, "guild_id": m.GuildID})
	inThread := w.message(ctx, room, "live in the imported thread")
	rel := inThread.Content.AsMessage().RelatesTo
	if rel == nil || rel.Type != event.RelThread {
		t.Fatalf("the thread message relates %+v, want a thread", rel)
	}
	isImported(ctx, t, alice, room, rel.EventID, starter)
	// A live reply to an imported message points at it.
	fake.Message("a live reply to an imported message", map[string]any{"channel_id": parent.ID, "guild_id": m.GuildID, "type": 19,
		"message_reference": map[string]any{"message_id": target.ID, "channel_id": parent.ID, "guild_id": m.GuildID}})
	reply := w.message(ctx, room, "a live reply to an imported message")
	if rel := reply.Content.AsMessage().RelatesTo; rel == nil || rel.InReplyTo == nil {
		t.Fatalf("the reply relates %+v", rel)
	} else {
		isImported(ctx, t, alice, room, rel.InReplyTo.EventID, target)
	}

	// Alice reacts to an imported message of the thread: in the thread's
	// channel; and takes it back.
	threadMsgEvt := findImported(ctx, t, alice, room, live.ID, threadMsg, ghost(threadMsg.Author))
	reacted, err := alice.SendReaction(ctx, room, threadMsgEvt, "👍")
	if err != nil {
		t.Fatal(err)
	}
	threadMsgPath := "/channels/" + thread.ID + "/messages/" + threadMsg.ID + "/reactions/👍/@me"
	fake.Await("the reaction in the thread", func(c fakediscord.Call) bool { return c.Method == "PUT" && c.Path == threadMsgPath })
	if _, err := alice.RedactEvent(ctx, room, reacted.EventID); err != nil {
		t.Fatal(err)
	}
	fake.Await("the reaction's removal in the thread", func(c fakediscord.Call) bool {
		return c.Method == "DELETE" && c.Path == threadMsgPath
	})
	// Alice takes back a reaction the import wrote for her: the bot
	// removes her Discord user's (as a moderator).
	reactedTo := findImported(ctx, t, alice, room, live.ID, alicesReaction.rec, ghost(alicesReaction.rec.Author))
	importedOfAlice := testserver.FindReaction(ctx, t, alice, room, live.ID, reactedTo, alice.UserID, alicesReaction.name)
	if _, err := alice.RedactEvent(ctx, room, importedOfAlice); err != nil {
		t.Fatal(err)
	}
	fake.Await("the imported reaction's removal", func(c fakediscord.Call) bool {
		return c.Method == "DELETE" &&
			c.Path == "/channels/"+parent.ID+"/messages/"+alicesReaction.rec.ID+"/reactions/"+alicesReaction.name+"/"+alicesReaction.user
	})

	// An edit and a deletion on Discord of imported messages.
	fake.Dispatch("MESSAGE_UPDATE", map[string]any{"id": target.ID, "channel_id": parent.ID, "guild_id": m.GuildID,
		"content": "edited live", "type": 0, "author": author, "edited_timestamp": time.Now().UTC().Format(time.RFC3339Nano),
		"timestamp": time.Now().UTC().Format(time.RFC3339Nano)})
	edit := w.wait(ctx, room, "the edit of the imported message", func(evt *event.Event) bool {
		mc := evt.Content.AsMessage()
		return evt.Type == event.EventMessage && mc.NewContent != nil && mc.NewContent.Body == "edited live"
	})
	if rel := edit.Content.AsMessage().RelatesTo; rel == nil || rel.Type != event.RelReplace {
		t.Fatalf("the edit relates %+v", rel)
	} else {
		isImported(ctx, t, alice, room, rel.EventID, target)
	}
	fake.Dispatch("MESSAGE_DELETE", map[string]any{"id": starter.ID, "channel_id": parent.ID, "guild_id": m.GuildID})
	redaction := w.wait(ctx, room, "the redaction of the imported message", func(evt *event.Event) bool {
		return evt.Type == event.EventRedaction && evt.Sender != alice.UserID // not Alice's of her reactions
	})
	if redaction.Redacts != rel.EventID {
		t.Fatalf("redacted %s, want the imported thread root %s", redaction.Redacts, rel.EventID)
	}

	// Matrix → Discord from the imported room goes to the channel.
	if _, err := alice.SendText(ctx, room, "hello from Matrix"); err != nil {
		t.Fatal(err)
	}
	post := fake.Await("the webhook post", func(c fakediscord.Call) bool {
		return c.Method == "POST" && strings.HasPrefix(c.Path, "/webhooks/") && c.JSON["content"] == "hello from Matrix"
	})
	if post.Path != "/webhooks/h"+parent.ID+"/"+fakediscord.HookToken {
		t.Errorf("posted through %s, not #%s's webhook", post.Path, parent.Name)
	}

	// The plugin made no room of its own: alice is in the management room
	// and rooms the import made.
	joined, err := alice.JoinedRooms(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range joined.JoinedRooms {
		if r != mgmt && portalOf(ctx, t, alice, r) == "" {
			t.Errorf("alice is in %s, which the import did not make", r)
		}
	}
}

// portalOf is the portal a room's create event says an import made it
// for ("" if none).
func portalOf(ctx context.Context, t *testing.T, cli *mautrix.Client, room id.RoomID) string {
	t.Helper()
	var create map[string]any
	if err := cli.StateEvent(ctx, room, event.StateCreate, "", &create); err != nil {
		t.Fatal(err)
	}
	p, _ := create["org.tributary.portal"].(string)
	return p
}

// isImported checks that an event is the imported message rec: its
// author's ghost, its time, not an edit.
func isImported(ctx context.Context, t *testing.T, cli *mautrix.Client, room id.RoomID, eventID id.EventID, rec discordexport.Record) {
	t.Helper()
	evt, err := cli.GetEvent(ctx, room, eventID)
	if err != nil {
		t.Fatalf("the related event %s: %v", eventID, err)
	}
	_ = evt.Content.ParseRaw(evt.Type)
	if evt.Sender != ghost(rec.Author) || evt.Timestamp != rec.Timestamp {
		t.Fatalf("the related event is %s's at %d, want the imported message %s (%s's at %d)", evt.Sender, evt.Timestamp,
			rec.ID, ghost(rec.Author), rec.Timestamp)
	}
	if r := evt.Content.AsMessage().RelatesTo; r != nil && r.Type == event.RelReplace {
		t.Fatalf("the related event is an edit")
	}
}

// startServer runs the server with cfgPath (and dataDir, if not "", and
// more arguments);
// built with -race (GOFLAGS=-race builds the plugin so too), a race the
// plugin reports fails the test.
func startServer(t *testing.T, cfgPath, dataDir string, args ...string) *testserver.Server {
	t.Helper()
	opts := testserver.Options{DataDir: dataDir, Args: append([]string{"--config", cfgPath, "--enable-registration",
		"--disable-rate-limits"}, args...)}
	if raceBuild {
		// The plugin's race reports are debug lines of the server's log.
		opts.Env = []string{"TRIBUTARY_LOG_LEVEL=debug"}
	}
	s := testserver.Start(t, opts)
	t.Cleanup(func() {
		if strings.Contains(s.Logs(), "WARNING: DATA RACE") {
			t.Error("the plugin reported a data race (see the server's log)")
		}
	})
	return s
}

// pluginBinary builds the plugin for a test.
func pluginBinary(t *testing.T) string {
	t.Helper()
	binDir, err := os.MkdirTemp("", "e2ediscord-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(binDir) })
	bin, err := plugintest.BuildInto(binDir, pluginPackage)
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// writeConfig is a server configuration running the plugin against the
// fake.
func writeConfig(t *testing.T, bin, apiURL string) string {
	t.Helper()
	cfg := fmt.Sprintf(`app_services:
  retry_backoff: 200ms
  max_retry_backoff: 2s
plugins:
  - name: discord
    binary: %q
    ghost_prefix: discord_
    bot_localpart: discordbot
    config:
      log_level: debug
      network:
        api_url: %q
        media_url: https://media.example/download
`, bin, apiURL)

	p := filepath.Join(t.TempDir(), "tributary.yaml")
	if err := os.WriteFile(p, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// login makes alice's management room and logs the bot token in there.
func login(ctx context.Context, t *testing.T, alice *mautrix.Client, w *watcher) id.RoomID {
	t.Helper()
	return loginWith(ctx, t, alice, w, "bot", botToken, "Logged in as the bot testbot")
}

// loginWith makes alice's management room and logs in there with a flow
// and a token; the bot then says done. The token goes with the command:
// bridgev2 prompts for it before it is ready for the answer, which a fast
// client can beat.
func loginWith(ctx context.Context, t *testing.T, alice *mautrix.Client, w *watcher, flow, token, done string) id.RoomID {
	t.Helper()
	for {
		if _, err := alice.GetProfile(ctx, discordBot); err == nil {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("the plugin never registered its bot")
		}
		w.next(ctx)
	}
	created, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "trusted_private_chat", IsDirect: true,
		Invite: []id.UserID{discordBot}})
	if err != nil {
		t.Fatal(err)
	}
	mgmt := created.RoomID
	w.wait(ctx, mgmt, "the bot joining", func(evt *event.Event) bool {
		return evt.Type == event.StateMember && evt.GetStateKey() == string(discordBot) && evt.Content.AsMember().Membership == event.MembershipJoin
	})
	w.say(ctx, mgmt, "login "+flow+" "+token, done)
	return mgmt
}
