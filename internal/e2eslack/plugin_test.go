package e2eslack

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/internal/slackfake"
)

const general = "C0GENERAL"

// TestSlackPlugin is issue 17's "the plugin against a local fake of the
// Slack Web API + Socket Mode exchanges messages, threads, edits,
// reactions and files both ways; token revocation is visible to the user",
// through the real plugin binary under the real server, on SQLite and on
// PostgreSQL (the server's database and, in a schema of its own, the
// plugin's). Alice logs in with a user token (puppeting); Bob is only on
// Slack.
func TestSlackPlugin(t *testing.T) {
	databases(t, testSlackPlugin)
}

func testSlackPlugin(t *testing.T, dbArgs []string) {
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	fake := slackfake.New()
	t.Cleanup(fake.Close)
	logCallsOnFailure(t, fake)
	aliceToken := fake.AddUser("U0ALICE", "alice", "Alice Liddell")
	fake.AddUser("U0BOB", "bob", "Bob Dobbs")
	fake.AddChannel(slackfake.Channel{ID: general, Name: "general", Kind: "channel", Topic: "all things",
		Members: []string{slackfake.BotUserID, "U0ALICE", "U0BOB"}})

	bin := pluginBinary(t)
	s := startServer(t, writeConfig(t, bin, fake.APIURL()), "", dbArgs...)
	alice := s.Register(t, &mautrix.ReqRegister[any]{Username: "alice", Password: "correct horse battery"})
	w := newWatcher(t, alice)
	w.autoJoin = true
	mgmt := managementRoom(ctx, t, alice, w)
	login(ctx, t, alice, w, mgmt, "user", aliceToken)
	awaitSocket(ctx, t, fake)

	// Slack → Matrix: Bob's message makes the portal, with formatting.
	rootTS := fake.Say(general, "U0BOB", "hello *world* from <@U0ALICE>", "")
	first := w.findMessage(ctx, "hello *world* from @Alice Liddell")
	portal := first.RoomID
	if mc := first.Content.AsMessage(); first.Sender != ghost("U0BOB") ||
		!strings.Contains(mc.FormattedBody, "<strong>world</strong>") ||
		!strings.Contains(mc.FormattedBody, `href="https://matrix.to/#/@alice:localhost"`) {
		t.Fatalf("from Slack: %s %q", first.Sender, mc.FormattedBody)
	}
	var name event.RoomNameEventContent
	if err := alice.StateEvent(ctx, portal, event.StateRoomName, "", &name); err != nil || name.Name != "general" {
		t.Errorf("portal name %q (%v)", name.Name, err)
	}
	// Bob's ghost has his name and picture.
	prof, err := alice.GetProfile(ctx, ghost("U0BOB"))
	if err != nil || prof.DisplayName != "Bob Dobbs" || prof.AvatarURL.IsEmpty() {
		t.Errorf("Bob's ghost: %+v (%v)", prof, err)
	}

	// Matrix → Slack, with formatting: posted as Alice (her token).
	sent, err := alice.SendMessageEvent(ctx, portal, event.EventMessage, &event.MessageEventContent{
		MsgType: event.MsgText, Body: "hi bob", Format: event.FormatHTML, FormattedBody: "<strong>hi</strong> <em>bob</em> &amp; co"})
	if err != nil {
		t.Fatal(err)
	}
	post := awaitCall(ctx, t, fake, "chat.postMessage", func(c slackfake.Call) bool {
		return c.Method == "chat.postMessage" && c.Message != nil
	})
	if post.Token != aliceToken || post.Message.User != "U0ALICE" || post.Message.Text != "*hi* _bob_ &amp; co" {
		t.Fatalf("posted to Slack: token %s user %s text %q", post.Token, post.Message.User, post.Message.Text)
	}
	aliceTS := post.Message.TS

	// Threads: Bob replies in a thread on Slack; Alice replies in it on
	// Matrix.
	fake.Say(general, "U0BOB", "in the thread", rootTS)
	reply := w.waitMessage(ctx, portal, "in the thread")
	if rel := reply.Content.AsMessage().RelatesTo; rel == nil || rel.Type != event.RelThread || rel.EventID != first.ID {
		t.Fatalf("thread reply from Slack: relation %+v, want a thread on %s", rel, first.ID)
	}
	threadContent := &event.MessageEventContent{MsgType: event.MsgText, Body: "me too in the thread"}
	threadContent.GetRelatesTo().SetThread(first.ID, reply.ID)
	if _, err := alice.SendMessageEvent(ctx, portal, event.EventMessage, threadContent); err != nil {
		t.Fatal(err)
	}
	threadPost := awaitCall(ctx, t, fake, "a thread reply", func(c slackfake.Call) bool {
		return c.Method == "chat.postMessage" && c.Message != nil && c.Message.Text == "me too in the thread"
	})
	if threadPost.Message.ThreadTS != rootTS {
		t.Fatalf("thread reply to Slack has thread_ts %q, want %q", threadPost.Message.ThreadTS, rootTS)
	}

	// Edits: Bob edits on Slack; Alice edits on Matrix.
	fake.Edit(general, rootTS, "hello *everyone*")
	edit := w.wait(ctx, portal, "Bob's edit", func(evt *event.Event) bool {
		mc := evt.Content.AsMessage()
		return evt.Type == event.EventMessage && mc.RelatesTo != nil && mc.RelatesTo.Type == event.RelReplace &&
			mc.RelatesTo.EventID == first.ID
	})
	if nc := edit.Content.AsMessage().NewContent; nc == nil || nc.Body != "hello *everyone*" || edit.Sender != ghost("U0BOB") {
		t.Fatalf("edit from Slack: %s %+v", edit.Sender, nc)
	}
	editContent := &event.MessageEventContent{MsgType: event.MsgText, Body: "* hi bob, edited"}
	editContent.SetEdit(sent.EventID)
	editContent.NewContent = &event.MessageEventContent{MsgType: event.MsgText, Body: "hi bob, edited"}
	if _, err := alice.SendMessageEvent(ctx, portal, event.EventMessage, editContent); err != nil {
		t.Fatal(err)
	}
	upd := awaitCall(ctx, t, fake, "chat.update", func(c slackfake.Call) bool { return c.Method == "chat.update" })
	if upd.Args.Get("ts") != aliceTS || upd.Args.Get("text") != "hi bob, edited" {
		t.Fatalf("chat.update %v", upd.Args)
	}

	// Reactions: Bob reacts on Slack; Alice on Matrix.
	fake.React(general, aliceTS, "U0BOB", "+1", true)
	react := w.wait(ctx, portal, "Bob's reaction", func(evt *event.Event) bool { return evt.Type == event.EventReaction })
	if rc := react.Content.AsReaction(); react.Sender != ghost("U0BOB") || rc.RelatesTo.EventID != sent.EventID || strings.TrimSuffix(rc.RelatesTo.Key, "\uFE0F") != "👍" {
		t.Fatalf("reaction from Slack: %s %+v", react.Sender, rc.RelatesTo)
	}
	if _, err := alice.SendReaction(ctx, portal, first.ID, "❤️"); err != nil {
		t.Fatal(err)
	}
	add := awaitCall(ctx, t, fake, "reactions.add", func(c slackfake.Call) bool { return c.Method == "reactions.add" })
	if add.Args.Get("name") != "heart" || add.Args.Get("timestamp") != rootTS || add.Token != aliceToken {
		t.Fatalf("reactions.add %v", add.Args)
	}

	// Custom emoji: the workspace's :partyparrot: (Bob reacts with its
	// alias :party:) goes to Matrix as its image, as a reaction and in
	// text; Alice's reaction with that image goes back as :partyparrot:.
	parrot := []byte("GIF89a\x01\x00\x01\x00 a party parrot")
	fake.AddEmoji("partyparrot", parrot)
	fake.AddEmojiAlias("party", "partyparrot")
	fake.React(general, aliceTS, "U0BOB", "party", true)
	custom := w.wait(ctx, portal, "Bob's custom emoji reaction", func(evt *event.Event) bool {
		return evt.Type == event.EventReaction && strings.HasPrefix(evt.Content.AsReaction().RelatesTo.Key, "mxc://")
	})
	parrotMXC := custom.Content.AsReaction().RelatesTo.Key
	if sc := custom.Content.Raw["com.beeper.reaction.shortcode"]; sc != ":party:" || custom.Sender != ghost("U0BOB") ||
		custom.Content.AsReaction().RelatesTo.EventID != sent.EventID {
		t.Errorf("custom emoji reaction from Slack: %s %v", custom.Sender, custom.Content.Raw)
	}
	if got, err := alice.DownloadBytes(ctx, id.MustParseContentURI(parrotMXC)); err != nil || !bytes.Equal(got, parrot) {
		t.Errorf("the custom emoji's image: %q (%v)", got, err)
	}
	fake.Say(general, "U0BOB", "party :partyparrot: time", "")
	partyMsg := w.waitMessage(ctx, portal, "party :partyparrot: time")
	if fb := partyMsg.Content.AsMessage().FormattedBody; !strings.Contains(fb, `<img data-mx-emoticon src="`+parrotMXC+`"`) {
		t.Errorf("custom emoji in text: %q, want an inline image of %s", fb, parrotMXC)
	}
	if _, err := alice.SendMessageEvent(ctx, portal, event.EventReaction, map[string]any{
		"m.relates_to":                  map[string]any{"rel_type": "m.annotation", "event_id": first.ID, "key": parrotMXC},
		"com.beeper.reaction.shortcode": ":partyparrot:"}); err != nil {
		t.Fatal(err)
	}
	awaitCall(ctx, t, fake, "reactions.add of the custom emoji", func(c slackfake.Call) bool {
		return c.Method == "reactions.add" && c.Args.Get("name") == "partyparrot" && c.Args.Get("timestamp") == rootTS
	})

	// Files: Bob shares an image on Slack; Alice sends a file on Matrix.
	img := []byte("\x89PNG\r\n\x1a\nnot really a picture")
	fake.Upload(general, "U0BOB", "cat.png", "image/png", img, "", "")
	imgEvt := w.wait(ctx, portal, "Bob's image", func(evt *event.Event) bool {
		return evt.Type == event.EventMessage && evt.Content.AsMessage().MsgType == event.MsgImage
	})
	mc := imgEvt.Content.AsMessage()
	got, err := alice.DownloadBytes(ctx, mc.URL.ParseOrIgnore())
	if err != nil || !bytes.Equal(got, img) || mc.Body != "cat.png" || imgEvt.Sender != ghost("U0BOB") {
		t.Fatalf("image from Slack: %s %q, %d bytes (%v)", imgEvt.Sender, mc.Body, len(got), err)
	}
	notes := []byte("minutes of the meeting\n")
	up, err := alice.UploadBytesWithName(ctx, notes, "text/plain", "notes.txt")
	if err != nil {
		t.Fatal(err)
	}
	fileSent, err := alice.SendMessageEvent(ctx, portal, event.EventMessage, &event.MessageEventContent{
		MsgType: event.MsgFile, Body: "notes.txt", URL: up.ContentURI.CUString(), Info: &event.FileInfo{MimeType: "text/plain", Size: len(notes)}})
	if err != nil {
		t.Fatal(err)
	}
	complete := awaitCall(ctx, t, fake, "files.completeUploadExternal", func(c slackfake.Call) bool {
		return c.Method == "files.completeUploadExternal" && c.Message != nil
	})
	if f := complete.Message.Files; len(f) != 1 || !bytes.Equal(f[0].Data, notes) || f[0].Name != "notes.txt" || complete.Message.User != "U0ALICE" {
		t.Fatalf("file on Slack: %+v", complete.Message)
	}

	// Deletions: Bob deletes his thread reply; Alice redacts her file.
	fake.Delete(general, threadTSOf(t, fake, "in the thread"))
	w.wait(ctx, portal, "the redaction of Bob's reply", func(evt *event.Event) bool {
		return evt.Type == event.EventRedaction && evt.Redacts == reply.ID
	})
	if _, err := alice.RedactEvent(ctx, portal, fileSent.EventID); err != nil {
		t.Fatal(err)
	}
	awaitCall(ctx, t, fake, "files.delete", func(c slackfake.Call) bool { return c.Method == "files.delete" })

	// Read markers: Alice reads Bob's thread root on Matrix; Slack's read
	// marker of the channel moves there (conversations.mark, her token).
	// (Typing from Matrix has nothing to go to: Slack's Web API has no
	// typing call.)
	if err := alice.MarkRead(ctx, portal, first.ID); err != nil {
		t.Fatal(err)
	}
	mark := awaitCall(ctx, t, fake, "conversations.mark", func(c slackfake.Call) bool { return c.Method == "conversations.mark" })
	if mark.Args.Get("channel") != general || mark.Args.Get("ts") != rootTS || mark.Token != aliceToken {
		t.Fatalf("conversations.mark %v (token %s)", mark.Args, mark.Token)
	}

	// Nothing Alice did came back as a second message (Slack echoes it all).
	w.next(ctx)
	for _, body := range []string{"hi bob", "me too in the thread", "notes.txt"} {
		if n := w.count(portal, func(evt *event.Event) bool {
			return evt.Type == event.EventMessage && evt.Content.AsMessage().Body == body
		}); n != 1 {
			t.Errorf("%q is in the room %d times", body, n)
		}
	}
	if n := w.count(portal, func(evt *event.Event) bool {
		rel := evt.Content.AsMessage().RelatesTo
		return evt.Type == event.EventMessage && rel != nil && rel.Type == event.RelReplace && rel.EventID == sent.EventID
	}); n != 1 {
		t.Errorf("Alice's edit is in the room %d times", n)
	}

	// Slack drops the Socket Mode connection; the plugin opens another and
	// bridging goes on.
	opens := len(fake.Calls())
	fake.DropSockets()
	awaitCall(ctx, t, fake, "a new apps.connections.open", func(c slackfake.Call) bool {
		return c.Method == "apps.connections.open" && c.At.After(fake.Calls()[opens-1].At)
	})
	awaitSocket(ctx, t, fake)
	fake.Say(general, "U0BOB", "after the reconnect", "")
	w.waitMessage(ctx, portal, "after the reconnect")

	// Slack revokes Alice's token without telling the app; her next message
	// fails, and the bot tells her in her management room.
	fake.Revoke(aliceToken, "token_revoked", false)
	if _, err := alice.SendText(ctx, portal, "are you there?"); err != nil {
		t.Fatal(err)
	}
	notice := w.botSays(ctx, mgmt, "BAD_CREDENTIALS")
	if body := notice.Content.AsMessage().Body; !strings.Contains(body, "revoked") || !strings.Contains(body, "Log in again") {
		t.Errorf("the notice: %q", body)
	}
	for _, line := range strings.Split(s.Logs(), "\n") {
		if strings.Contains(line, `"logger":"plugin.tributary-slack"`) && strings.Contains(line, `"level":"ERROR"`) &&
			!strings.Contains(line, "token_revoked") && !strings.Contains(line, "are you there") {
			t.Errorf("the plugin logged an error: %s", line)
		}
	}
}

// threadTSOf finds the ts of a message of the fake's general channel.
func threadTSOf(t *testing.T, fake *slackfake.Server, text string) string {
	t.Helper()
	for _, m := range fake.Messages(general) {
		if m.Text == text {
			return m.TS
		}
	}
	t.Fatalf("no Slack message %q", text)
	return ""
}
