package e2ediscord

import (
	"context"
	"strings"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/internal/fakediscord"
)

// TestDiscordPluginUserToken is the optional user-token (puppeting) mode:
// a user logs in with their Discord account's token; their Matrix
// messages, replies, edits and redactions are sent as that account (no
// webhook), each once (the gateway's echo is not bridged back); what the
// account writes on Discord itself arrives as theirs (double-puppeted); a
// token Discord stops taking is shown to the user.
func TestDiscordPluginUserToken(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	const userToken = "user-token-dave"
	fake := fakediscord.New(t, botToken)
	fake.AllowUserToken(userToken)
	bin := pluginBinary(t)
	s := startServer(t, writeConfig(t, bin, fake.URL()), "")
	alice := s.Register(t, &mautrix.ReqRegister[any]{Username: "alice", Password: "correct horse battery"})
	w := &watcher{t: t, cli: alice, seen: map[id.RoomID][]*event.Event{}, typing: map[id.RoomID][]id.UserID{}}
	mgmt := loginWith(ctx, t, alice, w, "user-token", userToken, "Logged in as dave (your Discord account)")

	first := fake.Message("hello dave", nil)
	space := w.inSpace(ctx, "Test Guild")
	child := w.wait(ctx, space, "the channel in the space", func(evt *event.Event) bool {
		return evt.Type == event.StateSpaceChild && len(evt.Content.VeryRaw) > 2
	})
	portal := id.RoomID(child.GetStateKey())
	if _, err := alice.JoinRoomByID(ctx, portal); err != nil {
		t.Fatal(err)
	}
	hello := w.message(ctx, portal, "hello dave")

	// Matrix → Discord as the account: a message, a reply, an edit, a
	// redaction.
	mine, err := alice.SendText(ctx, portal, "as myself")
	if err != nil {
		t.Fatal(err)
	}
	post := fake.Await("the post", func(c fakediscord.Call) bool { return c.Method == "POST" && c.JSON["content"] == "as myself" })
	if post.Path != "/channels/"+fakediscord.ChannelID+"/messages" {
		t.Fatalf("posted as %s, not as the account", post.Path)
	}
	if _, err := alice.SendMessageEvent(ctx, portal, event.EventMessage, &event.MessageEventContent{MsgType: event.MsgText,
		Body: "my reply", RelatesTo: &event.RelatesTo{InReplyTo: &event.InReplyTo{EventID: hello.ID}}}); err != nil {
		t.Fatal(err)
	}
	rp := fake.Await("the reply", func(c fakediscord.Call) bool { return c.Method == "POST" && c.JSON["content"] == "my reply" })
	if ref, _ := rp.JSON["message_reference"].(map[string]any); ref == nil || ref["message_id"] != first {
		t.Fatalf("the reply is not a Discord reply to %s: %v", first, rp)
	}
	if _, err := alice.SendMessageEvent(ctx, portal, event.EventMessage, &event.MessageEventContent{MsgType: event.MsgText,
		Body: "as myself, edited", NewContent: &event.MessageEventContent{MsgType: event.MsgText, Body: "as myself, edited"},
		RelatesTo: &event.RelatesTo{Type: event.RelReplace, EventID: mine.EventID}}); err != nil {
		t.Fatal(err)
	}
	edit := fake.Await("the edit", func(c fakediscord.Call) bool { return c.Method == "PATCH" })
	if edit.Path != "/channels/"+fakediscord.ChannelID+"/messages/"+post.JSON["id"].(string) || edit.JSON["content"] != "as myself, edited" {
		t.Fatalf("the edit: %v", edit)
	}
	if _, err := alice.RedactEvent(ctx, portal, mine.EventID); err != nil {
		t.Fatal(err)
	}
	del := fake.Await("the deletion", func(c fakediscord.Call) bool { return c.Method == "DELETE" })
	if del.Path != "/channels/"+fakediscord.ChannelID+"/messages/"+post.JSON["id"].(string) {
		t.Fatalf("the deletion: %v", del)
	}

	// The account writes on Discord itself: it arrives as the user's (the
	// SDK double-puppets local users).
	fake.Message("typed in the Discord app", map[string]any{"author": fakediscord.Dave})
	own := w.message(ctx, portal, "typed in the Discord app")
	if own.Sender != alice.UserID {
		t.Errorf("the account's own message came from %s, not alice", own.Sender)
	}
	// Each Matrix message is in the room once: the echoes of what the
	// bridge sent were not bridged back (the gateway's order puts them
	// before the message above).
	n := 0
	for _, evt := range w.seen[portal] {
		if evt.Type != event.EventMessage || evt.ID == mine.EventID {
			continue
		}
		mc := evt.Content.AsMessage()
		if mc.Body == "my reply" {
			n++
		}
		if strings.HasPrefix(mc.Body, "as myself") && (mc.RelatesTo == nil || mc.RelatesTo.Type != event.RelReplace) {
			t.Errorf("%s echoed %q", evt.Sender, mc.Body)
		}
	}
	if n != 1 {
		t.Errorf("the reply is in the room %d times", n)
	}

	// The account's token is reset: the user is told.
	fake.Revoke()
	w.wait(ctx, mgmt, "a notice of the revoked token", func(evt *event.Event) bool {
		return evt.Sender == discordBot && strings.Contains(evt.Content.AsMessage().Body, "BAD_CREDENTIALS") &&
			strings.Contains(evt.Content.AsMessage().Body, "refused your account's token")
	})
}
