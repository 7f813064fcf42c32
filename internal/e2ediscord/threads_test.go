package e2ediscord

import (
	"context"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
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
)

// TestDiscordPluginNoticeThreadsAndEdits: threads that start at no message
// (Discord posts a ThreadCreated notice in the parent channel, which
// `tributary import discord` roots the thread at) continue on Matrix, and
// the bot-mode bridge edits only what it may. After an import into the
// running server, with a bot login:
//   - a live message in an imported notice-started thread lands as an
//     m.thread on the imported notice; Alice's reaction to an imported
//     message of that thread, and her message in it, go to the thread's
//     channel;
//   - her edit of that message goes through the webhook with the thread
//     (Discord knows a webhook's thread message by its thread only), and
//     so does her redaction of it; her reply there links to the message
//     in the thread;
//   - her edit of her imported message is refused as Discord would
//     refuse it (the bot may not edit another's message): a notice tells
//     her, and nothing is sent; her redaction of it, which the bot
//     without Manage Messages may not make on Discord, is told her too;
//   - a Matrix thread on a message Discord has no thread of starts one;
//   - a thread started live at a notice continues at the bridged notice.
//
// On SQLite and PostgreSQL.
func TestDiscordPluginNoticeThreadsAndEdits(t *testing.T) {
	bin := pluginBinary(t)
	t.Run("sqlite", func(t *testing.T) { noticeThreads(t, bin) })
	t.Run("postgres", func(t *testing.T) { noticeThreads(t, bin, "--database-url", pgtest.URL(t)) })
}

