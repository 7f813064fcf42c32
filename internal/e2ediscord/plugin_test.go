// Package e2ediscord runs the real tributary with the real
// tributary-discord plugin in front of a local fake of Discord (its
// gateway websocket and REST API).
package e2ediscord

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/internal/fakediscord"
)

const (
	pluginPackage = "github.com/tributary-hs/tributary/bridges/discord/cmd/tributary-discord"
	discordBot    = id.UserID("@discordbot:localhost")
	botToken      = "bot-token-1"
)

func ghost(discordID string) id.UserID { return id.UserID("@discord_" + discordID + ":localhost") }

// watcher follows a user's /sync.
type watcher struct {
	t       *testing.T
	cli     *mautrix.Client
	since   string
	seen    map[id.RoomID][]*event.Event
	typing  map[id.RoomID][]id.UserID
	invites []id.RoomID
	// inviteNames: the invited rooms' names (their invite state).
	inviteNames map[id.RoomID]string
}

func (w *watcher) next(ctx context.Context) {
	w.t.Helper()
	resp, err := w.cli.SyncRequest(ctx, 5000, w.since, `{"room":{"timeline":{"limit":500}}}`, false, "")
	if err != nil {
		w.t.Fatalf("/sync: %v", err)
	}
	w.since = resp.NextBatch
	for roomID, inv := range resp.Rooms.Invite {
		w.invites = append(w.invites, roomID)
		for _, evt := range inv.State.Events {
			if evt.Type == event.StateRoomName {
				_ = evt.Content.ParseRaw(evt.Type)
				if w.inviteNames == nil {
					w.inviteNames = map[id.RoomID]string{}
				}
				w.inviteNames[roomID] = evt.Content.AsRoomName().Name
			}
		}
	}
	for roomID, room := range resp.Rooms.Join {
		for _, evt := range append(room.State.Events, room.Timeline.Events...) {
			evt.RoomID = roomID
			_ = evt.Content.ParseRaw(evt.Type)
			w.seen[roomID] = append(w.seen[roomID], evt)
		}
		for _, evt := range room.Ephemeral.Events {
			if evt.Type == event.EphemeralEventTyping {
				_ = evt.Content.ParseRaw(evt.Type)
				w.typing[roomID] = evt.Content.AsTyping().UserIDs
			}
		}
	}
}

func (w *watcher) wait(ctx context.Context, roomID id.RoomID, what string, pred func(*event.Event) bool) *event.Event {
	w.t.Helper()
	for i := 0; ; i++ {
		for _, evt := range w.seen[roomID] {
			if pred(evt) {
				return evt
			}
		}
		if ctx.Err() != nil {
			w.t.Fatalf("no %s: %v", what, ctx.Err())
		}
		w.next(ctx)
	}
}

// inSpace waits for the user to be in the space named name, and returns
// it: invited (she then joins), or joined already, which bridgev2 does
// when it double-puppets her (she is a member of the guild).
func (w *watcher) inSpace(ctx context.Context, name string) id.RoomID {
	w.t.Helper()
	for {
		for _, r := range w.invites {
			if w.inviteNames[r] == name {
				if _, err := w.cli.JoinRoomByID(ctx, r); err != nil {
					w.t.Fatal(err)
				}
				return r
			}
		}
		for r, evs := range w.seen {
			for _, evt := range evs {
				if evt.Type == event.StateRoomName && evt.Content.AsRoomName().Name == name {
					return r
				}
			}
		}
		if ctx.Err() != nil {
			w.t.Fatalf("never in the space %s", name)
		}
		w.next(ctx)
	}
}

// powerOf is a user's power level in a room.
func powerOf(ctx context.Context, t *testing.T, cli *mautrix.Client, room id.RoomID, user id.UserID) int {
	t.Helper()
	var pl event.PowerLevelsEventContent
	if err := cli.StateEvent(ctx, room, event.StatePowerLevels, "", &pl); err != nil {
		t.Fatal(err)
	}
	return pl.GetUserLevel(user)
}

func (w *watcher) message(ctx context.Context, roomID id.RoomID, body string) *event.Event {
	w.t.Helper()
	return w.wait(ctx, roomID, "message "+body, func(evt *event.Event) bool {
		return evt.Type == event.EventMessage && evt.Content.AsMessage().Body == body
	})
}

