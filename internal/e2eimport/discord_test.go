package e2eimport

import (
	"cmp"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/internal/discordexport"
	"github.com/tributary-hs/tributary/internal/testserver"
)

// discordFixture is a generated DiscordChatExporter export and the CDN its
// files point at.
type discordFixture struct {
	dir string
	m   *discordexport.Manifest
}

func newDiscordFixture(t *testing.T, messages int) *discordFixture {
	t.Helper()
	cdn := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, ctype, ok := discordexport.Media(r.URL.Path)
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", ctype)
		_, _ = w.Write(body)
	}))
	t.Cleanup(cdn.Close)
	dir := filepath.Join(t.TempDir(), "export")
	m, err := discordexport.WriteDir(dir, discordexport.Options{Seed: 42, Messages: messages, Record: true,
		MediaBaseURL: cdn.URL})
	if err != nil {
		t.Fatal(err)
	}
	return &discordFixture{dir: dir, m: m}
}

func discordGhost(discordID string) id.UserID {
	return id.UserID("@discord_" + discordID + ":localhost")
}

func (fx *discordFixture) channel(name string) *discordexport.Channel {
	for _, c := range fx.m.Channels {
		if c.Name == name && c.ParentID == "" {
			return c
		}
	}
	panic("no channel " + name)
}

