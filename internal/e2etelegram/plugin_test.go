package e2etelegram

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-telegram/bot/models"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/bridges/telegram/tgfake"
	"github.com/tributary-hs/tributary/internal/testserver"
	"github.com/tributary-hs/tributary/plugins/plugintest"
)

const (
	pluginPackage = "github.com/tributary-hs/tributary/bridges/telegram/cmd/tributary-telegram"
	tgBot         = id.UserID("@telegrambot:localhost")
	botToken      = "4242:test-token"
	groupID       = int64(-1001234)
)

var (
	dave = models.User{ID: 501, FirstName: "Dave", LastName: "Jones", Username: "dave"}
	erin = models.User{ID: 502, FirstName: "Erin"}
	// A 1×1 PNG.
	pngData = []byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89" +
		"\x00\x00\x00\rIDATx\x9cc\xf8\xff\xff?\x00\x05\xfe\x02\xfe\xa7\x35\x81\x84\x00\x00\x00\x00IEND\xaeB`\x82")
)

var plugin struct {
	once     sync.Once
	dir, bin string
	err      error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if plugin.dir != "" {
		_ = os.RemoveAll(plugin.dir)
	}
	os.Exit(code)
}

// pluginBinary builds tributary-telegram, once for the package. Tests
// call it before their deadline starts: on a loaded 2-core CI machine the
// build alone has taken most of the two minutes.
func pluginBinary(t *testing.T) string {
	t.Helper()
	plugin.once.Do(func() {
		if plugin.dir, plugin.err = os.MkdirTemp("", "e2etelegram-"); plugin.err == nil {
			plugin.bin, plugin.err = plugintest.BuildInto(plugin.dir, pluginPackage)
		}
	})
	if plugin.err != nil {
		t.Fatal(plugin.err)
	}
	return plugin.bin
}

func ghost(u models.User) id.UserID { return id.UserID(fmt.Sprintf("@tg_%d:localhost", u.ID)) }

// startWithPlugin starts tributary with the tributary-telegram plugin
// binary, its Bot API at apiURL.
func startWithPlugin(t *testing.T, bin, apiURL string) *testserver.Server {
	t.Helper()
	cfg := fmt.Sprintf(`app_services:
  retry_backoff: 200ms
  max_retry_backoff: 2s
plugins:
  - name: telegram
    binary: %q
    ghost_prefix: tg_
    bot_localpart: telegrambot
    config:
      log_level: debug
      network:
        api_url: %q
        poll_timeout: 10s
        max_retry_wait: 10s
        relay: true
      bridge:
        relay:
          enabled: true
          displayname_format: "{{ .DisambiguatedName }}"
`, bin, apiURL)
	cfgPath := filepath.Join(t.TempDir(), "tributary.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return testserver.Start(t, testserver.Options{Args: []string{"--config", cfgPath,
		"--enable-registration", "--disable-rate-limits"}})
}

// entities decodes a call's entities parameter.
func entities(t *testing.T, raw string) []models.MessageEntity {
	t.Helper()
	if raw == "" {
		return nil
	}
	var ents []models.MessageEntity
	if err := json.Unmarshal([]byte(raw), &ents); err != nil {
		t.Fatalf("entities %q: %v", raw, err)
	}
	return ents
}

