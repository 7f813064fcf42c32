package e2ediscord

import (
	"context"
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
)

// TestDiscordPluginActsOnImportedMessages: after `tributary import
// discord` (into the running server, Alice mapped to a Discord user of the
// export, who then logs in with that account's token), what either side
// does to an imported message reaches the other. From Matrix, Alice's
// edit (and her edit of Bob's message, which Discord refuses: she is
// told), reaction (and its redaction), redaction of a reaction the import
// wrote for her, reply and redaction of imported events are the Discord
// calls on those messages; from Discord, an edit, a reaction and its
// removal, the removal of an imported reaction and a deletion land on the
// imported events. bridgev2 knows no imported message: the plugin finds
// them through the SDK (FindMessage, QueueRemoteEvent). On SQLite and
// PostgreSQL.
func TestDiscordPluginActsOnImportedMessages(t *testing.T) {
	bin := pluginBinary(t)
	t.Run("sqlite", func(t *testing.T) { actsOnImported(t, bin) })
	t.Run("postgres", func(t *testing.T) { actsOnImported(t, bin, "--database-url", pgtest.URL(t)) })
}

func actsOnImported(t *testing.T, bin string, dbArgs ...string) {
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	const userToken = "user-token-of-an-imported-author"
	fake := fakediscord.New(t, botToken)
	export := filepath.Join(t.TempDir(), "export")
	m, err := discordexport.WriteDir(export, discordexport.Options{Seed: 18, Messages: 300, Channels: 2, Threads: 1,
		DMs: -1, Record: true})
	if err != nil {
		t.Fatal(err)
	}
	// A channel (not a thread), and in it: a plain message of Alice's (the
	// export's first person) and one of Bob's (anyone else), and imported
	// Unicode reactions, one of Alice's and one of someone else's, to other
	// messages.
	var aliceID string
	for _, u := range m.Users {
		if !u.IsBot {
			aliceID = u.ID
			break
		}
	}
	plain := func(r discordexport.Record) bool {
		return r.Type == "Default" && strings.TrimSpace(r.Content) != "" && r.Edited == 0 && r.ThreadParent == "" &&
			len(r.Attachments)+len(r.MissingAttachments)+len(r.Stickers)+r.Embeds == 0 && r.ReplyTo == ""
	}
	var channel *discordexport.Channel
	var mine, bobs discordexport.Record
	for _, c := range m.Channels {
		if c.ParentID != "" {
			continue
		}
		mine, bobs = discordexport.Record{}, discordexport.Record{}
		for _, r := range m.Records {
			if r.Channel != c.ID || !plain(r) {
				continue
			}
			if r.Author == aliceID && mine.ID == "" {
				mine = r
			} else if r.Author != aliceID && bobs.ID == "" && !isBot(m, r.Author) {
				bobs = r
			}
		}
		if mine.ID != "" && bobs.ID != "" {
			channel = c
			break
		}
	}
	if channel == nil {
		t.Fatal("the export has no channel with plain messages of two people")
	}
	skip := []string{mine.ID, bobs.ID}
	alicesReaction := importedReaction(t, m, channel.ID, func(u string) bool { return u == aliceID }, skip)
	othersReaction := importedReaction(t, m, channel.ID, func(u string) bool { return u != aliceID }, skip)

	var channels []any
	for _, c := range m.Channels {
		if c.ParentID == "" {
			channels = append(channels, map[string]any{"id": c.ID, "type": 0, "guild_id": m.GuildID, "name": c.Name, "topic": c.Topic})
		}
	}
	fake.SetGuild(m.GuildID, m.GuildName, channels, nil)
	haveHistory(fake, m)
	account := map[string]any{"id": aliceID, "username": "alice", "global_name": "Alice", "discriminator": "0"}
	fake.AllowUserTokenOf(userToken, account)

	cfgPath := writeConfig(t, bin, fake.URL())
	s := startServer(t, cfgPath, "", dbArgs...)
	alice := s.Register(t, &mautrix.ReqRegister[any]{Username: "alice", Password: "correct horse battery"})
	userMap := filepath.Join(t.TempDir(), "users.txt")
	if err := os.WriteFile(userMap, []byte(aliceID+" @alice:localhost\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.CommandContext(ctx, testserver.Binary(t), append([]string{"import", "discord", export, "--no-download",
		"--config", cfgPath, "--user-map", userMap, "--data-dir", s.DataDir, "--server-name", "localhost"}, dbArgs...)...).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "importing through it") {
		t.Fatalf("tributary import discord: %v\n%s", err, out)
	}

	w := &watcher{t: t, cli: alice, seen: map[id.RoomID][]*event.Event{}, typing: map[id.RoomID][]id.UserID{}}
	loginWith(ctx, t, alice, w, "user-token", userToken, "Logged in as alice (your Discord account)")
	// A live message of Bob's makes the plugin take the imported room.
	bob := map[string]any{"id": bobs.Author, "username": "bob-of-the-export", "discriminator": "0"}
	fake.Message("live in the imported channel", map[string]any{"channel_id": channel.ID, "guild_id": m.GuildID, "author": bob})
	space := w.inSpace(ctx, m.GuildName)
	room := w.importedRoom(ctx, alice, space, channel.ID)
	live := w.message(ctx, room, "live in the imported channel")
	myEvt := findImported(ctx, t, alice, room, live.ID, mine, alice.UserID)
	bobsEvt := findImported(ctx, t, alice, room, live.ID, bobs, ghost(bobs.Author))
	msgPath := "/channels/" + channel.ID + "/messages/"

	// Matrix → Discord, as Alice's account.
	edit := &event.MessageEventContent{MsgType: event.MsgText, Body: "* my imported words, edited"}
	edit.SetEdit(myEvt)
	edit.NewContent = &event.MessageEventContent{MsgType: event.MsgText, Body: "my imported words, edited"}
	if _, err := alice.SendMessageEvent(ctx, room, event.EventMessage, edit); err != nil {
		t.Fatal(err)
	}
	patch := fake.Await("the edit", func(c fakediscord.Call) bool { return c.Method == "PATCH" })
	if patch.Path != msgPath+mine.ID || patch.JSON["content"] != "my imported words, edited" {
		t.Fatalf("the edit: %v, want %s%s", patch, msgPath, mine.ID)
	}
	// Her account may not edit Bob's message: Discord refuses, and she is
	// told.
	edit = &event.MessageEventContent{MsgType: event.MsgText, Body: "* bob's words, as alice would have them"}
	edit.SetEdit(bobsEvt)
	edit.NewContent = &event.MessageEventContent{MsgType: event.MsgText, Body: "bob's words, as alice would have them"}
	refused, err := alice.SendMessageEvent(ctx, room, event.EventMessage, edit)
	if err != nil {
		t.Fatal(err)
	}
	if patch := fake.Await("the edit of Bob's message", func(c fakediscord.Call) bool { return c.Method == "PATCH" }); patch.Path != msgPath+bobs.ID {
		t.Fatalf("the edit of Bob's message: %v", patch)
	}
	w.wait(ctx, room, "a notice that the edit was not bridged", func(evt *event.Event) bool {
		mc := evt.Content.AsMessage()
		return evt.Sender == discordBot && mc.MsgType == event.MsgNotice && mc.RelatesTo != nil &&
			mc.RelatesTo.GetReplyTo() == refused.EventID && strings.Contains(mc.Body, "only a message's author")
	})
	reacted, err := alice.SendReaction(ctx, room, bobsEvt, "👍")
	if err != nil {
		t.Fatal(err)
	}
	fake.Await("the reaction", func(c fakediscord.Call) bool {
		return c.Method == "PUT" && c.Path == msgPath+bobs.ID+"/reactions/👍/@me"
	})
	if _, err := alice.RedactEvent(ctx, room, reacted.EventID); err != nil {
		t.Fatal(err)
	}
	fake.Await("the reaction's removal", func(c fakediscord.Call) bool {
		return c.Method == "DELETE" && c.Path == msgPath+bobs.ID+"/reactions/👍/@me"
	})
	// A reaction the import wrote for Alice, taken back on Matrix.
	aliceReactedTo := findImported(ctx, t, alice, room, live.ID, alicesReaction.rec, authorOf(alicesReaction.rec, aliceID, alice.UserID))
	importedOfAlice := testserver.FindReaction(ctx, t, alice, room, live.ID, aliceReactedTo, alice.UserID, alicesReaction.name)
	if _, err := alice.RedactEvent(ctx, room, importedOfAlice); err != nil {
		t.Fatal(err)
	}
	fake.Await("the imported reaction's removal", func(c fakediscord.Call) bool {
		return c.Method == "DELETE" && c.Path == msgPath+alicesReaction.rec.ID+"/reactions/"+alicesReaction.name+"/@me"
	})
	if _, err := alice.SendMessageEvent(ctx, room, event.EventMessage, &event.MessageEventContent{MsgType: event.MsgText,
		Body: "a reply to an imported message", RelatesTo: &event.RelatesTo{InReplyTo: &event.InReplyTo{EventID: bobsEvt}}}); err != nil {
		t.Fatal(err)
	}
	rp := fake.Await("the reply", func(c fakediscord.Call) bool {
		return c.Method == "POST" && c.JSON["content"] == "a reply to an imported message"
	})
	if ref, _ := rp.JSON["message_reference"].(map[string]any); ref == nil || ref["message_id"] != bobs.ID {
		t.Fatalf("the reply is not a Discord reply to %s: %v", bobs.ID, rp)
	}
	if _, err := alice.RedactEvent(ctx, room, myEvt); err != nil {
		t.Fatal(err)
	}
	fake.Await("the deletion", func(c fakediscord.Call) bool { return c.Method == "DELETE" && c.Path == msgPath+mine.ID })

	// Discord → Matrix: Bob edits his imported message, Carol reacts to it
	// and takes it back, someone removes an imported reaction, and Bob
	// deletes his message.
	fake.Dispatch("MESSAGE_UPDATE", map[string]any{"id": bobs.ID, "channel_id": channel.ID, "guild_id": m.GuildID,
		"content": "bob's imported words, edited on Discord", "type": 0, "author": bob,
		"edited_timestamp": time.Now().UTC().Format(time.RFC3339Nano), "timestamp": time.Now().UTC().Format(time.RFC3339Nano)})
	discordEdit := w.wait(ctx, room, "Bob's edit of his imported message", func(evt *event.Event) bool {
		rel := evt.Content.AsMessage().RelatesTo
		return evt.Type == event.EventMessage && rel != nil && rel.Type == event.RelReplace && rel.EventID == bobsEvt &&
			evt.Sender != alice.UserID // not her refused edit
	})
	if nc := discordEdit.Content.AsMessage().NewContent; nc == nil || nc.Body != "bob's imported words, edited on Discord" ||
		discordEdit.Sender != ghost(bobs.Author) {
		t.Fatalf("the edit from Discord: %s %+v", discordEdit.Sender, nc)
	}
	reaction := map[string]any{"user_id": fakediscord.CarolID, "message_id": bobs.ID, "channel_id": channel.ID,
		"guild_id": m.GuildID, "emoji": map[string]any{"name": "🎉"}}
	fake.Dispatch("MESSAGE_REACTION_ADD", reaction)
	carols := w.wait(ctx, room, "Carol's reaction to the imported message", func(evt *event.Event) bool {
		return evt.Type == event.EventReaction && evt.Sender == ghost(fakediscord.CarolID) &&
			evt.Content.AsReaction().RelatesTo.EventID == bobsEvt
	})
	fake.Dispatch("MESSAGE_REACTION_REMOVE", reaction)
	w.wait(ctx, room, "the redaction of Carol's reaction", func(evt *event.Event) bool {
		return evt.Type == event.EventRedaction && evt.Redacts == carols.ID
	})
	othersReactedTo := findImported(ctx, t, alice, room, live.ID, othersReaction.rec, authorOf(othersReaction.rec, aliceID, alice.UserID))
	importedOfOther := testserver.FindReaction(ctx, t, alice, room, live.ID, othersReactedTo, ghost(othersReaction.user), othersReaction.name)
	fake.Dispatch("MESSAGE_REACTION_REMOVE", map[string]any{"user_id": othersReaction.user, "message_id": othersReaction.rec.ID,
		"channel_id": channel.ID, "guild_id": m.GuildID, "emoji": map[string]any{"name": othersReaction.name}})
	w.wait(ctx, room, "the redaction of the imported reaction removed on Discord", func(evt *event.Event) bool {
		return evt.Type == event.EventRedaction && evt.Redacts == importedOfOther
	})
	fake.Dispatch("MESSAGE_DELETE", map[string]any{"id": bobs.ID, "channel_id": channel.ID, "guild_id": m.GuildID})
	w.wait(ctx, room, "the redaction of Bob's imported message", func(evt *event.Event) bool {
		return evt.Type == event.EventRedaction && evt.Redacts == bobsEvt
	})
}