// say sends a command to the bot and waits for its answer.
func (w *watcher) say(ctx context.Context, room id.RoomID, text, want string) {
	w.t.Helper()
	sent, err := w.cli.SendText(ctx, room, text)
	if err != nil {
		w.t.Fatal(err)
	}
	after := false
	w.wait(ctx, room, "the bot saying "+want, func(evt *event.Event) bool {
		if evt.ID == sent.EventID {
			after = true
		}
		return after && evt.Sender == discordBot && strings.Contains(evt.Content.AsMessage().Body, want)
	})
}

// TestDiscordPlugin is issue 18's bridge "done means" through the plugin
// binary against a fake Discord: a bot token logs in; a Discord message
// creates the portal and arrives with its markdown as HTML; a Matrix
// message goes out through the channel's webhook under the sender's name
// and avatar; replies, edits, reactions (custom emoji as images, in text
// too) and attachments go both ways,
// typing from Discord; roles as power levels; stickers and embeds from
// Discord; deletions both ways; only the guild's space is an invite; a
// revoked token reaches the user as a
// BAD_CREDENTIALS notice.
func TestDiscordPlugin(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	fake := fakediscord.New(t, botToken)
	bin := pluginBinary(t)
	cfgPath := writeConfig(t, bin, fake.URL())
	s := startServer(t, cfgPath, "")
	alice := s.Register(t, &mautrix.ReqRegister[any]{Username: "alice", Password: "correct horse battery"})
	if err := alice.SetDisplayName(ctx, "Alice Liddell"); err != nil {
		t.Fatal(err)
	}
	if err := alice.SetAvatarURL(ctx, id.ContentURI{Homeserver: "localhost", FileID: "alicepic"}); err != nil {
		t.Fatal(err)
	}
	w := &watcher{t: t, cli: alice, seen: map[id.RoomID][]*event.Event{}, typing: map[id.RoomID][]id.UserID{}}
	t.Cleanup(func() {
		if t.Failed() {
			for room, evs := range w.seen {
				for _, evt := range evs {
					if evt.Type == event.EventMessage || evt.Type == event.EventReaction {
						t.Logf("%s: %s: %s %s", room, evt.Sender, evt.Type.Type, evt.Content.VeryRaw)
					}
				}
			}
		}
	})
	mgmt := login(ctx, t, alice, w)

	// Discord → Matrix: the portal is made, with the message as HTML. The
	// user is in the guild's space only (invited, or joined as her double
	// puppet); the channel's room is in it, open to its members, and she
	// joins it from there.
	first := fake.Message("hello **world**", nil)
	space := w.inSpace(ctx, "Test Guild")
	child := w.wait(ctx, space, "the channel in the space", func(evt *event.Event) bool {
		return evt.Type == event.StateSpaceChild && evt.StateKey != nil && len(evt.Content.VeryRaw) > 2
	})
	portal := id.RoomID(child.GetStateKey())
	var n event.RoomNameEventContent
	if err := alice.StateEvent(ctx, portal, event.StateRoomName, "", &n); err == nil || n.Name != "" {
		t.Fatalf("alice can read the channel's room before joining it (%q, %v)", n.Name, err)
	}
	if _, err := alice.JoinRoomByID(ctx, portal); err != nil {
		t.Fatalf("joining the channel's room from the space: %v", err)
	}
	if err := alice.StateEvent(ctx, portal, event.StateRoomName, "", &n); err != nil || n.Name != "general" {
		t.Fatalf("the space's child is %q (%v), not #general", n.Name, err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			resp, err := alice.Messages(context.Background(), portal, "", "", mautrix.DirectionBackward, nil, 100)
			if err != nil {
				t.Logf("portal history: %v", err)
				return
			}
			for _, evt := range resp.Chunk {
				t.Logf("portal: %s %s %s", evt.Sender, evt.Type.Type, evt.Content.VeryRaw)
			}
		}
	})
	hello := w.message(ctx, portal, "hello **world**")
	if mc := hello.Content.AsMessage(); hello.Sender != ghost(fakediscord.BobID) || mc.FormattedBody != "hello <strong>world</strong>" {
		t.Fatalf("from Discord: %s %q", hello.Sender, mc.FormattedBody)
	}
	if p, err := alice.GetDisplayName(ctx, ghost(fakediscord.BobID)); err != nil || p.DisplayName != "Bob Builder" {
		t.Fatalf("bob's ghost is named %+v (%v)", p, err)
	}

	// Roles → power levels: the owner is admin, bob (Mod: Manage Messages)
	// moderator, in the channel's room and the space.
	for _, room := range []id.RoomID{portal, space} {
		if got := powerOf(ctx, t, alice, room, ghost(fakediscord.OwnerID)); got != 100 {
			t.Errorf("the owner's ghost has power %d in %s, want 100", got, room)
		}
		if got := powerOf(ctx, t, alice, room, ghost(fakediscord.BobID)); got != 50 {
			t.Errorf("bob's ghost has power %d in %s, want 50", got, room)
		}
	}
	if got := powerOf(ctx, t, alice, portal, ghost(fakediscord.CarolID)); got != 0 {
		t.Errorf("carol's ghost has power %d, want 0", got)
	}
	// Bob is given the Admin role: admin; then Admin loses Administrator:
	// moderator again (his Mod role).
	fake.MemberRoles(fakediscord.Bob, fakediscord.AdminRoleID, fakediscord.ModRoleID)
	w.awaitPower(ctx, portal, ghost(fakediscord.BobID), 100)
	fake.RoleUpdate(fakediscord.AdminRoleID, "Admin", 0)
	w.awaitPower(ctx, portal, ghost(fakediscord.BobID), 50)
	w.awaitPower(ctx, space, ghost(fakediscord.BobID), 50)
	// Bob loses his roles: back to the default.
	fake.MemberRoles(fakediscord.Bob)
	w.awaitPower(ctx, portal, ghost(fakediscord.BobID), 0)
	if got := powerOf(ctx, t, alice, portal, ghost(fakediscord.OwnerID)); got != 100 {
		t.Errorf("the owner's ghost has power %d after bob's change, want 100", got)
	}

	// Matrix → Discord, through the webhook, as alice.
	if _, err := alice.SendText(ctx, portal, "hi bob"); err != nil {
		t.Fatal(err)
	}
	sent := fake.Await("the webhook post", func(c fakediscord.Call) bool { return c.Method == "POST" && strings.HasPrefix(c.Path, "/webhooks/") })
	if sent.JSON["content"] != "hi bob" || sent.JSON["username"] != "Alice Liddell" ||
		sent.JSON["avatar_url"] != "https://media.example/download/localhost/alicepic" {
		t.Fatalf("the webhook got %v", sent)
	}
	// The webhook's own message came back over the gateway: it is not
	// bridged again.

	// A reply on Discord.
	fake.Message("a reply", map[string]any{"type": 19, "message_reference": map[string]any{"message_id": first,
		"channel_id": fakediscord.ChannelID, "guild_id": fakediscord.GuildID}})
	reply := w.message(ctx, portal, "a reply")
	if rel := reply.Content.AsMessage().RelatesTo; rel == nil || rel.InReplyTo == nil || rel.InReplyTo.EventID != hello.ID {
		t.Fatalf("the reply relates to %+v, want %s", reply.Content.AsMessage().RelatesTo, hello.ID)
	}
	// An edit on Discord.
	fake.Dispatch("MESSAGE_UPDATE", map[string]any{"id": first, "channel_id": fakediscord.ChannelID, "guild_id": fakediscord.GuildID,
		"content": "hello **everyone**", "type": 0, "author": fakediscord.Bob, "edited_timestamp": time.Now().UTC().Format(time.RFC3339Nano),
		"timestamp": time.Now().UTC().Format(time.RFC3339Nano)})
	w.wait(ctx, portal, "the edit", func(evt *event.Event) bool {
		mc := evt.Content.AsMessage()
		return evt.Type == event.EventMessage && mc.RelatesTo != nil && mc.RelatesTo.Type == event.RelReplace &&
			mc.RelatesTo.EventID == hello.ID && mc.NewContent != nil && mc.NewContent.Body == "hello **everyone**"
	})
	// A reaction on Discord.
	fake.Dispatch("MESSAGE_REACTION_ADD", map[string]any{"user_id": fakediscord.BobID, "channel_id": fakediscord.ChannelID, "message_id": first,
		"guild_id": fakediscord.GuildID, "emoji": map[string]any{"name": "👍"}})
	w.wait(ctx, portal, "bob's reaction", func(evt *event.Event) bool {
		if evt.Type != event.EventReaction {
			return false
		}
		rel := evt.Content.AsReaction().RelatesTo
		// bridgev2 adds the emoji presentation selector.
		return evt.Sender == ghost(fakediscord.BobID) && rel.EventID == hello.ID && strings.TrimSuffix(rel.Key, "\ufe0f") == "👍"
	})
	// A custom emoji reaction: its image, with its :name: as shortcode.
	fake.Dispatch("MESSAGE_REACTION_ADD", map[string]any{"user_id": fakediscord.BobID, "channel_id": fakediscord.ChannelID, "message_id": first,
		"guild_id": fakediscord.GuildID, "emoji": map[string]any{"id": "999", "name": "blob"}})
	blob := w.wait(ctx, portal, "bob's custom emoji reaction", func(evt *event.Event) bool {
		return evt.Type == event.EventReaction && strings.HasPrefix(evt.Content.AsReaction().RelatesTo.Key, "mxc://")
	})
	if sc, _ := blob.Content.Raw["com.beeper.reaction.shortcode"].(string); sc != ":blob:" || blob.Content.AsReaction().RelatesTo.EventID != hello.ID {
		t.Fatalf("the custom emoji reaction: %s", blob.Content.VeryRaw)
	}
	// Discord's markup in text: a custom emoji is its image inline (the
	// reaction's), a channel and a role their names, a time in UTC.
	fake.Message("party <:blob:999> in <#"+fakediscord.ChannelID+"> with <@&"+fakediscord.ModRoleID+"> at <t:0:f> **now**", nil)
	party := w.message(ctx, portal, "party :blob: in #general with @Mod at 1970-01-01 00:00 UTC **now**")
	if got, img := party.Content.AsMessage().FormattedBody, `<img data-mx-emoticon src="`+blob.Content.AsReaction().RelatesTo.Key+`" alt=":blob:"`; !strings.Contains(got, img) || !strings.Contains(got, "<strong>now</strong>") {
		t.Fatalf("the custom emoji in text: %q, want %s", got, img)
	}
	// An attachment on Discord.
	fake.Message("", map[string]any{"attachments": []any{map[string]any{"id": "777", "filename": "cat.png",
		"url": fake.CDN() + "attachments/cat.png", "content_type": "image/png", "size": len(fakediscord.PNG)}}})
	img := w.wait(ctx, portal, "the image", func(evt *event.Event) bool {
		return evt.Type == event.EventMessage && evt.Content.AsMessage().MsgType == event.MsgImage
	})
	if mc := img.Content.AsMessage(); !strings.HasPrefix(string(mc.URL), "mxc://") || mc.Body != "cat.png" {
		t.Fatalf("the image: %+v", mc)
	}
	// A sticker (fetchable: m.sticker with the image; Lottie: text) and an
	// embed (a quote) on Discord.
	fake.Message("", map[string]any{"sticker_items": []any{map[string]any{"id": "888", "name": "wave", "format_type": 1}}})
	stk := w.wait(ctx, portal, "the sticker", func(evt *event.Event) bool { return evt.Type == event.EventSticker })
	if mc := stk.Content.AsMessage(); mc.Body != "wave" || !strings.HasPrefix(string(mc.URL), "mxc://") || stk.Sender != ghost(fakediscord.BobID) {
		t.Fatalf("the sticker: %s %+v", stk.Sender, mc)
	}
	fake.Message("", map[string]any{"sticker_items": []any{map[string]any{"id": "889", "name": "dance", "format_type": 3}}})
	w.message(ctx, portal, "[sticker: dance]")
	fake.Message("look", map[string]any{"embeds": []any{map[string]any{"type": "rich", "title": "Release 1.0",
		"url": "https://example.com/r", "description": "it is **out**", "fields": []any{map[string]any{"name": "Size", "value": "3 MB"}},
		"footer": map[string]any{"text": "example.com"}}}})
	emb := w.message(ctx, portal, "look\n> Release 1.0 (https://example.com/r)\n> it is **out**\n> Size: 3 MB\n> example.com")
	if got := emb.Content.AsMessage().FormattedBody; !strings.Contains(got, `<blockquote><strong><a href="https://example.com/r">Release 1.0</a></strong><br>it is <strong>out</strong>`) {
		t.Fatalf("the embed's HTML: %q", got)
	}
	// A deletion on Discord redacts the message.
	doomed := fake.Message("delete me", nil)
	doomedEvt := w.message(ctx, portal, "delete me")
	fake.Dispatch("MESSAGE_DELETE", map[string]any{"id": doomed, "channel_id": fakediscord.ChannelID, "guild_id": fakediscord.GuildID})
	w.wait(ctx, portal, "the redaction", func(evt *event.Event) bool {
		return evt.Type == event.EventRedaction && evt.Redacts == doomedEvt.ID
	})
	// Typing on Discord.
	fake.Dispatch("TYPING_START", map[string]any{"user_id": fakediscord.BobID, "channel_id": fakediscord.ChannelID, "guild_id": fakediscord.GuildID,
		"timestamp": time.Now().Unix()})
	for !containsUser(w.typing[portal], ghost(fakediscord.BobID)) {
		if ctx.Err() != nil {
			t.Fatal("bob never typed on Matrix")
		}
		w.next(ctx)
	}

	// Carol, who has not said anything (her ghost is not in the room),
	// types: her ghost joins and types.
	fake.Dispatch("TYPING_START", map[string]any{"user_id": fakediscord.CarolID, "channel_id": fakediscord.ChannelID, "guild_id": fakediscord.GuildID,
		"timestamp": time.Now().Unix()})
	for !containsUser(w.typing[portal], ghost(fakediscord.CarolID)) {
		if ctx.Err() != nil {
			t.Fatal("carol never typed on Matrix")
		}
		w.next(ctx)
	}

	// Matrix → Discord: a reply, an edit, a reaction, a file.
	mine, err := alice.SendText(ctx, portal, "first draft")
	if err != nil {
		t.Fatal(err)
	}
	post := fake.Await("alice's post", func(c fakediscord.Call) bool { return c.Method == "POST" && c.JSON["content"] == "first draft" })
	if _, err := alice.SendMessageEvent(ctx, portal, event.EventMessage, &event.MessageEventContent{MsgType: event.MsgText,
		Body: "second draft", NewContent: &event.MessageEventContent{MsgType: event.MsgText, Body: "second draft"},
		RelatesTo: &event.RelatesTo{Type: event.RelReplace, EventID: mine.EventID}}); err != nil {
		t.Fatal(err)
	}
	edit := fake.Await("the edit", func(c fakediscord.Call) bool { return c.Method == "PATCH" })
	if edit.Path != "/webhooks/"+fakediscord.HookID+"/"+fakediscord.HookToken+"/messages/"+post.JSON["id"].(string) || edit.JSON["content"] != "second draft" {
		t.Fatalf("the edit: %v (post %v)", edit, post)
	}
	if _, err := alice.SendMessageEvent(ctx, portal, event.EventMessage, &event.MessageEventContent{MsgType: event.MsgText,
		Body: "replying", RelatesTo: &event.RelatesTo{InReplyTo: &event.InReplyTo{EventID: hello.ID}}}); err != nil {
		t.Fatal(err)
	}
	rp := fake.Await("the reply", func(c fakediscord.Call) bool {
		return c.Method == "POST" && strings.HasSuffix(fmt.Sprint(c.JSON["content"]), "replying")
	})
	if !strings.Contains(rp.JSON["content"].(string), "/channels/"+fakediscord.GuildID+"/"+fakediscord.ChannelID+"/"+first) {
		t.Fatalf("the reply does not point at its message: %v", rp)
	}
	if _, err := alice.SendReaction(ctx, portal, hello.ID, "🎉"); err != nil {
		t.Fatal(err)
	}
	fake.Await("the reaction", func(c fakediscord.Call) bool {
		return c.Method == "PUT" && c.Path == "/channels/"+fakediscord.ChannelID+"/messages/"+first+"/reactions/🎉/@me"
	})
	// Reacting with a custom emoji's image reacts with the custom emoji.
	if _, err := alice.SendReaction(ctx, portal, reply.ID, blob.Content.AsReaction().RelatesTo.Key); err != nil {
		t.Fatal(err)
	}
	fake.Await("the custom emoji reaction", func(c fakediscord.Call) bool {
		return c.Method == "PUT" && strings.HasSuffix(c.Path, "/reactions/blob:999/@me")
	})
	up, err := alice.UploadBytes(ctx, fakediscord.PNG, "image/png")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := alice.SendMessageEvent(ctx, portal, event.EventMessage, &event.MessageEventContent{MsgType: event.MsgImage,
		Body: "dog.png", URL: up.ContentURI.CUString(), Info: &event.FileInfo{MimeType: "image/png"}}); err != nil {
		t.Fatal(err)
	}
	file := fake.Await("the file", func(c fakediscord.Call) bool { return c.Method == "POST" && len(c.Files) > 0 })
	if file.Files[0] != "dog.png" || file.JSON["username"] != "Alice Liddell" {
		t.Fatalf("the file: %v", file)
	}
	// A Matrix sticker goes as its image, named for its type.
	if _, err := alice.SendMessageEvent(ctx, portal, event.EventSticker, &event.MessageEventContent{Body: "thumbs",
		URL: up.ContentURI.CUString(), Info: &event.FileInfo{MimeType: "image/png"}}); err != nil {
		t.Fatal(err)
	}
	sticker := fake.Await("the sticker", func(c fakediscord.Call) bool { return c.Method == "POST" && len(c.Files) > 0 })
	if sticker.Files[0] != "thumbs.png" {
		t.Fatalf("the sticker: %v", sticker)
	}
	// Typing on Matrix.
	if _, err := alice.UserTyping(ctx, portal, true, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	fake.Await("typing", func(c fakediscord.Call) bool {
		return c.Method == "POST" && c.Path == "/channels/"+fakediscord.ChannelID+"/typing"
	})
	// A redaction on Matrix deletes on Discord: alice's message through the
	// webhook. (Redacting a Discord user's message takes a Matrix power
	// level alice does not have in the portal.)
	if _, err := alice.RedactEvent(ctx, portal, mine.EventID); err != nil {
		t.Fatal(err)
	}
	fake.Await("the webhook message's deletion", func(c fakediscord.Call) bool {
		return c.Method == "DELETE" && c.Path == "/webhooks/"+fakediscord.HookID+"/"+fakediscord.HookToken+"/messages/"+post.JSON["id"].(string)
	})
	// Alice was never invited to the channel's room (nor in it before she
	// joined it: checked above).
	for _, r := range w.invites {
		if r == portal {
			t.Error("alice was invited to the channel's room")
		}
	}

	// Nothing of alice's came back as bob's or the webhook's ghost.
	for _, evt := range w.seen[portal] {
		if evt.Type == event.EventMessage && evt.Sender != alice.UserID && evt.Sender != ghost(fakediscord.BobID) {
			t.Errorf("%s said %q in the portal", evt.Sender, evt.Content.AsMessage().Body)
		}
	}

	// The token is revoked: the user is told, not left guessing.
	fake.Revoke()
	w.wait(ctx, mgmt, "a notice of the revoked token", func(evt *event.Event) bool {
		return evt.Sender == discordBot && strings.Contains(evt.Content.AsMessage().Body, "BAD_CREDENTIALS") &&
			strings.Contains(evt.Content.AsMessage().Body, "refused the bot token")
	})
}

// awaitPower waits for a user's power level in a room to be want.
func (w *watcher) awaitPower(ctx context.Context, room id.RoomID, user id.UserID, want int) {
	w.t.Helper()
	for powerOf(ctx, w.t, w.cli, room, user) != want {
		if ctx.Err() != nil {
			w.t.Fatalf("%s never had power %d in %s", user, want, room)
		}
		w.next(ctx)
	}
}

func containsUser(list []id.UserID, u id.UserID) bool {
	for _, x := range list {
		if x == u {
			return true
		}
	}
	return false
}
