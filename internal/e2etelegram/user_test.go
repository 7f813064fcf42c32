package e2etelegram

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-telegram/bot/models"
	"github.com/gotd/td/tg"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/bridges/telegram/tgfake"
	"github.com/tributary-hs/tributary/internal/testserver"
)

// startWithUserMode starts tributary with the tributary-telegram plugin,
// its user mode talking MTProto to the fake f.
func startWithUserMode(t *testing.T, bin string, f *mtFake, apiURL string) *testserver.Server {
	t.Helper()
	key := strings.ReplaceAll(strings.TrimSpace(f.publicKeyPEM()), "\n", "\n          ")
	// The server logs at debug, so that the plugin's debug lines reach
	// the log a failed wait shows.
	cfg := fmt.Sprintf(`log:
  level: debug
app_services:
  retry_backoff: 200ms
  max_retry_backoff: 2s
plugins:
  - name: telegram
    binary: %q
    ghost_prefix: tg_
    bot_localpart: telegrambot
    config:
      log_level: debug
      matrix:
        message_status_events: true
      network:
        api_url: %q
        max_retry_wait: 10s
        api_id: 1
        api_hash: test-hash
        dc_address: %q
        dc_id: 2
        public_key: |
          %s
`, bin, apiURL, f.address(), key)
	cfgPath := filepath.Join(t.TempDir(), "tributary.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return testserver.Start(t, testserver.Options{Args: []string{"--config", cfgPath,
		"--enable-registration", "--disable-rate-limits"}})
}