func isBot(m *discordexport.Manifest, userID string) bool {
	for _, u := range m.Users {
		if u.ID == userID {
			return u.IsBot
		}
	}
	return false
}

// authorOf is who an imported message is from on Matrix: Alice for her
// Discord user's, a ghost for others'.
func authorOf(r discordexport.Record, aliceID string, alice id.UserID) id.UserID {
	if r.Author == aliceID {
		return alice
	}
	return ghost(r.Author)
}

// reactedWith is one imported reaction: user's, with the Unicode emoji
// name, to the message rec.
type reactedWith struct {
	rec        discordexport.Record
	user, name string
}

// importedReaction is a Unicode reaction the export has in a channel, by a
// user who, on a message of a person that is not one of skip's.
func importedReaction(t *testing.T, m *discordexport.Manifest, channel string, who func(string) bool, skip []string) reactedWith {
	t.Helper()
	for _, r := range m.Records {
		if r.Channel != channel || r.ThreadParent != "" || r.Edited != 0 || slices.Contains(skip, r.ID) || isBot(m, r.Author) {
			continue
		}
		for _, re := range r.Reactions {
			if re.EmojiID != "" {
				continue
			}
			for _, u := range re.Users {
				if who(u) {
					return reactedWith{rec: r, user: u, name: re.Name}
				}
			}
		}
	}
	t.Fatalf("the export has no such reaction in %s", channel)
	return reactedWith{}
}