func noticeThreads(t *testing.T, bin string, dbArgs ...string) {
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	fake := fakediscord.New(t, botToken)
	export := filepath.Join(t.TempDir(), "export")
	// Of two threads, the generator starts the last at a notice.
	m, err := discordexport.WriteDir(export, discordexport.Options{Seed: 18, Messages: 300, Channels: 2, Threads: 2,
		DMs: -1, Record: true})
	if err != nil {
		t.Fatal(err)
	}
	var thread, parent *discordexport.Channel
	for _, c := range m.Channels {
		if c.ParentID != "" && c.StarterIsNotice {
			thread = c
		}
	}
	if thread == nil {
		t.Fatal("the export has no thread started at a notice")
	}
	for _, c := range m.Channels {
		if c.ID == thread.ParentID {
			parent = c
		}
	}
	var notice, threadMsg, others discordexport.Record
	for _, r := range m.Records {
		switch {
		case r.ID == thread.StarterID:
			notice = r
		case r.Channel == thread.ID && r.Type == "Default" && !isBot(m, r.Author) && threadMsg.ID == "":
			threadMsg = r
		case r.Channel == parent.ID && r.Type == "Default" && strings.TrimSpace(r.Content) != "" && r.Edited == 0 &&
			r.ReplyTo == "" && !isBot(m, r.Author) && others.ID == "":
			others = r
		}
	}
	if notice.ID == "" || threadMsg.ID == "" || others.ID == "" {
		t.Fatalf("no notice (%q), message of the thread (%q) or of the channel (%q)", notice.ID, threadMsg.ID, others.ID)
	}
	var channels, threads []any
	for _, c := range m.Channels {
		if c.ParentID == "" {
			channels = append(channels, map[string]any{"id": c.ID, "type": 0, "guild_id": m.GuildID, "name": c.Name, "topic": c.Topic})
		} else {
			threads = append(threads, map[string]any{"id": c.ID, "type": 11, "guild_id": m.GuildID, "name": c.Name, "parent_id": c.ParentID})
		}
	}
	fake.SetGuild(m.GuildID, m.GuildName, channels, threads)
	haveHistory(fake, m)

	// The bot may not delete others' messages.
	fake.DenyManageMessages()

	cfgPath := writeConfig(t, bin, fake.URL())
	s := startServer(t, cfgPath, "", dbArgs...)
	alice := s.Register(t, &mautrix.ReqRegister[any]{Username: "alice", Password: "correct horse battery"})
	// Alice is the Discord user of the message others.
	userMap := filepath.Join(t.TempDir(), "users.txt")
	if err := os.WriteFile(userMap, []byte(others.Author+" @alice:localhost\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.CommandContext(ctx, testserver.Binary(t), append([]string{"import", "discord", export, "--no-download",
		"--config", cfgPath, "--user-map", userMap, "--data-dir", s.DataDir, "--server-name", "localhost"}, dbArgs...)...).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "importing through it") {
		t.Fatalf("tributary import discord: %v\n%s", err, out)
	}
	w := &watcher{t: t, cli: alice, seen: map[id.RoomID][]*event.Event{}, typing: map[id.RoomID][]id.UserID{}}
	login(ctx, t, alice, w)
	liveID := fake.Message("live in the imported channel", map[string]any{"channel_id": parent.ID, "guild_id": m.GuildID})
	space := w.inSpace(ctx, m.GuildName)
	room := w.importedRoom(ctx, alice, space, parent.ID)
	live := w.message(ctx, room, "live in the imported channel")

	// A live message in the imported thread: an m.thread on the imported
	// notice.
	fake.Message("live in the imported notice thread", map[string]any{"channel_id": thread.ID, "guild_id": m.GuildID})
	inThread := w.message(ctx, room, "live in the imported notice thread")
	rel := inThread.Content.AsMessage().RelatesTo
	if rel == nil || rel.Type != event.RelThread {
		t.Fatalf("the thread message relates %+v, want a thread", rel)
	}
	noticeEvt := findImported(ctx, t, alice, room, live.ID, notice, ghost(notice.Author))
	if rel.EventID != noticeEvt {
		t.Fatalf("the thread message is rooted at %s, want the imported notice %s", rel.EventID, noticeEvt)
	}

	// Alice reacts to an imported message of the thread: in the thread.
	threadMsgEvt := findImported(ctx, t, alice, room, live.ID, threadMsg, ghost(threadMsg.Author))
	if _, err := alice.SendReaction(ctx, room, threadMsgEvt, "👍"); err != nil {
		t.Fatal(err)
	}
	want := "/channels/" + thread.ID + "/messages/" + threadMsg.ID + "/reactions/👍/@me"
	if c := fake.Await("the reaction", func(c fakediscord.Call) bool { return c.Method == "PUT" }); c.Path != want {
		t.Fatalf("the reaction: %v, want %s", c, want)
	}
	// She says something in the thread, and edits it: the webhook posts
	// and edits in the thread.
	content := &event.MessageEventContent{MsgType: event.MsgText, Body: "from Matrix in the thread"}
	content.RelatesTo = (&event.RelatesTo{}).SetThread(noticeEvt, inThread.ID)
	sent, err := alice.SendMessageEvent(ctx, room, event.EventMessage, content)
	if err != nil {
		t.Fatal(err)
	}
	post := fake.Await("the post in the thread", func(c fakediscord.Call) bool {
		return c.Method == "POST" && c.JSON["content"] == "from Matrix in the thread"
	})
	if q, _ := url.ParseQuery(post.Query); q.Get("thread_id") != thread.ID {
		t.Fatalf("the post in the thread: %v, want thread_id=%s", post, thread.ID)
	}
	edit := &event.MessageEventContent{MsgType: event.MsgText, Body: "* edited in the thread"}
	edit.SetEdit(sent.EventID)
	edit.NewContent = &event.MessageEventContent{MsgType: event.MsgText, Body: "edited in the thread"}
	if _, err := alice.SendMessageEvent(ctx, room, event.EventMessage, edit); err != nil {
		t.Fatal(err)
	}
	patch := fake.Await("the edit in the thread", func(c fakediscord.Call) bool { return c.Method == "PATCH" })
	if q, _ := url.ParseQuery(patch.Query); patch.Path != "/webhooks/h"+parent.ID+"/"+fakediscord.HookToken+"/messages/"+post.JSON["id"].(string) ||
		q.Get("thread_id") != thread.ID {
		t.Fatalf("the edit in the thread: %v, want the webhook's, thread_id=%s", patch, thread.ID)
	}

	// Her redaction of it deletes it through the webhook, in the thread.
	if _, err := alice.RedactEvent(ctx, room, sent.EventID); err != nil {
		t.Fatal(err)
	}
	del := fake.Await("the deletion in the thread", func(c fakediscord.Call) bool { return c.Method == "DELETE" })
	if q, _ := url.ParseQuery(del.Query); del.Path != "/webhooks/h"+parent.ID+"/"+fakediscord.HookToken+"/messages/"+post.JSON["id"].(string) ||
		q.Get("thread_id") != thread.ID {
		t.Fatalf("the deletion in the thread: %v, want the webhook's, thread_id=%s", del, thread.ID)
	}

	// A reply in the thread to an imported message of it links to the
	// message in the thread.
	content = &event.MessageEventContent{MsgType: event.MsgText, Body: "replying in the thread"}
	content.RelatesTo = (&event.RelatesTo{}).SetThread(noticeEvt, threadMsgEvt)
	content.RelatesTo.IsFallingBack = false
	if _, err := alice.SendMessageEvent(ctx, room, event.EventMessage, content); err != nil {
		t.Fatal(err)
	}
	rp := fake.Await("the reply in the thread", func(c fakediscord.Call) bool {
		s, _ := c.JSON["content"].(string)
		return c.Method == "POST" && strings.HasSuffix(s, "replying in the thread")
	})
	if link := "https://discord.com/channels/" + m.GuildID + "/" + thread.ID + "/" + threadMsg.ID; !strings.Contains(rp.JSON["content"].(string), link) {
		t.Fatalf("the reply in the thread: %v, want a link to %s", rp, link)
	}

	// Alice edits her imported message: only her Discord account could,
	// not the bot, and she is told.
	othersEvt := findImported(ctx, t, alice, room, live.ID, others, alice.UserID)
	edit = &event.MessageEventContent{MsgType: event.MsgText, Body: "* not mine to edit"}
	edit.SetEdit(othersEvt)
	edit.NewContent = &event.MessageEventContent{MsgType: event.MsgText, Body: "not mine to edit"}
	refused, err := alice.SendMessageEvent(ctx, room, event.EventMessage, edit)
	if err != nil {
		t.Fatal(err)
	}
	w.wait(ctx, room, "a notice that the edit was not bridged", func(evt *event.Event) bool {
		mc := evt.Content.AsMessage()
		return evt.Sender == discordBot && mc.MsgType == event.MsgNotice && mc.RelatesTo != nil &&
			mc.RelatesTo.GetReplyTo() == refused.EventID && strings.Contains(mc.Body, "only a message's author")
	})
	// She redacts it: the bot, without Manage Messages, may not delete it
	// on Discord, and she is told.
	redaction, err := alice.RedactEvent(ctx, room, othersEvt)
	if err != nil {
		t.Fatal(err)
	}
	if del := fake.Await("the deletion", func(c fakediscord.Call) bool { return c.Method == "DELETE" }); del.Path != "/channels/"+parent.ID+"/messages/"+others.ID {
		t.Fatalf("the deletion: %v", del)
	}
	w.wait(ctx, room, "a notice that the redaction was not bridged", func(evt *event.Event) bool {
		mc := evt.Content.AsMessage()
		return evt.Sender == discordBot && mc.MsgType == event.MsgNotice && mc.RelatesTo != nil &&
			mc.RelatesTo.GetReplyTo() == redaction.EventID && strings.Contains(mc.Body, "Manage Messages")
	})

	// A Matrix thread on a message Discord has no thread of starts one
	// there.
	content = &event.MessageEventContent{MsgType: event.MsgText, Body: "a new thread from Matrix"}
	content.RelatesTo = (&event.RelatesTo{}).SetThread(live.ID, live.ID)
	if _, err := alice.SendMessageEvent(ctx, room, event.EventMessage, content); err != nil {
		t.Fatal(err)
	}
	fake.Await("the thread's start", func(c fakediscord.Call) bool {
		return c.Method == "POST" && c.Path == "/channels/"+parent.ID+"/messages/"+liveID+"/threads"
	})
	post = fake.Await("the post in the new thread", func(c fakediscord.Call) bool {
		return c.Method == "POST" && c.JSON["content"] == "a new thread from Matrix"
	})
	if q, _ := url.ParseQuery(post.Query); q.Get("thread_id") != liveID {
		t.Fatalf("the post in the new thread: %v, want thread_id=%s", post, liveID)
	}

	// A thread started live at a notice: its messages are rooted at the
	// bridged notice.
	const liveThread = "310000000000000001"
	fake.Dispatch("THREAD_CREATE", map[string]any{"id": liveThread, "type": 11, "guild_id": m.GuildID, "parent_id": parent.ID,
		"name": "a live thread", "newly_created": true})
	fake.Message("a live thread", map[string]any{"channel_id": parent.ID, "guild_id": m.GuildID, "type": 18,
		"message_reference": map[string]any{"channel_id": liveThread, "guild_id": m.GuildID}})
	liveNotice := w.message(ctx, room, "started a thread: a live thread")
	// (Discord's pointer in a thread at the message it started from, had
	// it started from one, shows nothing.)
	fake.Message("", map[string]any{"channel_id": liveThread, "guild_id": m.GuildID, "type": 21,
		"message_reference": map[string]any{"channel_id": parent.ID, "message_id": liveID, "guild_id": m.GuildID}})
	fake.Message("in the live thread", map[string]any{"channel_id": liveThread, "guild_id": m.GuildID})
	inLive := w.message(ctx, room, "in the live thread")
	for _, evt := range w.seen[room] {
		if mc := evt.Content.AsMessage(); evt.Type == event.EventMessage && mc.MsgType != "" && mc.Body == "" { // not a redacted one
			t.Errorf("an empty message was bridged: %s", evt.Content.VeryRaw)
		}
	}
	if rel := inLive.Content.AsMessage().RelatesTo; rel == nil || rel.Type != event.RelThread || rel.EventID != liveNotice.ID {
		t.Fatalf("the live thread's message relates %+v, want a thread on the notice %s", rel, liveNotice.ID)
	}
	// Nothing was edited that should not have been.
	for {
		select {
		case c := <-fake.Calls():
			if c.Method == "PATCH" {
				t.Errorf("the bridge tried to edit: %v", c)
			}
			continue
		default:
		}
		break
	}
}

