package e2eslack

import (
	"context"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"

	"github.com/tributary-hs/tributary/internal/slackfake"
)

// TestSlackBotRelay is issue 17's "bot-token mode (app installed in the
// workspace; relay for Matrix users)": with the default config, Carol,
// who has no Slack login, talks in a bot login's portal, and the bot
// posts her text, thread reply and edit under her Matrix name and avatar
// (username, icon_url; the avatar at the configured media_url), and her
// file with her name in its comment. Alice's own messages through her bot
// login carry her name too. Slack refuses the bot's deletion of Bob's
// message (cant_delete_message): Carol, a room admin, is told. Without the
// chat:write.customize scope, which Slack needs to honour username and
// icon_url (it ignores them otherwise), the bot writes "*Carol Singer*:
// text", edits included.
func TestSlackBotRelay(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	fake := slackfake.New()
	t.Cleanup(fake.Close)
	logCallsOnFailure(t, fake)
	fake.AddUser("U0BOB", "bob", "Bob Dobbs")
	fake.AddChannel(slackfake.Channel{ID: general, Name: "general", Kind: "channel",
		Members: []string{slackfake.BotUserID, "U0BOB"}})

	const mediaURL = "https://matrix.example/_matrix/media/v3/download"
	s := startServer(t, writeConfigWith(t, pluginBinary(t), fake.APIURL(), "        media_url: "+mediaURL+"/\n"), "")
	alice := s.Register(t, &mautrix.ReqRegister[any]{Username: "alice", Password: "correct horse battery"})
	w := newWatcher(t, alice)
	w.autoJoin = true
	mgmt := managementRoom(ctx, t, alice, w)
	login(ctx, t, alice, w, mgmt, "bot", slackfake.BotToken)
	awaitSocket(ctx, t, fake)

	// Carol has no Slack login; she is a server admin, to make herself a
	// room admin (able to redact Bob's messages).
	if out, err := s.Run(t, "", "user", "add", "carol", "--password", "carol password", "--admin"); err != nil {
		t.Fatalf("user add carol: %v\n%s", err, out)
	}
	carol := s.Client(t)
	if _, err := carol.Login(ctx, &mautrix.ReqLogin{Type: mautrix.AuthTypePassword,
		Identifier: mautrix.UserIdentifier{Type: mautrix.IdentifierTypeUser, User: "carol"}, Password: "carol password",
		StoreCredentials: true}); err != nil {
		t.Fatal(err)
	}
	if err := carol.SetDisplayName(ctx, "Carol Singer"); err != nil {
		t.Fatal(err)
	}
	pic, err := carol.UploadBytesWithName(ctx, []byte("\x89PNG\r\n\x1a\ncarol"), "image/png", "carol.png")
	if err != nil {
		t.Fatal(err)
	}
	if err := carol.SetAvatarURL(ctx, pic.ContentURI); err != nil {
		t.Fatal(err)
	}
	wantIcon := mediaURL + "/" + pic.ContentURI.Homeserver + "/" + pic.ContentURI.FileID

	rootTS := fake.Say(general, "U0BOB", "hello from bob", "")
	first := w.findMessage(ctx, "hello from bob")
	portal := first.RoomID
	if st, body := s.Do(t, "POST", "/_synapse/admin/v1/rooms/"+url.PathEscape(string(portal))+"/make_room_admin",
		carol.AccessToken, map[string]any{"user_id": carol.UserID}); st != 200 {
		t.Fatalf("make_room_admin: %d %v", st, body)
	}

	// Carol's message goes through the bot under her name and avatar.
	mine, err := carol.SendText(ctx, portal, "hi from carol")
	if err != nil {
		t.Fatal(err)
	}
	post := awaitCall(ctx, t, fake, "Carol's message", func(c slackfake.Call) bool {
		return c.Method == "chat.postMessage" && c.Message != nil && strings.Contains(c.Message.Text, "hi from carol")
	})
	if m := post.Message; post.Token != slackfake.BotToken || m.Text != "hi from carol" || m.Username != "Carol Singer" || m.IconURL != wantIcon {
		t.Fatalf("Carol's message on Slack: token %s text %q username %q icon %q (want %q)", post.Token, m.Text, m.Username, m.IconURL, wantIcon)
	}
	carolTS := post.Message.TS

	// A thread reply, under her name.
	threadContent := &event.MessageEventContent{MsgType: event.MsgText, Body: "carol in the thread"}
	threadContent.GetRelatesTo().SetThread(first.ID, first.ID)
	if _, err := carol.SendMessageEvent(ctx, portal, event.EventMessage, threadContent); err != nil {
		t.Fatal(err)
	}
	threadPost := awaitCall(ctx, t, fake, "Carol's thread reply", func(c slackfake.Call) bool {
		return c.Method == "chat.postMessage" && c.Message != nil && c.Message.Text == "carol in the thread"
	})
	if m := threadPost.Message; m.ThreadTS != rootTS || m.Username != "Carol Singer" || m.IconURL != wantIcon {
		t.Fatalf("Carol's thread reply: thread_ts %q (want %q), username %q, icon %q", m.ThreadTS, rootTS, m.Username, m.IconURL)
	}

	// Her file: files.completeUploadExternal takes no username, so its
	// comment names her.
	up, err := carol.UploadBytesWithName(ctx, []byte("carol's notes\n"), "text/plain", "carol.txt")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := carol.SendMessageEvent(ctx, portal, event.EventMessage, &event.MessageEventContent{
		MsgType: event.MsgFile, Body: "carol.txt", URL: up.ContentURI.CUString(), Info: &event.FileInfo{MimeType: "text/plain", Size: 14}}); err != nil {
		t.Fatal(err)
	}
	complete := awaitCall(ctx, t, fake, "Carol's file", func(c slackfake.Call) bool {
		return c.Method == "files.completeUploadExternal" && c.Message != nil
	})
	if m := complete.Message; len(m.Files) != 1 || m.Files[0].Name != "carol.txt" || m.Text != "*Carol Singer*" {
		t.Fatalf("Carol's file on Slack: %q with %d files", m.Text, len(m.Files))
	}

	// Her edit updates the bot's post, which keeps her name.
	edit := &event.MessageEventContent{MsgType: event.MsgText, Body: "* hi from carol, edited"}
	edit.SetEdit(mine.EventID)
	edit.NewContent = &event.MessageEventContent{MsgType: event.MsgText, Body: "hi from carol, edited"}
	if _, err := carol.SendMessageEvent(ctx, portal, event.EventMessage, edit); err != nil {
		t.Fatal(err)
	}
	upd := awaitCall(ctx, t, fake, "chat.update", func(c slackfake.Call) bool { return c.Method == "chat.update" && c.Message != nil })
	if m := upd.Message; upd.Args.Get("ts") != carolTS || m.Text != "hi from carol, edited" || m.Username != "Carol Singer" {
		t.Fatalf("Carol's edit: ts %s text %q username %q", upd.Args.Get("ts"), m.Text, m.Username)
	}

	// Alice's own message (her login is the bot) carries her name too.
	if _, err := alice.SendText(ctx, portal, "alice here"); err != nil {
		t.Fatal(err)
	}
	alicePost := awaitCall(ctx, t, fake, "Alice's message", func(c slackfake.Call) bool {
		return c.Method == "chat.postMessage" && c.Message != nil && strings.Contains(c.Message.Text, "alice here")
	})
	if m := alicePost.Message; m.Text != "alice here" || m.Username != "alice" || m.IconURL != "" {
		t.Fatalf("Alice's message on Slack: text %q username %q icon %q", m.Text, m.Username, m.IconURL)
	}

	// The app loses chat:write.customize (Slack says so in the scopes of
	// every answer from now on).
	fake.DenyCustomize()

	// Carol redacts Bob's message: the bot may not delete it on Slack, and
	// she is told.
	redaction, err := carol.RedactEvent(ctx, portal, first.ID)
	if err != nil {
		t.Fatal(err)
	}
	awaitCall(ctx, t, fake, "chat.delete", func(c slackfake.Call) bool {
		return c.Method == "chat.delete" && c.Args.Get("ts") == rootTS
	})
	w.wait(ctx, portal, "a notice that the redaction was not bridged", func(evt *event.Event) bool {
		mc := evt.Content.AsMessage()
		return evt.Sender == slackBot && mc.MsgType == event.MsgNotice && mc.RelatesTo != nil &&
			mc.RelatesTo.GetReplyTo() == redaction.EventID && strings.Contains(mc.Body, "cant_delete_message")
	})
	if !hasMessage(fake, rootTS) {
		t.Fatal("Bob's message was deleted on Slack")
	}

	// Without the scope her name goes in the text, and stays there when
	// she edits.
	plain, err := carol.SendText(ctx, portal, "no scope")
	if err != nil {
		t.Fatal(err)
	}
	plainPost := awaitCall(ctx, t, fake, "Carol's message without the scope", func(c slackfake.Call) bool {
		return c.Method == "chat.postMessage" && c.Message != nil && strings.Contains(c.Message.Text, "no scope")
	})
	if m := plainPost.Message; m.Text != "*Carol Singer*: no scope" || m.Username != "" {
		t.Fatalf("Carol's message without the scope: text %q username %q", m.Text, m.Username)
	}
	edit = &event.MessageEventContent{MsgType: event.MsgText, Body: "* no scope, edited"}
	edit.SetEdit(plain.EventID)
	edit.NewContent = &event.MessageEventContent{MsgType: event.MsgText, Body: "no scope, edited"}
	if _, err := carol.SendMessageEvent(ctx, portal, event.EventMessage, edit); err != nil {
		t.Fatal(err)
	}
	upd = awaitCall(ctx, t, fake, "the edit without the scope", func(c slackfake.Call) bool {
		return c.Method == "chat.update" && c.Args.Get("ts") == plainPost.Message.TS
	})
	if got := upd.Args.Get("text"); got != "*Carol Singer*: no scope, edited" {
		t.Fatalf("Carol's edit without the scope: %q", got)
	}

	// Carol redacts her own message: the bot's post, which it may delete.
	if _, err := carol.RedactEvent(ctx, portal, mine.EventID); err != nil {
		t.Fatal(err)
	}
	awaitCall(ctx, t, fake, "the deletion of Carol's message", func(c slackfake.Call) bool {
		return c.Method == "chat.delete" && c.Args.Get("ts") == carolTS && c.Message != nil && c.Message.Deleted
	})

	// Nothing the bot posted came back as a message of its own.
	w.next(ctx)
	for _, body := range []string{"hi from carol", "carol in the thread", "carol.txt", "alice here", "no scope"} {
		if n := w.count(portal, func(evt *event.Event) bool {
			return evt.Type == event.EventMessage && evt.Content.AsMessage().Body == body
		}); n != 1 {
			t.Errorf("%q is in the room %d times", body, n)
		}
	}
}

