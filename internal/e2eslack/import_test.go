package e2eslack

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/bridges/slack/slackfmt"
	"github.com/tributary-hs/tributary/internal/slackexport"
	"github.com/tributary-hs/tributary/internal/slackfake"
	"github.com/tributary-hs/tributary/internal/testserver"
)

// TestSlackPluginContinuesImport is issue 17's "then the live plugin,
// started on the same data, bridges new messages into the same rooms (same
// portals), threads continuing the imported threads": `tributary import
// slack` fills a stopped server's data from a generated export; the server
// then runs the plugin, a Matrix user logs in with the workspace's bot
// token, and what Slack's people say next lands in the imported room, a
// thread reply in the imported thread. An edit of a Slack user's message,
// which Slack does not let the bot make, is refused visibly.
func TestSlackPluginContinuesImport(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	fake := slackfake.New()
	t.Cleanup(fake.Close)
	logCallsOnFailure(t, fake)

	export := filepath.Join(t.TempDir(), "export.zip")
	m, err := slackexport.WriteFile(export, slackexport.Options{Seed: 17, TeamID: slackfake.TeamID, Users: 5, Bots: 1,
		Channels: 2, Private: 1, DMs: 1, MPIMs: 1, Messages: 300, Record: true})
	if err != nil {
		t.Fatal(err)
	}
	// The same workspace on the fake Slack.
	for _, u := range m.Users {
		fake.AddUser(u.ID, u.Name, u.RealName)
	}
	for _, c := range m.Conversations {
		kind := map[string]string{"dm": "im"}[c.Kind]
		if kind == "" {
			kind = c.Kind
		}
		fake.AddChannel(slackfake.Channel{ID: c.ID, Name: c.Name, Kind: kind, Topic: c.Topic,
			Members: append([]string{slackfake.BotUserID}, c.Members...)})
	}
	// A public channel with a thread whose root and replies were imported.
	var conv *slackexport.Conversation
	var root slackexport.Record
	for _, r := range m.Records {
		if r.ThreadTS == "" || r.ThreadTS == r.TS || r.Subtype != "" {
			continue
		}
		for _, c := range m.Conversations {
			if c.ID == r.Conv && c.Kind == "channel" {
				conv = c
			}
		}
		if conv != nil {
			for _, rr := range m.Records {
				if rr.Conv == r.Conv && rr.TS == r.ThreadTS {
					root = rr
				}
			}
			break
		}
	}
	if conv == nil || root.TS == "" {
		t.Fatal("the generated export has no thread in a public channel")
	}

	bin := pluginBinary(t)
	cfg := writeConfig(t, bin, fake.APIURL())
	dataDir := t.TempDir()
	out, err := exec.CommandContext(ctx, testserver.Binary(t), "import", "slack", export, "--config", cfg,
		"--data-dir", dataDir, "--server-name", "localhost").CombinedOutput()
	if err != nil {
		t.Fatalf("tributary import slack: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "Imported ") {
		t.Fatalf("import output:\n%s", out)
	}

	s := startServer(t, cfg, dataDir)
	alice := s.Register(t, &mautrix.ReqRegister[any]{Username: "alice", Password: "correct horse battery"})
	w := newWatcher(t, alice)
	w.autoJoin = true
	mgmt := managementRoom(ctx, t, alice, w)
	login(ctx, t, alice, w, mgmt, "bot", slackfake.BotToken)
	awaitSocket(ctx, t, fake)

	speaker := conv.Members[0]
	fake.Say(conv.ID, speaker, "said live after the import", "")
	live := w.findMessage(ctx, "said live after the import")
	room := live.RoomID
	if live.Sender != ghost(speaker) {
		t.Errorf("live message from %s, want %s (the imported ghost)", live.Sender, ghost(speaker))
	}
	// The room is the one the import made for the channel.
	var create map[string]any
	if err := alice.StateEvent(ctx, room, event.StateCreate, "", &create); err != nil {
		t.Fatal(err)
	}
	if got := create["org.tributary.portal"]; got != "slack:"+slackfake.TeamID+"-"+conv.ID {
		t.Fatalf("the live message is in a room whose create event names portal %v, not the imported %s", got, conv.ID)
	}
	// With the imported history before it.
	rootEvt := findByTS(ctx, t, alice, room, live.ID, root)

	// A thread reply on Slack continues the imported thread.
	fake.Say(conv.ID, speaker, "a live reply in an imported thread", root.TS)
	reply := w.waitMessage(ctx, room, "a live reply in an imported thread")
	rel := reply.Content.AsMessage().RelatesTo
	if rel == nil || rel.Type != event.RelThread || rel.EventID != rootEvt {
		t.Fatalf("live thread reply: relation %+v, want a thread on the imported root %s", rel, rootEvt)
	}
	// A Matrix reply in the imported thread goes into the Slack thread.
	threadReply := &event.MessageEventContent{MsgType: event.MsgText, Body: "a Matrix reply in an imported thread"}
	threadReply.GetRelatesTo().SetThread(rootEvt, reply.ID)
	if _, err := alice.SendMessageEvent(ctx, room, event.EventMessage, threadReply); err != nil {
		t.Fatal(err)
	}
	posted := awaitCall(ctx, t, fake, "the Matrix thread reply", func(c slackfake.Call) bool {
		return c.Method == "chat.postMessage" && c.Message != nil && strings.Contains(c.Message.Text, "a Matrix reply in an imported thread")
	})
	if posted.Message.ThreadTS != root.TS {
		t.Errorf("the Matrix reply went to Slack with thread_ts %q, want the imported root's %q", posted.Message.ThreadTS, root.TS)
	}
	// And Matrix → Slack goes to the same channel (relayed by the bot).
	if _, err := alice.SendText(ctx, room, "hello from Matrix"); err != nil {
		t.Fatal(err)
	}
	awaitCall(ctx, t, fake, "chat.postMessage", func(c slackfake.Call) bool {
		return c.Method == "chat.postMessage" && c.Message != nil && c.Message.Channel == conv.ID &&
			strings.Contains(c.Message.Text, "hello from Matrix")
	})
	// Alice edits the Slack user's message: the bot may not (Slack's
	// cant_update_message), and she is told.
	edit := &event.MessageEventContent{MsgType: event.MsgText, Body: "* not mine to edit"}
	edit.SetEdit(live.ID)
	edit.NewContent = &event.MessageEventContent{MsgType: event.MsgText, Body: "not mine to edit"}
	refused, err := alice.SendMessageEvent(ctx, room, event.EventMessage, edit)
	if err != nil {
		t.Fatal(err)
	}
	awaitCall(ctx, t, fake, "chat.update", func(c slackfake.Call) bool { return c.Method == "chat.update" })
	w.wait(ctx, room, "a notice that the edit was not bridged", func(evt *event.Event) bool {
		mc := evt.Content.AsMessage()
		return evt.Sender == slackBot && mc.MsgType == event.MsgNotice && mc.RelatesTo != nil &&
			mc.RelatesTo.GetReplyTo() == refused.EventID && strings.Contains(mc.Body, "cant_update_message")
	})
	// An admin removes the app: Slack sends tokens_revoked for the bot
	// user, and the bot tells alice in her management room.
	fake.Revoke(slackfake.BotToken, "token_revoked", true)
	notice := w.botSays(ctx, mgmt, "BAD_CREDENTIALS")
	if body := notice.Content.AsMessage().Body; !strings.Contains(body, "tokens were revoked") {
		t.Errorf("the notice: %q", body)
	}
	// The plugin made no room of its own for the channel: alice is in the
	// management room, the imported space and the imported channel only.
	joined, err := alice.JoinedRooms(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range joined.JoinedRooms {
		if r == mgmt || r == room {
			continue
		}
		var c map[string]any
		if err := alice.StateEvent(ctx, r, event.StateCreate, "", &c); err != nil || c["org.tributary.portal"] == nil {
			t.Errorf("alice is in %s, which the import did not make (create %v)", r, c)
		}
	}
}

// findByTS finds the imported message rec of its sender's ghost.
func findByTS(ctx context.Context, t *testing.T, cli *mautrix.Client, room id.RoomID, from id.EventID, rec slackexport.Record) id.EventID {
	t.Helper()
	return findBy(ctx, t, cli, room, from, rec, ghost(rec.User))
}

// TestSlackPluginActsOnImportedMessages: after `tributary import slack`
// (into the running server, Alice mapped to her Slack user), what either
// side does to an imported message reaches the other: Alice's edit,
// reaction and redaction on Matrix become chat.update, reactions.add and
// chat.delete of the message's ts on Slack (and her read receipt
// conversations.mark), and Bob's edit, reaction and
// deletion on Slack land on the imported Matrix event. bridgev2 knows no
// imported message: the plugin finds them through the SDK (FindMessage).
// On SQLite and PostgreSQL.
func TestSlackPluginActsOnImportedMessages(t *testing.T) {
	databases(t, testSlackPluginActsOnImportedMessages)
}

func testSlackPluginActsOnImportedMessages(t *testing.T, dbArgs []string) {
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	fake := slackfake.New()
	t.Cleanup(fake.Close)
	logCallsOnFailure(t, fake)
	export := filepath.Join(t.TempDir(), "export.zip")
	m, err := slackexport.WriteFile(export, slackexport.Options{Seed: 18, TeamID: slackfake.TeamID, Users: 4,
		Channels: 2, Messages: 200, Record: true})
	if err != nil {
		t.Fatal(err)
	}
	tokens := map[string]string{}
	for _, u := range m.Users {
		tokens[u.ID] = fake.AddUser(u.ID, u.Name, u.RealName)
	}
	convs := map[string]*slackexport.Conversation{}
	for _, c := range m.Conversations {
		convs[c.ID] = c
		fake.AddChannel(slackfake.Channel{ID: c.ID, Name: c.Name, Kind: c.Kind, Topic: c.Topic,
			Members: append([]string{slackfake.BotUserID}, c.Members...)})
	}
	// Slack has the history the export holds.
	for _, r := range m.Records {
		fake.AddHistory(r.Conv, r.TS, r.User, r.Text)
		for _, re := range r.Reactions {
			for _, u := range re.Users {
				fake.AddHistoryReaction(r.Conv, r.TS, u, re.Name)
			}
		}
	}
	// Two plain messages of one public channel by two people: Alice's
	// (the first user's) and Bob's.
	var mine, bobs *slackexport.Record
	for i := range m.Records {
		r := &m.Records[i]
		if c := convs[r.Conv]; c == nil || c.Kind != "channel" || r.Subtype != "" || r.User == "" ||
			(r.ThreadTS != "" && r.ThreadTS != r.TS) || len(r.Files) > 0 || strings.TrimSpace(r.Text) == "" || r.Edited {
			continue
		}
		if mine == nil && r.User == m.Users[0].ID {
			mine = r
		} else if bobs == nil && r.User != m.Users[0].ID && (mine == nil || r.Conv == mine.Conv) {
			bobs = r
		}
		if mine != nil && bobs != nil && mine.Conv == bobs.Conv {
			break
		}
	}
	if mine == nil || bobs == nil || mine.Conv != bobs.Conv {
		t.Fatal("the generated export has no two plain messages of two people in one channel")
	}
	conv := convs[mine.Conv]
	// Imported reactions in that channel: one of Alice's, and one of
	// someone else's.
	// (Not on the two messages above, which are deleted.)
	alicesReaction := importedReaction(m, conv.ID, func(u string) bool { return u == m.Users[0].ID }, mine.TS, bobs.TS)
	othersReaction := importedReaction(m, conv.ID, func(u string) bool { return u != m.Users[0].ID }, mine.TS, bobs.TS)

	bin := pluginBinary(t)
	cfg := writeConfig(t, bin, fake.APIURL())
	s := startServer(t, cfg, "", dbArgs...)
	alice := s.Register(t, &mautrix.ReqRegister[any]{Username: "alice", Password: "correct horse battery"})
	userMap := filepath.Join(t.TempDir(), "users.txt")
	if err := os.WriteFile(userMap, []byte(m.Users[0].ID+" @alice:localhost\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.CommandContext(ctx, testserver.Binary(t), append([]string{"import", "slack", export, "--config", cfg,
		"--user-map", userMap, "--data-dir", s.DataDir, "--server-name", "localhost"}, dbArgs...)...).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "importing through it") {
		t.Fatalf("tributary import slack: %v\n%s", err, out)
	}

	w := newWatcher(t, alice)
	w.autoJoin = true
	mgmt := managementRoom(ctx, t, alice, w)
	login(ctx, t, alice, w, mgmt, "user", tokens[m.Users[0].ID])
	awaitSocket(ctx, t, fake)
	// A live message makes the plugin take the imported room.
	fake.Say(conv.ID, bobs.User, "live in the imported channel", "")
	live := w.findMessage(ctx, "live in the imported channel")
	room := live.RoomID
	myEvt := findBy(ctx, t, alice, room, live.ID, *mine, "@alice:localhost")
	bobsEvt := findBy(ctx, t, alice, room, live.ID, *bobs, ghost(bobs.User))

	// Matrix → Slack.
	edit := &event.MessageEventContent{MsgType: event.MsgText, Body: "* my imported words, edited"}
	edit.SetEdit(myEvt)
	edit.NewContent = &event.MessageEventContent{MsgType: event.MsgText, Body: "my imported words, edited"}
	if _, err := alice.SendMessageEvent(ctx, room, event.EventMessage, edit); err != nil {
		t.Fatal(err)
	}
	upd := awaitCall(ctx, t, fake, "chat.update", func(c slackfake.Call) bool { return c.Method == "chat.update" })
	if upd.Args.Get("ts") != mine.TS || upd.Args.Get("channel") != conv.ID || upd.Args.Get("text") != "my imported words, edited" {
		t.Fatalf("chat.update %v, want ts %s", upd.Args, mine.TS)
	}
	myReaction, err := alice.SendReaction(ctx, room, bobsEvt, "👍")
	if err != nil {
		t.Fatal(err)
	}
	add := awaitCall(ctx, t, fake, "reactions.add", func(c slackfake.Call) bool { return c.Method == "reactions.add" })
	if add.Args.Get("timestamp") != bobs.TS || add.Args.Get("channel") != conv.ID || add.Args.Get("name") != "+1" {
		t.Fatalf("reactions.add %v, want timestamp %s", add.Args, bobs.TS)
	}
	// Alice reads up to Bob's imported message: Slack's read marker moves
	// to its ts (the receipt names the real event, not its alias).
	if err := alice.MarkRead(ctx, room, bobsEvt); err != nil {
		t.Fatal(err)
	}
	awaitCall(ctx, t, fake, "conversations.mark of the imported message", func(c slackfake.Call) bool {
		return c.Method == "conversations.mark" && c.Args.Get("ts") == bobs.TS && c.Args.Get("channel") == conv.ID
	})
	// Alice takes her reaction back, and one the import wrote for her.
	if _, err := alice.RedactEvent(ctx, room, myReaction.EventID); err != nil {
		t.Fatal(err)
	}
	awaitCall(ctx, t, fake, "reactions.remove of the live reaction", func(c slackfake.Call) bool {
		return c.Method == "reactions.remove" && c.Args.Get("timestamp") == bobs.TS && c.Args.Get("name") == "+1"
	})
	aliceReacted := findBy(ctx, t, alice, room, live.ID, alicesReaction.rec, alicesReaction.author(m))
	key, _ := slackfmt.ReactionKey(alicesReaction.name)
	importedOfAlice := testserver.FindReaction(ctx, t, alice, room, live.ID, aliceReacted, "@alice:localhost", key)
	if _, err := alice.RedactEvent(ctx, room, importedOfAlice); err != nil {
		t.Fatal(err)
	}
	awaitCall(ctx, t, fake, "reactions.remove of the imported reaction", func(c slackfake.Call) bool {
		return c.Method == "reactions.remove" && c.Args.Get("timestamp") == alicesReaction.rec.TS &&
			c.Args.Get("name") == alicesReaction.name && c.Args.Get("channel") == conv.ID
	})
	if msg := fake.Message(conv.ID, alicesReaction.rec.TS); slices.Contains(msg.Reactions[alicesReaction.name], m.Users[0].ID) {
		t.Errorf("Alice's imported reaction is still on Slack: %v", msg.Reactions)
	}
	if _, err := alice.RedactEvent(ctx, room, myEvt); err != nil {
		t.Fatal(err)
	}
	del := awaitCall(ctx, t, fake, "chat.delete", func(c slackfake.Call) bool { return c.Method == "chat.delete" })
	if del.Args.Get("ts") != mine.TS || del.Args.Get("channel") != conv.ID {
		t.Fatalf("chat.delete %v, want ts %s", del.Args, mine.TS)
	}

	// Slack → Matrix: Bob edits his imported message, Carol reacts to it,
	// then Bob deletes it.
	fake.Edit(conv.ID, bobs.TS, "bob's imported words, edited on Slack")
	slackEdit := w.wait(ctx, room, "Bob's edit of his imported message", func(evt *event.Event) bool {
		rel := evt.Content.AsMessage().RelatesTo
		return evt.Type == event.EventMessage && rel != nil && rel.Type == event.RelReplace && rel.EventID == bobsEvt
	})
	if nc := slackEdit.Content.AsMessage().NewContent; nc == nil || nc.Body != "bob's imported words, edited on Slack" || slackEdit.Sender != ghost(bobs.User) {
		t.Fatalf("the edit from Slack: %s %+v", slackEdit.Sender, nc)
	}
	carol := m.Users[1].ID
	if carol == bobs.User {
		carol = m.Users[2].ID
	}
	fake.React(conv.ID, bobs.TS, carol, "tada", true)
	carolsReaction := w.wait(ctx, room, "Carol's reaction to the imported message", func(evt *event.Event) bool {
		return evt.Type == event.EventReaction && evt.Sender == ghost(carol) && evt.Content.AsReaction().RelatesTo.EventID == bobsEvt
	})
	// Carol takes her reaction back on Slack; someone removes one the
	// import wrote.
	fake.React(conv.ID, bobs.TS, carol, "tada", false)
	w.wait(ctx, room, "the redaction of Carol's reaction", func(evt *event.Event) bool {
		return evt.Type == event.EventRedaction && evt.Redacts == carolsReaction.ID
	})
	othersReacted := findBy(ctx, t, alice, room, live.ID, othersReaction.rec, othersReaction.author(m))
	key, _ = slackfmt.ReactionKey(othersReaction.name)
	importedOfOther := testserver.FindReaction(ctx, t, alice, room, live.ID, othersReacted, ghost(othersReaction.user), key)
	fake.React(conv.ID, othersReaction.rec.TS, othersReaction.user, othersReaction.name, false)
	w.wait(ctx, room, "the redaction of the imported reaction removed on Slack", func(evt *event.Event) bool {
		return evt.Type == event.EventRedaction && evt.Redacts == importedOfOther && evt.Sender == ghost(othersReaction.user)
	})

	fake.Delete(conv.ID, bobs.TS)
	w.wait(ctx, room, "the redaction of Bob's imported message", func(evt *event.Event) bool {
		return evt.Type == event.EventRedaction && evt.Redacts == bobsEvt
	})
}