// haveHistory makes the fake Discord have the messages of an export (a
// ThreadCreated notice naming its thread), as Discord has what was
// exported.
func haveHistory(fake *fakediscord.Fake, m *discordexport.Manifest) {
	notices := map[string]string{}
	for _, c := range m.Channels {
		if c.StarterIsNotice {
			notices[c.StarterID] = c.ID
		}
	}
	for _, r := range m.Records {
		msg := map[string]any{"id": r.ID, "channel_id": r.Channel, "guild_id": m.GuildID, "content": r.Content, "type": 0,
			"author": map[string]any{"id": r.Author, "username": "u" + r.Author}}
		if thread := notices[r.ID]; thread != "" {
			msg["type"], msg["message_reference"] = 18, map[string]any{"channel_id": thread, "guild_id": m.GuildID}
		}
		fake.Have(msg)
	}
}

// TestDiscordPluginContinuesForumPost: a forum post is a thread of a
// forum channel that starts at its own first message (which has the
// thread's ID and is in the thread, not in the forum); DiscordChatExporter
// exports it as a channel of its own. After `tributary import discord` of
// such a post, a live comment on Discord lands as an m.thread on the
// imported post in the forum's room, and Alice's reactions to the post
// and to a comment of it go to the post's thread.
func TestDiscordPluginContinuesForumPost(t *testing.T) {
	bin := pluginBinary(t)
	t.Run("sqlite", func(t *testing.T) { forumPost(t, bin) })
	t.Run("postgres", func(t *testing.T) { forumPost(t, bin, "--database-url", pgtest.URL(t)) })
}