// importedRoom joins the rooms of the space until it finds the one the
// import made for a channel, and returns it.
func (w *watcher) importedRoom(ctx context.Context, cli *mautrix.Client, space id.RoomID, channelID string) id.RoomID {
	w.t.Helper()
	tried := map[id.RoomID]bool{}
	for {
		for _, evt := range w.seen[space] {
			child := id.RoomID(evt.GetStateKey())
			if evt.Type != event.StateSpaceChild || len(evt.Content.VeryRaw) <= 2 || tried[child] {
				continue
			}
			tried[child] = true
			if _, err := cli.JoinRoomByID(ctx, child); err != nil {
				w.t.Fatalf("joining %s from the space: %v", child, err)
			}
			if portalOf(ctx, w.t, cli, child) == "discord:"+channelID {
				return child
			}
		}
		if ctx.Err() != nil {
			w.t.Fatalf("the space has no room of channel %s", channelID)
		}
		w.next(ctx)
	}
}

// findImported pages back from an event for the imported message rec sent
// as sender (its time) and returns its event ID.
func findImported(ctx context.Context, t *testing.T, cli *mautrix.Client, room id.RoomID, from id.EventID, rec discordexport.Record, sender id.UserID) id.EventID {
	t.Helper()
	evt := testserver.FindEarlier(ctx, t, cli, room, from, func(evt *event.Event) bool {
		rel := evt.Content.AsMessage().RelatesTo
		return evt.Type == event.EventMessage && evt.Timestamp == rec.Timestamp && evt.Sender == sender &&
			(rel == nil || rel.Type != event.RelReplace)
	})
	if evt == nil {
		t.Fatalf("the imported message %s (%s) is not in the room's history", rec.ID, sender)
	}
	return evt.ID
}