// reacted is one imported reaction: user's name on the message rec.
type reacted struct {
	rec        slackexport.Record
	user, name string
}

// author is who the imported message is from on Matrix: Alice for the
// first user's (the user map), a ghost for the others'.
func (r reacted) author(m *slackexport.Manifest) id.UserID {
	if r.rec.User == m.Users[0].ID {
		return "@alice:localhost"
	}
	return ghost(r.rec.User)
}

// importedReaction is a reaction the export has in a channel, by a user
// who, on a plain message of a person (not one of those at skip), with a
// Unicode emoji.
func importedReaction(m *slackexport.Manifest, conv string, who func(string) bool, skip ...string) reacted {
	for _, r := range m.Records {
		if r.Conv != conv || r.Subtype != "" || r.User == "" || strings.TrimSpace(r.Text) == "" || len(r.Files) > 0 ||
			r.ThreadTS != "" || r.Edited || slices.Contains(skip, r.TS) {
			continue
		}
		for _, re := range r.Reactions {
			if _, ok := slackfmt.ReactionKey(re.Name); !ok {
				continue // a custom emoji
			}
			for _, u := range re.Users {
				if who(u) {
					return reacted{rec: r, user: u, name: re.Name}
				}
			}
		}
	}
	panic("the generated export has no such reaction in " + conv)
}

// findBy pages back from an event for the imported message rec sent as
// sender (its time) and returns its event ID.
func findBy(ctx context.Context, t *testing.T, cli *mautrix.Client, room id.RoomID, from id.EventID, rec slackexport.Record, sender id.UserID) id.EventID {
	t.Helper()
	sec, frac, _ := strings.Cut(rec.TS, ".")
	s, _ := strconv.ParseInt(sec, 10, 64)
	us, _ := strconv.ParseInt((frac + "000000")[:6], 10, 64)
	want := s*1000 + us/1000
	evt := testserver.FindEarlier(ctx, t, cli, room, from, func(evt *event.Event) bool {
		rel := evt.Content.AsMessage().RelatesTo
		return evt.Type == event.EventMessage && evt.Timestamp == want && evt.Sender == sender &&
			(rel == nil || rel.Type != event.RelReplace)
	})
	if evt == nil {
		t.Fatalf("the imported message %s (%s) is not in the room's history", rec.TS, sender)
	}
	return evt.ID
}