// TestTelegramPlugin is issue 19's bot-API "done means" through the plugin
// binary: the real tributary runs tributary-telegram against a fake Bot
// API. A Matrix user logs the bot in through the bridge bot's management
// room; a Telegram group's messages make a portal; text with formatting,
// replies, edits, reactions and media (photo, document, voice, sticker) go
// both ways; a Matrix user without a login talks through the bot as a
// relay; and 429 answers delay sending, are shown in the room and lose
// nothing.
func TestTelegramPlugin(t *testing.T) {
	bin := pluginBinary(t)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	tg := tgfake.Start(botToken, models.User{ID: 4242, IsBot: true, FirstName: "Relay", Username: "relaybot"})
	t.Cleanup(tg.Close) // after the server (cleanups run last first)
	tg.AddChat(models.Chat{ID: groupID, Type: models.ChatTypeSupergroup, Title: "Telegram Group"})
	tg.SetProfilePhoto(dave.ID, pngData)
	s := startWithPlugin(t, bin, tg.URL())

	// alice logs the bot in, in her management room.
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
	t.Cleanup(func() {
		if t.Failed() {
			for _, evt := range w.seen[mgmt] {
				if evt.Type == event.EventMessage {
					t.Logf("management room: %s: %s", evt.Sender, evt.Content.AsMessage().Body)
				}
			}
		}
	})
	botSays := func(after id.EventID, text string) {
		t.Helper()
		w.wait(ctx, mgmt, "the bot saying "+text, func(evt *event.Event) bool {
			if evt.Type != event.EventMessage || evt.Sender != tgBot || !strings.Contains(evt.Content.AsMessage().Body, text) {
				return false
			}
			for _, e := range w.seen[mgmt] {
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
	command := func(cmd, want string) {
		t.Helper()
		sent, err := alice.SendText(ctx, mgmt, cmd)
		if err != nil {
			t.Fatal(err)
		}
		botSays(sent.EventID, want)
	}
	w.wait(ctx, mgmt, "the bot's welcome", func(evt *event.Event) bool {
		return evt.Type == event.EventMessage && evt.Sender == tgBot
	})
	command("login", "Bot token")
	command(botToken, "Logged in as the bot @relaybot")

	// Telegram → Matrix: the group's first message makes the portal.
	first := tg.Send(models.Message{Chat: models.Chat{ID: groupID}, From: &dave, Text: "hello bold world",
		Entities: []models.MessageEntity{{Type: models.MessageEntityTypeBold, Offset: 6, Length: 4}}})
	portal, _ := w.roomNamed(ctx, "Telegram Group")
	if _, err := alice.JoinRoomByID(ctx, portal); err != nil {
		t.Fatal(err)
	}
	hello := w.waitMessage(ctx, portal, "hello bold world")
	if hello.Sender != ghost(dave) || hello.Content.AsMessage().FormattedBody != "hello <strong>bold</strong> world" {
		t.Fatalf("from Telegram: %s %q", hello.Sender, hello.Content.AsMessage().FormattedBody)
	}
	if p, err := alice.GetProfile(ctx, ghost(dave)); err != nil || p.DisplayName != "Dave Jones (Telegram)" {
		t.Errorf("dave's ghost: %+v, %v", p, err)
	} else {
		checkAvatar(ctx, t, alice, p.AvatarURL, pngData)
	}

	// Matrix → Telegram, with formatting, as the bot (alice's login).
	sent, err := alice.SendMessageEvent(ctx, portal, event.EventMessage, &event.MessageEventContent{
		MsgType: event.MsgText, Body: "hi dave", Format: event.FormatHTML, FormattedBody: "<strong>hi</strong> <em>dave</em>"})
	if err != nil {
		t.Fatal(err)
	}
	call, _, err := tg.WaitCall(ctx, "sendMessage", 0, func(c *tgfake.Call) bool { return c.Params["text"] == "hi dave" })
	if err != nil {
		t.Fatal(err)
	}
	if got := entities(t, call.Params["entities"]); len(got) != 2 || got[0].Type != "bold" || got[0].Length != 2 ||
		got[1].Type != "italic" || got[1].Offset != 3 || got[1].Length != 4 {
		t.Errorf("entities sent: %s", call.Params["entities"])
	}
	hiID := call.Answer.ID

	// Replies both ways.
	tg.Send(models.Message{Chat: models.Chat{ID: groupID}, From: &dave, Text: "replying to you",
		ReplyToMessage: tg.Message(groupID, hiID)})
	reply := w.waitMessage(ctx, portal, "replying to you")
	if rel := reply.Content.AsMessage().RelatesTo; rel == nil || rel.GetReplyTo() != sent.EventID {
		t.Errorf("reply from Telegram relates to %+v, want %s", rel, sent.EventID)
	}
	replyContent := &event.MessageEventContent{MsgType: event.MsgText, Body: "answering dave"}
	replyContent.SetReply(hello)
	answer, err := alice.SendMessageEvent(ctx, portal, event.EventMessage, replyContent)
	if err != nil {
		t.Fatal(err)
	}
	call, _, err = tg.WaitCall(ctx, "sendMessage", 0, func(c *tgfake.Call) bool { return c.Params["text"] == "answering dave" })
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(call.Params["reply_parameters"], fmt.Sprintf(`"message_id":%d`, first.ID)) {
		t.Errorf("reply to Telegram: reply_parameters %s, want message %d", call.Params["reply_parameters"], first.ID)
	}

	// Edits both ways.
	tg.Edit(groupID, first.ID, "hello edited world", nil)
	edit := w.wait(ctx, portal, "dave's edit", func(evt *event.Event) bool {
		rel := evt.Content.AsMessage().RelatesTo
		return evt.Type == event.EventMessage && rel != nil && rel.GetReplaceID() == hello.ID
	})
	if nc := edit.Content.AsMessage().NewContent; nc == nil || nc.Body != "hello edited world" || edit.Sender != ghost(dave) {
		t.Errorf("edit from Telegram: %s %+v", edit.Sender, nc)
	}
	editContent := &event.MessageEventContent{MsgType: event.MsgText, Body: "* hi again dave",
		NewContent: &event.MessageEventContent{MsgType: event.MsgText, Body: "hi again dave"},
		RelatesTo:  &event.RelatesTo{Type: event.RelReplace, EventID: sent.EventID}}
	if _, err := alice.SendMessageEvent(ctx, portal, event.EventMessage, editContent); err != nil {
		t.Fatal(err)
	}
	if _, _, err := tg.WaitCall(ctx, "editMessageText", 0, func(c *tgfake.Call) bool {
		return c.Params["text"] == "hi again dave" && c.Params["message_id"] == fmt.Sprint(hiID)
	}); err != nil {
		t.Fatal(err)
	}

	// Reactions both ways.
	tg.React(groupID, hiID, erin, nil, []string{"👍"})
	react := w.wait(ctx, portal, "erin's reaction", func(evt *event.Event) bool {
		return evt.Type == event.EventReaction && evt.Content.AsReaction().RelatesTo.EventID == sent.EventID
	})
	if react.Sender != ghost(erin) || strings.TrimSuffix(react.Content.AsReaction().RelatesTo.Key, "\ufe0f") != "👍" {
		t.Errorf("reaction from Telegram: %s %q", react.Sender, react.Content.AsReaction().RelatesTo.Key)
	}
	tg.React(groupID, hiID, erin, []string{"👍"}, nil)
	w.wait(ctx, portal, "erin's reaction going", func(evt *event.Event) bool {
		return evt.Type == event.EventRedaction && evt.Redacts == react.ID
	})
	myReaction, err := alice.SendReaction(ctx, portal, hello.ID, "❤️")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := tg.WaitCall(ctx, "setMessageReaction", 0, func(c *tgfake.Call) bool {
		return c.Params["message_id"] == fmt.Sprint(first.ID) && strings.Contains(c.Params["reaction"], `"emoji":"❤"`)
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.RedactEvent(ctx, portal, myReaction.EventID); err != nil {
		t.Fatal(err)
	}
	if _, _, err := tg.WaitCall(ctx, "setMessageReaction", 1, func(c *tgfake.Call) bool {
		return c.Params["message_id"] == fmt.Sprint(first.ID) && !strings.Contains(c.Params["reaction"], "emoji")
	}); err != nil {
		t.Fatal(err)
	}

	// Media, Telegram → Matrix: a photo with a caption, a document, a
	// voice note and a sticker.
	photoID := tg.AddFile("photo.png", pngData)
	tg.Send(models.Message{Chat: models.Chat{ID: groupID}, From: &dave, Caption: "a photo",
		Photo: []models.PhotoSize{{FileID: "small", Width: 1, Height: 1}, {FileID: photoID, Width: 1, Height: 1}}})
	docID := tg.AddFile("notes.txt", []byte("some notes"))
	tg.Send(models.Message{Chat: models.Chat{ID: groupID}, From: &dave,
		Document: &models.Document{FileID: docID, FileName: "notes.txt", MimeType: "text/plain"}})
	voiceID := tg.AddFile("voice.ogg", []byte("OggS fake voice"))
	tg.Send(models.Message{Chat: models.Chat{ID: groupID}, From: &dave,
		Voice: &models.Voice{FileID: voiceID, Duration: 3, MimeType: "audio/ogg"}})
	stickerID := tg.AddFile("sticker.webp", []byte("RIFF fake webp"))
	tg.Send(models.Message{Chat: models.Chat{ID: groupID}, From: &dave,
		Sticker: &models.Sticker{FileID: stickerID, Emoji: "😀", Width: 512, Height: 512, Type: "regular"}})
	photo := w.waitMessage(ctx, portal, "a photo")
	doc := w.waitMessage(ctx, portal, "notes.txt")
	voice := w.waitMessage(ctx, portal, "voice.ogg")
	sticker := w.wait(ctx, portal, "the sticker", func(evt *event.Event) bool { return evt.Type == event.EventSticker })
	for _, c := range []struct {
		evt     *event.Event
		msgType event.MessageType
		data    []byte
	}{{photo, event.MsgImage, pngData}, {doc, event.MsgFile, []byte("some notes")},
		{voice, event.MsgAudio, []byte("OggS fake voice")}, {sticker, "", []byte("RIFF fake webp")}} {
		mc := c.evt.Content.AsMessage()
		if mc.MsgType != c.msgType || c.evt.Sender != ghost(dave) {
			t.Errorf("%q: msgtype %q from %s", mc.Body, mc.MsgType, c.evt.Sender)
			continue
		}
		got, err := alice.DownloadBytes(ctx, mc.URL.ParseOrIgnore())
		if err != nil || !bytes.Equal(got, c.data) {
			t.Errorf("%q: media %q, %v", mc.Body, got, err)
		}
	}
	if mc := photo.Content.AsMessage(); mc.FileName != "photo.jpg" {
		t.Errorf("photo file name %q", mc.FileName)
	}
	if mc := voice.Content.AsMessage(); mc.MSC3245Voice == nil {
		t.Error("the voice note is not marked as voice")
	}
	if sticker.Content.AsMessage().Body != "😀" {
		t.Errorf("sticker body %q", sticker.Content.AsMessage().Body)
	}

	// Media, Matrix → Telegram: an image with a caption and a file.
	up, err := alice.UploadBytes(ctx, pngData, "image/png")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := alice.SendMessageEvent(ctx, portal, event.EventMessage, &event.MessageEventContent{
		MsgType: event.MsgImage, Body: "look at this", FileName: "dot.png", URL: up.ContentURI.CUString(),
		Info: &event.FileInfo{MimeType: "image/png", Size: len(pngData)}}); err != nil {
		t.Fatal(err)
	}
	call, _, err = tg.WaitCall(ctx, "sendPhoto", 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(call.Files["photo"], pngData) || call.Params["caption"] != "look at this" {
		t.Errorf("sendPhoto: %d bytes, caption %q", len(call.Files["photo"]), call.Params["caption"])
	}
	upDoc, err := alice.UploadBytes(ctx, []byte("report body"), "text/plain")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := alice.SendMessageEvent(ctx, portal, event.EventMessage, &event.MessageEventContent{
		MsgType: event.MsgFile, Body: "report.txt", URL: upDoc.ContentURI.CUString(),
		Info: &event.FileInfo{MimeType: "text/plain"}}); err != nil {
		t.Fatal(err)
	}
	call, _, err = tg.WaitCall(ctx, "sendDocument", 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	if string(call.Files["document"]) != "report body" || call.FileNames["document"] != "report.txt" {
		t.Errorf("sendDocument: %q as %q", call.Files["document"], call.FileNames["document"])
	}

	// A Matrix user without a login talks through the bot (relay).
	carol := s.Register(t, &mautrix.ReqRegister[any]{Username: "carol", Password: "correct horse battery"})
	if _, err := alice.InviteUser(ctx, portal, &mautrix.ReqInviteUser{UserID: carol.UserID}); err != nil {
		t.Fatal(err)
	}
	if _, err := carol.JoinRoomByID(ctx, portal); err != nil {
		t.Fatal(err)
	}
	if _, err := carol.SendText(ctx, portal, "carol here"); err != nil {
		t.Fatal(err)
	}
	call, _, err = tg.WaitCall(ctx, "sendMessage", 0, func(c *tgfake.Call) bool {
		return strings.HasSuffix(c.Params["text"], "carol here")
	})
	if err != nil {
		t.Fatal(err)
	}
	// The relay's name prefix is bold on Telegram.
	if ents := entities(t, call.Params["entities"]); call.Params["text"] != "carol: carol here" || len(ents) != 1 ||
		ents[0].Type != "bold" || ents[0].Offset != 0 || ents[0].Length != 5 {
		t.Errorf("relayed: %q with %s", call.Params["text"], call.Params["entities"])
	}

	// A Matrix deletion deletes on Telegram.
	if _, err := alice.RedactEvent(ctx, portal, answer.EventID); err != nil {
		t.Fatal(err)
	}
	answerCall, _, err := tg.WaitCall(ctx, "sendMessage", 0, func(c *tgfake.Call) bool { return c.Params["text"] == "answering dave" })
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := tg.WaitCall(ctx, "deleteMessage", 0, func(c *tgfake.Call) bool {
		return c.Params["message_id"] == fmt.Sprint(answerCall.Answer.ID)
	}); err != nil {
		t.Fatal(err)
	}

	// Members joining and leaving, and a new title.
	frank := models.User{ID: 503, FirstName: "Frank"}
	tg.Send(models.Message{Chat: models.Chat{ID: groupID}, From: &frank, NewChatMembers: []models.User{frank}})
	w.wait(ctx, portal, "frank joining", func(evt *event.Event) bool {
		return evt.Type == event.StateMember && evt.GetStateKey() == string(ghost(frank)) &&
			evt.Content.AsMember().Membership == event.MembershipJoin && evt.Content.AsMember().Displayname == "Frank (Telegram)"
	})
	tg.Send(models.Message{Chat: models.Chat{ID: groupID}, From: &frank, LeftChatMember: &frank})
	w.wait(ctx, portal, "frank leaving", func(evt *event.Event) bool {
		return evt.Type == event.StateMember && evt.GetStateKey() == string(ghost(frank)) &&
			evt.Content.AsMember().Membership == event.MembershipLeave
	})
	tg.Send(models.Message{Chat: models.Chat{ID: groupID}, From: &dave, NewChatTitle: "Renamed Group"})
	w.wait(ctx, portal, "the new title", func(evt *event.Event) bool {
		return evt.Type == event.StateRoomName && evt.Content.AsRoomName().Name == "Renamed Group"
	})

	// A private chat with the bot is a DM portal.
	tg.AddChat(models.Chat{ID: dave.ID, Type: models.ChatTypePrivate, FirstName: "Dave", LastName: "Jones"})
	tg.Send(models.Message{Chat: models.Chat{ID: dave.ID}, From: &dave, Text: "private hello"})
	dm, private := w.messageAnywhere(ctx, "private hello")
	if dm == portal || private.Sender != ghost(dave) {
		t.Errorf("private message in %s (the group is %s) from %s", dm, portal, private.Sender)
	}
	if _, err := alice.SendText(ctx, dm, "private answer"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := tg.WaitCall(ctx, "sendMessage", 0, func(c *tgfake.Call) bool {
		return c.Params["text"] == "private answer" && c.Params["chat_id"] == fmt.Sprint(dave.ID)
	}); err != nil {
		t.Fatal(err)
	}

	// A forum: its topics are rooms in a space.
	const forumID = int64(-1005678)
	tg.AddChat(models.Chat{ID: forumID, Type: models.ChatTypeSupergroup, Title: "Forum", IsForum: true})
	opened := tg.CreateTopic(forumID, dave, "Ideas")
	tg.Send(models.Message{Chat: models.Chat{ID: forumID}, From: &dave, Text: "an idea", IsTopicMessage: true,
		MessageThreadID: opened.ID, ReplyToMessage: opened})
	topicRoom, isSpace := w.roomNamed(ctx, "Ideas")
	space, spaceIsSpace := w.roomNamed(ctx, "Forum")
	if isSpace || !spaceIsSpace {
		t.Errorf("the topic's room is a space: %v; the forum's is: %v", isSpace, spaceIsSpace)
	}
	if _, err := alice.JoinRoomByID(ctx, topicRoom); err != nil {
		t.Fatal(err)
	}
	if idea := w.waitMessage(ctx, topicRoom, "an idea"); idea.Sender != ghost(dave) ||
		idea.Content.AsMessage().RelatesTo.GetReplyTo() != "" {
		t.Errorf("topic message from %s, a reply to %q", idea.Sender, idea.Content.AsMessage().RelatesTo.GetReplyTo())
	}
	w.wait(ctx, topicRoom, "the topic's m.space.parent", func(evt *event.Event) bool {
		return evt.Type == event.StateSpaceParent && evt.GetStateKey() == string(space)
	})
	if _, err := alice.SendText(ctx, topicRoom, "into the topic"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := tg.WaitCall(ctx, "sendMessage", 0, func(c *tgfake.Call) bool {
		return c.Params["text"] == "into the topic" && c.Params["chat_id"] == fmt.Sprint(forumID) &&
			c.Params["message_thread_id"] == fmt.Sprint(opened.ID)
	}); err != nil {
		t.Fatal(err)
	}

	// 429: two answers in a row for the first message; it waits
	// retry_after, then twice as long, and goes; the next one keeps its
	// place behind it; nothing is sent twice or lost.
	tg.FailNext("sendMessage", 1)
	tg.FailNext("sendMessage", 1)
	for _, text := range []string{"under limit one", "under limit two"} {
		if _, err := alice.SendText(ctx, portal, text); err != nil {
			t.Fatal(err)
		}
	}
	notice := w.wait(ctx, portal, "the rate limit notice", func(evt *event.Event) bool {
		return evt.Type == event.EventMessage && evt.Sender == tgBot && evt.Content.AsMessage().MsgType == event.MsgNotice &&
			strings.Contains(evt.Content.AsMessage().Body, "Telegram is limiting")
	})
	t.Logf("notice: %s", notice.Content.AsMessage().Body)
	two, _, err := tg.WaitCall(ctx, "sendMessage", 0, func(c *tgfake.Call) bool { return c.Params["text"] == "under limit two" })
	if err != nil {
		t.Fatal(err)
	}
	var limited []*tgfake.Call
	var one *tgfake.Call
	nOne, nTwo := 0, 0
	for _, c := range tg.Calls("sendMessage") {
		switch {
		case c.Status == 429:
			limited = append(limited, c)
		case c.Params["text"] == "under limit one":
			one = c
			nOne++
		case c.Params["text"] == "under limit two":
			nTwo++
		}
	}
	if len(limited) != 2 || one == nil || nOne != 1 || nTwo != 1 {
		t.Fatalf("429s %d, sent %d and %d times", len(limited), nOne, nTwo)
	}
	if limited[0].Params["text"] != "under limit one" || limited[1].Params["text"] != "under limit one" {
		t.Errorf("the 429s answered %q and %q", limited[0].Params["text"], limited[1].Params["text"])
	}
	if gap := limited[1].At.Sub(limited[0].At); gap < time.Second {
		t.Errorf("retried %s after the first 429 (retry_after 1)", gap)
	}
	if gap := one.At.Sub(limited[1].At); gap < 2*time.Second {
		t.Errorf("retried %s after the second 429 (backoff: twice the last wait)", gap)
	}
	if !two.At.After(one.At) {
		t.Error("the message behind the rate-limited one overtook it")
	}

	// The login's bridge state said so, and came back (the host logs each
	// state the plugin reports; a /sync long-poll paces the wait).
	for {
		logs := s.Logs()
		limitedAt := strings.Index(logs, `"state":"TRANSIENT_DISCONNECT","user":"@alice:localhost","remote_id":"bot4242","error":"tg-rate-limited"`)
		if limitedAt >= 0 && strings.Contains(logs[limitedAt:], `"state":"CONNECTED","user":"@alice:localhost"`) {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("no tg-rate-limited bridge state followed by CONNECTED (found the first: %v)", limitedAt >= 0)
		}
		w.next(ctx)
	}

	// Kill the plugin; what Telegram users say meanwhile arrives once the
	// host has restarted it, and nothing is bridged twice.
	pid := pluginPID(s, bin)
	if pid == 0 {
		t.Fatal("no plugin process under the server")
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	tg.Send(models.Message{Chat: models.Chat{ID: groupID}, From: &erin, Text: "said while the bridge was down"})
	w.waitMessage(ctx, portal, "said while the bridge was down")
	if newPID := pluginPID(s, bin); newPID == pid || newPID == 0 {
		t.Errorf("plugin pid after the restart: %d (before: %d)", newPID, pid)
	}
	if _, err := alice.SendText(ctx, portal, "after the restart"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := tg.WaitCall(ctx, "sendMessage", 0, func(c *tgfake.Call) bool { return c.Params["text"] == "after the restart" }); err != nil {
		t.Fatal(err)
	}
	counts := map[string]int{}
	for _, evt := range w.seen[portal] {
		if evt.Type == event.EventMessage && evt.Content.AsMessage().RelatesTo.GetReplaceID() == "" {
			counts[evt.Content.AsMessage().Body]++
		}
	}
	for body, n := range counts {
		if n > 1 {
			t.Errorf("%q is in the room %d times", body, n)
		}
	}

	// A group that becomes a supergroup keeps its room: the portal moves
	// to the supergroup's chat ID.
	const oldGroup, newGroup = int64(-5555), int64(-1005555)
	tg.AddChat(models.Chat{ID: oldGroup, Type: models.ChatTypeGroup, Title: "Small Group"})
	tg.Send(models.Message{Chat: models.Chat{ID: oldGroup}, From: &dave, Text: "in the small group"})
	small, _ := w.roomNamed(ctx, "Small Group")
	if _, err := alice.JoinRoomByID(ctx, small); err != nil {
		t.Fatal(err)
	}
	w.waitMessage(ctx, small, "in the small group")
	tg.AddChat(models.Chat{ID: newGroup, Type: models.ChatTypeSupergroup, Title: "Small Group"})
	tg.Send(models.Message{Chat: models.Chat{ID: oldGroup}, From: &dave, MigrateToChatID: newGroup})
	tg.Send(models.Message{Chat: models.Chat{ID: newGroup}, From: &dave, MigrateFromChatID: oldGroup})
	tg.Send(models.Message{Chat: models.Chat{ID: newGroup}, From: &dave, Text: "now a supergroup"})
	w.waitMessage(ctx, small, "now a supergroup")
	if _, err := alice.SendText(ctx, small, "still the same room"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := tg.WaitCall(ctx, "sendMessage", 0, func(c *tgfake.Call) bool {
		return c.Params["text"] == "still the same room" && c.Params["chat_id"] == strconv.FormatInt(newGroup, 10)
	}); err != nil {
		t.Fatal(err)
	}

	// The plugin logged no error of its own.
	for _, line := range strings.Split(s.Logs(), "\n") {
		if strings.Contains(line, `"logger":"plugin.tributary-telegram"`) && strings.Contains(line, `"level":"ERROR"`) {
			t.Errorf("the plugin logged an error: %s", line)
		}
	}
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

// checkAvatar checks that a ghost's avatar is the picture.
func checkAvatar(ctx context.Context, t *testing.T, cli *mautrix.Client, uri id.ContentURI, want []byte) {
	t.Helper()
	if uri.IsEmpty() {
		t.Error("the ghost has no avatar")
		return
	}
	got, err := cli.DownloadBytes(ctx, uri)
	if err != nil || !bytes.Equal(got, want) {
		t.Errorf("ghost avatar %s: %d bytes, %v", uri, len(got), err)
	}
}