func forumPost(t *testing.T, bin string, dbArgs ...string) {
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	const (
		guild   = "1000000000000000001"
		forum   = "1000000000000000002"
		post    = "1100000000000000001" // the thread, and its first message
		comment = "1100000000000000002"
		ann     = "1200000000000000001"
		ben     = "1200000000000000002"
	)
	fake := fakediscord.New(t, botToken)
	export := filepath.Join(t.TempDir(), "export")
	if err := os.MkdirAll(export, 0o700); err != nil {
		t.Fatal(err)
	}
	at := time.Date(2024, 3, 1, 10, 0, 0, 0, time.UTC)
	msg := func(id, author, name, text string, at time.Time) string {
		return `{"id":"` + id + `","type":"Default","timestamp":"` + at.Format("2006-01-02T15:04:05.000+00:00") +
			`","content":"` + text + `","author":{"id":"` + author + `","name":"` + name + `"}}`
	}
	file := `{"guild":{"id":"` + guild + `","name":"Forum Guild"},"channel":{"id":"` + post + `","type":"GuildPublicThread",` +
		`"categoryId":"` + forum + `","category":"ideas","name":"a post","topic":null},"messages":[` +
		msg(post, ann, "ann", "the post", at) + "," + msg(comment, ben, "ben", "a comment", at.Add(time.Minute)) + `],"messageCount":2}`
	if err := os.WriteFile(filepath.Join(export, "Forum Guild - ideas - a post ["+post+"].json"), []byte(file), 0o600); err != nil {
		t.Fatal(err)
	}
	fake.SetGuild(guild, "Forum Guild", []any{map[string]any{"id": forum, "type": 15, "guild_id": guild, "name": "ideas"}},
		[]any{map[string]any{"id": post, "type": 11, "guild_id": guild, "name": "a post", "parent_id": forum}})
	fake.Have(map[string]any{"id": post, "channel_id": post, "type": 0, "author": map[string]any{"id": ann}})
	fake.Have(map[string]any{"id": comment, "channel_id": post, "type": 0, "author": map[string]any{"id": ben}})

	cfgPath := writeConfig(t, bin, fake.URL())
	s := startServer(t, cfgPath, "", dbArgs...)
	alice := s.Register(t, &mautrix.ReqRegister[any]{Username: "alice", Password: "correct horse battery"})
	out, err := exec.CommandContext(ctx, testserver.Binary(t), append([]string{"import", "discord", export, "--no-download",
		"--config", cfgPath, "--data-dir", s.DataDir, "--server-name", "localhost"}, dbArgs...)...).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "importing through it") {
		t.Fatalf("tributary import discord: %v\n%s", err, out)
	}
	w := &watcher{t: t, cli: alice, seen: map[id.RoomID][]*event.Event{}, typing: map[id.RoomID][]id.UserID{}}
	login(ctx, t, alice, w)

	fake.Message("a live comment", map[string]any{"channel_id": post, "guild_id": guild})
	space := w.inSpace(ctx, "Forum Guild")
	room := w.importedRoom(ctx, alice, space, forum)
	live := w.message(ctx, room, "a live comment")
	postEvt := findImported(ctx, t, alice, room, live.ID, discordexport.Record{ID: post, Timestamp: at.UnixMilli()}, ghost(ann))
	if rel := live.Content.AsMessage().RelatesTo; rel == nil || rel.Type != event.RelThread || rel.EventID != postEvt {
		t.Fatalf("the live comment relates %+v, want a thread on the imported post %s", rel, postEvt)
	}
	commentEvt := findImported(ctx, t, alice, room, live.ID,
		discordexport.Record{ID: comment, Timestamp: at.Add(time.Minute).UnixMilli()}, ghost(ben))
	for _, target := range []struct {
		evt id.EventID
		msg string
	}{{postEvt, post}, {commentEvt, comment}} {
		if _, err := alice.SendReaction(ctx, room, target.evt, "👍"); err != nil {
			t.Fatal(err)
		}
		want := "/channels/" + post + "/messages/" + target.msg + "/reactions/👍/@me"
		if c := fake.Await("the reaction", func(c fakediscord.Call) bool { return c.Method == "PUT" }); c.Path != want {
			t.Fatalf("the reaction: %v, want %s", c, want)
		}
	}
}