func (fx *discordFixture) userMap(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "users.txt")
	if err := os.WriteFile(p, []byte("# Discord people on Matrix\n"+fx.m.Users[0].ID+" @ada:localhost\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestDiscordImport: an export imported into a stopped server's data, then
// read by a client: the guild's space and its channel rooms recorded as the
// bridge's portals, every message of a channel and its threads with its
// sender and time, threads as m.thread at their starting message, replies,
// edits, reactions with their senders (custom emoji as images),
// attachments; the person mapped to a Matrix user speaks as them; a second
// run imports nothing.
func TestDiscordImport(t *testing.T) {
	fx := newDiscordFixture(t, 1500)
	databases(t, func(t *testing.T, d db) {
		dir := t.TempDir()
		mustCLI(t, dir, d, "user", "add", "ada", "--password", "ada's password")
		files, _ := filepath.Glob(filepath.Join(fx.dir, "*.json"))
		// Files and folders may be given; a file given twice is read once.
		out := mustCLI(t, dir, d, append([]string{"import", "discord", fx.dir, "--user-map", fx.userMap(t), "--batch", "300"},
			files[0])...)
		msgs, evs := imported(t, out)
		if msgs != fx.m.Messages {
			t.Fatalf("imported %d messages of %d:\n%s", msgs, fx.m.Messages, out)
		}
		for _, want := range []string{"files that could not be downloaded", "reactions whose people the export does not name",
			`unknown type "Call"`} {
			if !strings.Contains(out, want) {
				t.Errorf("the summary does not say %q:\n%s", want, out)
			}
		}
		if m := regexp.MustCompile(`\((\d+) custom emoji as images\)`).FindStringSubmatch(out); m == nil || m[1] == "0" {
			t.Errorf("no custom emoji as images:\n%s", out)
		}
		for _, bad := range []string{"thread start is not in the export", "messages the server refused", "replies to messages not in the export"} {
			if strings.Contains(out, bad) {
				t.Errorf("the summary says %q:\n%s", bad, out)
			}
		}
		again := mustCLI(t, dir, d, "import", "discord", fx.dir, "--user-map", fx.userMap(t))
		if m, e := imported(t, again); m != 0 || e != 0 || !strings.Contains(again, fmt.Sprintf("%d messages were imported before", fx.m.Messages)) {
			t.Fatalf("a second run imported %d messages (%d events):\n%s", m, e, again)
		}

		srv := testserver.Start(t, testserver.Options{DataDir: dir, Args: append([]string{"--disable-rate-limits"}, d.args()...)})
		cli := loginAda(t, srv)
		space := roomNamed(t, cli, fx.m.GuildName)
		general := roomNamed(t, cli, "general")
		var parent event.SpaceParentEventContent
		if err := cli.StateEvent(t.Context(), general, event.StateSpaceParent, string(space), &parent); err != nil {
			t.Fatalf("general has no m.space.parent of the space: %v", err)
		}
		// The rooms say which portals they are: bridgev2's keys.
		for room, want := range map[id.RoomID]string{space: "discord:*" + fx.m.GuildID, general: "discord:" + fx.channel("general").ID} {
			var create map[string]any
			if err := cli.StateEvent(t.Context(), room, event.StateCreate, "", &create); err != nil {
				t.Fatal(err)
			}
			if create["org.tributary.portal"] != want {
				t.Fatalf("room %s is portal %v, want %s", room, create["org.tributary.portal"], want)
			}
		}
		checkDiscordChannel(t, fx, cli, general, fx.channel("general"), fx.m.Users[0].ID)
		t.Logf("%s: %d events in all", d.name, evs)
	})
}

// checkDiscordChannel compares a room's timeline with the messages written
// to its channel's file and its threads' files.
func checkDiscordChannel(t *testing.T, fx *discordFixture, cli *mautrix.Client, roomID id.RoomID, ch *discordexport.Channel,
	mapped string) {
	t.Helper()
	who := func(discordID string) id.UserID {
		if discordID == mapped {
			return cli.UserID
		}
		return discordGhost(discordID)
	}
	tl := readTimeline(t, cli, roomID, false, event.EventMessage, event.EventSticker)
	msgs, edits, reactions, files := tl.msgs, tl.edits, tl.reactions, tl.files
	starters := map[string]string{} // thread ID → the message it starts at
	for _, c := range fx.m.Channels {
		if c.ParentID == ch.ID {
			starters[c.ID] = c.StarterID
		}
	}
	var recs []discordexport.Record
	for _, r := range fx.m.Records {
		if (r.Channel == ch.ID || r.ThreadParent == ch.ID) && (r.Type == "Default" || r.Type == "Reply" || r.Type == "ThreadCreated") {
			recs = append(recs, r)
		}
	}
	slices.SortFunc(recs, func(a, b discordexport.Record) int {
		return cmp.Or(cmp.Compare(len(a.ID), len(b.ID)), strings.Compare(a.ID, b.ID))
	})
	byID := map[string]*event.Event{}
	checked, threaded, replies, edited, reacted, custom := 0, 0, 0, 0, 0, 0
	for _, r := range recs {
		ev := msgs[msgKey{who(r.Author), r.Timestamp}]
		if ev == nil {
			t.Fatalf("no message of %s at %d (%s %q)", who(r.Author), r.Timestamp, r.Type, r.Content)
		}
		byID[r.ID] = ev
		checked++
		mc := ev.Content.AsMessage()
		if r.Type != "ThreadCreated" && r.Content != "" && mc.Body != r.Content && !strings.HasPrefix(mc.Body, r.Content+"\n> ") {
			t.Fatalf("message %s: body %q, want %q", r.ID, mc.Body, r.Content)
		}
		if r.ThreadParent != "" {
			root := byID[starters[r.Channel]]
			if root == nil {
				t.Fatalf("thread %s: its start %s was not imported first", r.Channel, starters[r.Channel])
			}
			if mc.RelatesTo == nil || mc.RelatesTo.Type != event.RelThread || mc.RelatesTo.EventID != root.ID {
				t.Fatalf("thread message %s (%s) is not in the thread of %s: %+v", r.ID, ev.ID, root.ID, mc.RelatesTo)
			}
			threaded++
		}
		if r.ReplyTo != "" {
			target := byID[r.ReplyTo]
			if target == nil {
				t.Fatalf("%s replies to %s, which was not imported first", r.ID, r.ReplyTo)
			}
			if mc.RelatesTo == nil || mc.RelatesTo.InReplyTo == nil || mc.RelatesTo.InReplyTo.EventID != target.ID {
				t.Fatalf("reply %s (%s) does not reply to %s: %+v", r.ID, ev.ID, target.ID, mc.RelatesTo)
			}
			replies++
		}
		if r.Edited != 0 {
			e := edits[ev.ID]
			if e == nil || e.Sender != ev.Sender || e.Timestamp != r.Edited {
				t.Fatalf("edited message %s (%s) has no m.replace from its sender at %d", r.ID, ev.ID, r.Edited)
			}
			if nc := e.Content.AsMessage().NewContent; nc == nil || nc.Body != mc.Body {
				t.Fatalf("the edit of %s does not carry the final text: %+v", r.ID, e.Content.Raw)
			}
			edited++
		}
		for _, re := range r.Reactions {
			for _, u := range re.Users {
				found := false
				for k := range reactions[ev.ID] {
					sender, rkey, _ := strings.Cut(k, "|")
					if sender != string(who(u)) {
						continue
					}
					if re.EmojiID == "" && rkey == re.Name {
						found = true
					}
					if re.EmojiID != "" && strings.HasPrefix(rkey, "mxc://localhost/") {
						found = true
						custom++
					}
				}
				if !found {
					t.Fatalf("no reaction %s of %s on %s (%s): %v", re.Name, u, r.ID, ev.ID, reactions[ev.ID])
				}
				reacted++
			}
		}
	}
	if checked == 0 || threaded == 0 || replies == 0 || edited == 0 || reacted == 0 || custom == 0 || files == 0 {
		t.Fatalf("checked %d messages, %d thread messages, %d replies, %d edits, %d reactions (%d custom), %d files: "+
			"the export should have all", checked, threaded, replies, edited, reacted, custom, files)
	}
	t.Logf("checked %d messages, %d thread messages, %d replies, %d edits, %d reactions (%d custom), %d files",
		checked, threaded, replies, edited, reacted, custom, files)
}

// TestDiscordImportResumes: a run that dies after writing a batch and
// before recording where it stood is run again: it goes on from there, and
// the channel holds every message once, threads, edits and reactions
// included.
func TestDiscordImportResumes(t *testing.T) {
	fx := newDiscordFixture(t, 1200)
	databases(t, func(t *testing.T, d db) {
		dir := t.TempDir()
		mustCLI(t, dir, d, "user", "add", "ada", "--password", "ada's password")
		importResumes(t, dir, d, []string{"import", "discord", fx.dir, "--no-avatars", "--user-map", fx.userMap(t), "--batch", "150"},
			fx.m.Messages)
		srv := testserver.Start(t, testserver.Options{DataDir: dir, Args: append([]string{"--disable-rate-limits"}, d.args()...)})
		cli := loginAda(t, srv)
		checkDiscordChannel(t, fx, cli, roomNamed(t, cli, "general"), fx.channel("general"), fx.m.Users[0].ID)
	})
}

// TestDiscordImportIntoRunningServer: with a server running on the data
// directory, the import goes through it: a client syncing meanwhile sees
// the new rooms and their history arrive, without a restart.
func TestDiscordImportIntoRunningServer(t *testing.T) {
	fx := newDiscordFixture(t, 600)
	databases(t, func(t *testing.T, d db) {
		cli := importWhileRunning(t, d, fx.m.Messages, fx.userMap, "import", "discord", fx.dir)
		checkDiscordChannel(t, fx, cli, roomNamed(t, cli, "general"), fx.channel("general"), fx.m.Users[0].ID)
	})
}

// TestDiscordImportRefusesDamagedFiles: a file cut short, or one that is
// not an export, is refused with one clear line before anything is written.
func TestDiscordImportRefusesDamagedFiles(t *testing.T) {
	fx := newDiscordFixture(t, 300)
	file := filepath.Join(fx.dir, fx.channel("general").File)
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	cut := filepath.Join(t.TempDir(), "cut.json")
	if err := os.WriteFile(cut, raw[:len(raw)*2/3], 0o600); err != nil {
		t.Fatal(err)
	}
	notExport := filepath.Join(t.TempDir(), "notes.json")
	if err := os.WriteFile(notExport, []byte(`["not", "an", "export"]`), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, path, want string }{
		{"cut short", cut, "not a readable DiscordChatExporter JSON export"},
		{"not an export", notExport, "not a JSON object"},
		{"missing", filepath.Join(t.TempDir(), "gone.json"), "no such file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			out, code := cli(t, dir, db{name: "sqlite"}, nil, "import", "discord", file, tc.path)
			lines := strings.Split(strings.TrimSpace(out), "\n")
			if code == 0 || len(lines) != 1 || !strings.Contains(out, tc.want) {
				t.Fatalf("exit %d, want one line saying %q:\n%s", code, tc.want, out)
			}
			if _, err := os.Stat(filepath.Join(dir, "tributary.db")); err == nil {
				t.Fatal("a database was made for a refused export")
			}
		})
	}
}