// hasMessage reports whether the fake's general channel has a message.
func hasMessage(fake *slackfake.Server, ts string) bool {
	for _, m := range fake.Messages(general) {
		if m.TS == ts {
			return true
		}
	}
	return false
}

// TestSlackBotRelayLater: a portal made while relay was off (network.relay:
// false) gets the bot as its relay with its next Slack message once relay
// is on, so Carol, without a Slack login, talks there after the restart.
func TestSlackBotRelayLater(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	fake := slackfake.New()
	t.Cleanup(fake.Close)
	logCallsOnFailure(t, fake)
	fake.AddUser("U0BOB", "bob", "Bob Dobbs")
	fake.AddChannel(slackfake.Channel{ID: general, Name: "general", Kind: "channel",
		Members: []string{slackfake.BotUserID, "U0BOB"}})
	bin := pluginBinary(t)
	cfgPath := writeConfigWith(t, bin, fake.APIURL(), "        relay: false\n")
	s := startServer(t, cfgPath, "")
	alice := s.Register(t, &mautrix.ReqRegister[any]{Username: "alice", Password: "correct horse battery"})
	w := newWatcher(t, alice)
	w.autoJoin = true
	mgmt := managementRoom(ctx, t, alice, w)
	login(ctx, t, alice, w, mgmt, "bot", slackfake.BotToken)
	awaitSocket(ctx, t, fake)
	fake.Say(general, "U0BOB", "before the restart", "")
	portal := w.findMessage(ctx, "before the restart").RoomID

	// Relay on (the default), and the server restarted.
	if err := os.WriteFile(cfgPath, []byte(strings.Replace(mustRead(t, cfgPath), "        relay: false\n", "", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	opens := len(fake.Calls())
	s = s.Restart(false)
	awaitCall(ctx, t, fake, "a new apps.connections.open", func(c slackfake.Call) bool {
		return c.Method == "apps.connections.open" && c.At.After(fake.Calls()[opens-1].At)
	})
	awaitSocket(ctx, t, fake)
	alice.HomeserverURL, _ = url.Parse(s.URL)
	fake.Say(general, "U0BOB", "after the restart", "")
	w.waitMessage(ctx, portal, "after the restart")

	if out, err := s.Run(t, "", "user", "add", "carol", "--password", "carol password", "--admin"); err != nil {
		t.Fatalf("user add carol: %v\n%s", err, out)
	}
	carol := s.Client(t)
	if _, err := carol.Login(ctx, &mautrix.ReqLogin{Type: mautrix.AuthTypePassword,
		Identifier: mautrix.UserIdentifier{Type: mautrix.IdentifierTypeUser, User: "carol"}, Password: "carol password",
		StoreCredentials: true}); err != nil {
		t.Fatal(err)
	}
	if st, body := s.Do(t, "POST", "/_synapse/admin/v1/rooms/"+url.PathEscape(string(portal))+"/make_room_admin",
		carol.AccessToken, map[string]any{"user_id": carol.UserID}); st != 200 {
		t.Fatalf("make_room_admin: %d %v", st, body)
	}
	if _, err := carol.SendText(ctx, portal, "carol, relayed"); err != nil {
		t.Fatal(err)
	}
	post := awaitCall(ctx, t, fake, "Carol's message", func(c slackfake.Call) bool {
		return c.Method == "chat.postMessage" && c.Message != nil && strings.Contains(c.Message.Text, "carol, relayed")
	})
	if post.Message.Username != "carol" {
		t.Fatalf("Carol's message under %q", post.Message.Username)
	}
}

func mustRead(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