// TestTelegramUserMode is issue 19's MTProto side through the plugin
// binary: the real tributary runs tributary-telegram, whose user mode
// talks MTProto (gotd) over loopback to a fake Telegram (gotd's tgtest
// server). alice logs her account in with phone and code in the bridge
// bot's room; a message in a supergroup makes its portal, and the
// supergroup's history (messages.getHistory) is backfilled through batch
// send in order, with the original senders and timestamps; alice's Matrix
// message is sent over MTProto; and a plugin killed and restarted carries
// on with the session kept in the login, without logging in again, and
// asks for what it missed meanwhile.
func TestTelegramUserMode(t *testing.T) {
	bin := pluginBinary(t)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	me := &tg.User{ID: 4711, Self: true, AccessHash: 1, FirstName: "Alice", Username: "alice_tg", Phone: "15550001"}
	dave := &tg.User{ID: 501, AccessHash: 2, FirstName: "Dave", LastName: "Jones", Username: "dave",
		Photo: &tg.UserProfilePhoto{PhotoID: 7777, DCID: 2}}
	erin := &tg.User{ID: 502, AccessHash: 3, FirstName: "Erin"}
	channel := &tg.Channel{ID: 1234, AccessHash: 4, Title: "Telegram Group", Megagroup: true, Photo: &tg.ChatPhotoEmpty{}}
	f := startMTFake(t, me, channel, dave, erin)
	history := []*tg.Message{
		f.addHistory(dave.ID, "history one"),
		f.addHistory(erin.ID, "history two"),
		f.addHistory(me.ID, "history three, mine"),
		f.addHistory(dave.ID, "history four"),
	}
	bot := tgfake.Start(botToken, models.User{ID: 4242, IsBot: true, FirstName: "Relay", Username: "relaybot"})
	t.Cleanup(bot.Close)
	s := startWithUserMode(t, bin, f, bot.URL())
	f.logs = s.Logs

	alice := s.Register(t, &mautrix.ReqRegister[any]{Username: "alice", Password: "correct horse battery"})
	w := newWatcher(t, alice, s.Logs)
	for {
		if _, err := alice.GetProfile(ctx, tgBot); err == nil {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("the plugin never registered its bot; server log:\n%s", s.Logs())
		}
		w.next(ctx)
	}
	created, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "trusted_private_chat", IsDirect: true,
		Invite: []id.UserID{tgBot}})
	if err != nil {
		t.Fatal(err)
	}
	mgmt := created.RoomID
	command := func(cmd, want string) {
		t.Helper()
		sent, err := alice.SendText(ctx, mgmt, cmd)
		if err != nil {
			t.Fatal(err)
		}
		w.wait(ctx, mgmt, "the bot saying "+want, func(evt *event.Event) bool {
			if evt.Type != event.EventMessage || evt.Sender != tgBot || !strings.Contains(evt.Content.AsMessage().Body, want) {
				return false
			}
			after := false
			for _, e := range w.seen[mgmt] {
				if e.ID == sent.EventID {
					after = true
				}
				if e == evt {
					return after
				}
			}
			return false
		})
	}
	w.wait(ctx, mgmt, "the bot's welcome", func(evt *event.Event) bool {
		return evt.Type == event.EventMessage && evt.Sender == tgBot
	})
	// Each step's prompt ends in "Please enter your …": the next input
	// waits for it, as a user does (the plugin SDK then hands the answer
	// to bridgev2 once the step is listening for it: commandQueue).
	command("login phone", "Please enter your Phone number")
	command("+15550001", "Please enter your Code")
	command("11111", "Please enter your Code")
	command("12345", "Logged in as @alice_tg")

	// The user client connects with the login's session.
	f.waitFor(ctx, "the user client's connection", func() bool { return f.sessions > 0 })

	// A message in the supergroup makes the portal; its history comes
	// first.
	live := f.post(ctx, dave.ID, "live message")
	portal, _ := w.roomNamed(ctx, "Telegram Group")
	if _, err := alice.JoinRoomByID(ctx, portal); err != nil {
		t.Fatal(err)
	}
	w.waitMessage(ctx, portal, "live message")
	msgs, err := alice.Messages(ctx, portal, "", "", mautrix.DirectionBackward, nil, 100)
	if err != nil {
		t.Fatal(err)
	}
	var got []*event.Event
	for i := len(msgs.Chunk) - 1; i >= 0; i-- {
		if evt := msgs.Chunk[i]; evt.Type == event.EventMessage {
			_ = evt.Content.ParseRaw(evt.Type)
			got = append(got, evt)
		}
	}
	want := append(history, live)
	senders := map[int64]id.UserID{dave.ID: ghostOf(dave.ID), erin.ID: ghostOf(erin.ID), me.ID: "@alice:localhost"}
	if len(got) != len(want) {
		for _, evt := range got {
			t.Logf("in the room: %s %q", evt.Sender, evt.Content.AsMessage().Body)
		}
		t.Fatalf("%d messages in the portal, want %d", len(got), len(want))
	}
	for i, m := range want {
		evt := got[i]
		from := m.FromID.(*tg.PeerUser).UserID
		if evt.Content.AsMessage().Body != m.Message || evt.Timestamp != int64(m.Date)*1000 {
			t.Errorf("message %d: %q at %d, want %q at %d", i, evt.Content.AsMessage().Body, evt.Timestamp,
				m.Message, int64(m.Date)*1000)
		}
		if evt.Sender != senders[from] && (from != me.ID || evt.Sender != ghostOf(me.ID)) {
			t.Errorf("message %d (%q) from %s, want %s", i, m.Message, evt.Sender, senders[from])
		}
	}
	if p, err := alice.GetProfile(ctx, ghostOf(dave.ID)); err != nil || p.DisplayName != "Dave Jones (Telegram)" {
		t.Errorf("dave's ghost: %+v, %v", p, err)
	} else {
		checkAvatar(ctx, t, alice, p.AvatarURL, pngData) // upload.getFile of his profile photo
	}

	// A photo from Telegram (downloaded over upload.getFile), and one
	// from Matrix (uploaded in parts, then messages.sendMedia).
	photo := f.photoMessage(dave.ID, "a photo")
	f.push(ctx, &tg.UpdateNewChannelMessage{Message: photo, Pts: f.pts(photo.ID), PtsCount: 1})
	img := w.wait(ctx, portal, "the photo", func(evt *event.Event) bool {
		return evt.Type == event.EventMessage && evt.Content.AsMessage().MsgType == event.MsgImage
	})
	if c := img.Content.AsMessage(); c.Body != "a photo" || c.Info == nil || c.Info.MimeType != "image/jpeg" {
		t.Errorf("photo from Telegram: %+v", c)
	} else if got, err := alice.DownloadBytes(ctx, c.URL.ParseOrIgnore()); err != nil || !bytes.Equal(got, pngData) {
		t.Errorf("photo from Telegram: %d bytes, %v", len(got), err)
	}
	up, err := alice.UploadBytes(ctx, pngData, "image/png")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := alice.SendMessageEvent(ctx, portal, event.EventMessage, &event.MessageEventContent{MsgType: event.MsgImage,
		Body: "dot.png", URL: up.ContentURI.CUString(), Info: &event.FileInfo{MimeType: "image/png", Size: len(pngData)}}); err != nil {
		t.Fatal(err)
	}
	f.waitFor(ctx, "messages.sendMedia with the photo", func() bool {
		for _, m := range f.media {
			if _, ok := m.req.Media.(*tg.InputMediaUploadedPhoto); ok && bytes.Equal(m.data, pngData) {
				return true
			}
		}
		return false
	})

	// A private message makes a DM portal; alice's reaction to it goes
	// to Telegram (so the message is in the bridge's database).
	f.push(ctx, &tg.UpdateNewMessage{Message: &tg.Message{ID: 1000, PeerID: &tg.PeerUser{UserID: dave.ID},
		FromID: &tg.PeerUser{UserID: dave.ID}, Message: "a private word", Date: 1_700_001_000}, Pts: 1, PtsCount: 1})
	dm := w.newRoom(ctx, "the private chat's portal", mgmt, portal)
	if _, err := alice.JoinRoomByID(ctx, dm); err != nil {
		t.Fatal(err)
	}
	private := w.waitMessage(ctx, dm, "a private word")
	if private.Sender != ghostOf(dave.ID) {
		t.Errorf("private message from %s", private.Sender)
	}
	if _, err := alice.SendReaction(ctx, dm, private.ID, "👍"); err != nil {
		t.Fatal(err)
	}
	f.waitFor(ctx, "messages.sendReaction", func() bool {
		for _, r := range f.reacted {
			p, ok := r.Peer.(*tg.InputPeerUser)
			if ok && p.UserID == dave.ID && p.AccessHash == dave.AccessHash && r.MsgID == 1000 && len(r.Reaction) == 1 {
				return r.Reaction[0].(*tg.ReactionEmoji).Emoticon == "👍"
			}
		}
		return false
	})

	// An edit and a reaction from Telegram.
	liveEvt := w.waitMessage(ctx, portal, "live message")
	f.edit(ctx, live.ID, "live message, edited")
	w.wait(ctx, portal, "the edit", func(evt *event.Event) bool {
		c := evt.Content.AsMessage()
		return evt.Type == event.EventMessage && c.RelatesTo.GetReplaceID() == liveEvt.ID &&
			c.NewContent != nil && c.NewContent.Body == "live message, edited"
	})
	f.push(ctx, &tg.UpdateMessageReactions{Peer: &tg.PeerChannel{ChannelID: channel.ID}, MsgID: live.ID,
		Reactions: tg.MessageReactions{
			Results: []tg.ReactionCount{{Reaction: &tg.ReactionEmoji{Emoticon: "🔥"}, Count: 1}},
			RecentReactions: []tg.MessagePeerReaction{{PeerID: &tg.PeerUser{UserID: erin.ID}, Date: 1_700_000_500,
				Reaction: &tg.ReactionEmoji{Emoticon: "🔥"}}}}})
	w.wait(ctx, portal, "erin's reaction", func(evt *event.Event) bool {
		if evt.Type != event.EventReaction {
			return false
		}
		_ = evt.Content.ParseRaw(evt.Type)
		r := evt.Content.AsReaction()
		return evt.Sender == ghostOf(erin.ID) && r.RelatesTo.EventID == liveEvt.ID && r.RelatesTo.Key == "🔥"
	})

	// Matrix → Telegram over MTProto. Telegram answers FLOOD_WAIT twice:
	// the message waits, the room and the login's state say so, and it
	// is sent once.
	f.mu.Lock()
	f.floods = 2
	f.mu.Unlock()
	hello, err := alice.SendText(ctx, portal, "hello from matrix")
	if err != nil {
		t.Fatal(err)
	}
	f.waitFor(ctx, "messages.sendMessage", func() bool {
		for _, r := range f.sent {
			if r.Message == "hello from matrix" {
				p, ok := r.Peer.(*tg.InputPeerChannel)
				return ok && p.ChannelID == channel.ID && p.AccessHash == channel.AccessHash
			}
		}
		return false
	})

	w.wait(ctx, portal, "the FLOOD_WAIT notice", func(evt *event.Event) bool {
		return evt.Type == event.EventMessage && evt.Sender == tgBot &&
			strings.Contains(evt.Content.AsMessage().Body, "limiting how fast this account may send")
	})
	for {
		logs := s.Logs()
		limitedAt := strings.Index(logs, `"remote_id":"user4711","error":"tg-rate-limited"`)
		if limitedAt >= 0 && strings.Contains(logs[limitedAt:], `"state":"CONNECTED","user":"@alice:localhost","remote_id":"user4711"`) {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("no tg-rate-limited bridge state followed by CONNECTED (found the first: %v)", limitedAt >= 0)
		}
		w.next(ctx)
	}

	// Once bridged (and saved: the success status comes after), the
	// message is not handed to the restarted plugin again.
	w.wait(ctx, portal, "the message's success status", func(evt *event.Event) bool {
		return evt.Type.Type == "com.beeper.message_send_status" &&
			strings.Contains(string(evt.Content.VeryRaw), string(hello.EventID)) &&
			strings.Contains(string(evt.Content.VeryRaw), `"SUCCESS"`)
	})

	// Kill the plugin: the restarted one connects with the stored session
	// (no login) and bridges what comes.
	pid := pluginPID(s, bin)
	if pid == 0 {
		t.Fatal("no plugin process under the server")
	}
	f.mu.Lock()
	before := f.sessions
	f.mu.Unlock()
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	// What is said while the plugin is down comes with the difference
	// the restarted one asks for (from the update state in the login).
	f.addHistory(erin.ID, "said while the bridge was down")
	f.waitFor(ctx, "a new connection after the restart", func() bool { return f.sessions > before })
	w.waitMessage(ctx, portal, "said while the bridge was down")
	f.post(ctx, erin.ID, "after the restart")
	w.waitMessage(ctx, portal, "after the restart")
	// Its deletion, told to the restarted plugin: MTProto names no chat
	// for it, the bridge finds the message by its ID in its database.
	f.push(ctx, &tg.UpdateDeleteMessages{Messages: []int{1000}, Pts: 2, PtsCount: 1})
	w.wait(ctx, dm, "the deletion", func(evt *event.Event) bool {
		return evt.Type == event.EventRedaction && evt.Redacts == private.ID
	})

	// A bot logged in too, in the same supergroup: what it sees lands in
	// the same room (a group's portal is shared by bot and user logins).
	command("login bot", "Please enter your Bot token")
	command(botToken, "Logged in as the bot @relaybot")
	bot.AddChat(models.Chat{ID: -1000000000000 - channel.ID, Type: models.ChatTypeSupergroup, Title: "Telegram Group"})
	bot.SetNextMessageID(-1000000000000-channel.ID, 500)
	bot.Send(models.Message{Chat: models.Chat{ID: -1000000000000 - channel.ID},
		From: &models.User{ID: erin.ID, FirstName: "Erin"}, Text: "seen by the bot"})
	w.waitMessage(ctx, portal, "seen by the bot")

	counts := map[string]int{}
	for _, evt := range w.seen[portal] {
		if evt.Type == event.EventMessage && evt.Sender != tgBot {
			counts[evt.Content.AsMessage().Body]++
		}
	}
	for body, n := range counts {
		if n > 1 {
			t.Errorf("%q is in the room %d times", body, n)
		}
	}
	f.mu.Lock()
	helloSent := 0
	for _, r := range f.sent {
		if r.Message == "hello from matrix" {
			helloSent++
		}
	}
	f.mu.Unlock()
	if helloSent != 1 {
		t.Errorf("the message was sent %d times", helloSent)
	}
	if strings.Count(s.Logs(), "Logged in as @alice_tg") > 1 {
		t.Error("the restarted plugin logged in again")
	}
	for _, line := range strings.Split(s.Logs(), "\n") {
		if strings.Contains(line, `"logger":"plugin.tributary-telegram"`) && strings.Contains(line, `"level":"ERROR"`) {
			t.Errorf("the plugin logged an error: %s", line)
		}
	}
}

func ghostOf(userID int64) id.UserID { return id.UserID(fmt.Sprintf("@tg_%d:localhost", userID)) }
