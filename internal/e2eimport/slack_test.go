// Package e2eimport tests `tributary import` end to end: the real binary
// imports a generated export, then real clients read the rooms.
package e2eimport

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/internal/pgtest"
	"github.com/tributary-hs/tributary/internal/slackexport"
	"github.com/tributary-hs/tributary/internal/testserver"
)

func TestMain(m *testing.M) {
	code := m.Run()
	pgtest.StopShared()
	os.Exit(code)
}

const filesToken = "xoxb-test-token"

// fixture is a generated export and the Slack file host it points at.
type fixture struct {
	path string
	m    *slackexport.Manifest
	// api is the fake Slack Web API of the workspace (emoji.list: its
	// custom emoji :partyparrot:).
	api string
}

// partyParrot is the image of the workspace's custom emoji.
var partyParrot = []byte("GIF89a\x01\x00\x01\x00 the party parrot")

func newFixture(t *testing.T, messages int) *fixture {
	t.Helper()
	files := map[string]slackexport.File{}
	var host *httptest.Server
	host = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/emoji/partyparrot.gif" { // public, as emoji.slack-edge.com
			_, _ = w.Write(partyParrot)
			return
		}
		if strings.HasPrefix(r.URL.Path, "/avatars/") {
			w.Header().Set("Content-Type", "image/png")
			_, _ = w.Write(slackexport.Avatar(strings.TrimSuffix(strings.TrimPrefix(r.URL.Path, "/avatars/"), "-512.png")))
			return
		}
		if r.Header.Get("Authorization") != "Bearer "+filesToken {
			// What Slack does: its login page.
			w.Header().Set("Content-Type", "text/html")
			_, _ = w.Write([]byte("<html>sign in</html>"))
			return
		}
		if r.URL.Path == "/api/emoji.list" {
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(`{"ok":true,"emoji":{"partyparrot":"` + host.URL + `/emoji/partyparrot.gif","parrot_alias":"alias:partyparrot"}}`))
			return
		}
		fileID, _, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/files/"), "/")
		f, ok := files[fileID]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", f.Mimetype)
		_, _ = w.Write(slackexport.FileContent(f))
	}))
	t.Cleanup(host.Close)
	path := filepath.Join(t.TempDir(), "export.zip")
	m, err := slackexport.WriteFile(path, slackexport.Options{Seed: 42, Messages: messages, Record: true,
		FileBaseURL: host.URL + "/files/", AvatarBaseURL: host.URL + "/avatars/"})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range m.FileList {
		files[f.ID] = f
	}
	return &fixture{path: path, m: m, api: host.URL + "/api/"}
}

// db is where a test's server keeps its data: SQLite in the data directory,
// or a PostgreSQL database.
type db struct {
	name string
	url  string
}

func (d db) args() []string {
	if d.url == "" {
		return nil
	}
	return []string{"--database-url", d.url}
}

func databases(t *testing.T, fn func(t *testing.T, d db)) {
	t.Run("sqlite", func(t *testing.T) { fn(t, db{name: "sqlite"}) })
	t.Run("postgres", func(t *testing.T) { fn(t, db{name: "postgres", url: pgtest.URL(t)}) })
}

// cli runs tributary on a data directory; it returns the output and the
// exit code.
func cli(t *testing.T, dataDir string, d db, env []string, args ...string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	full := append(append([]string{}, args...), "--data-dir", dataDir, "--server-name", "localhost")
	full = append(full, d.args()...)
	cmd := exec.CommandContext(ctx, testserver.Binary(t), full...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return string(out), 0
	case errors.As(err, &ee):
		return string(out), ee.ExitCode()
	}
	t.Fatalf("tributary %v: %v", args, err)
	return "", -1
}

func mustCLI(t *testing.T, dataDir string, d db, args ...string) string {
	t.Helper()
	out, code := cli(t, dataDir, d, nil, args...)
	if code != 0 {
		t.Fatalf("tributary %v: exit %d\n%s", args, code, out)
	}
	return out
}

var importedRE = regexp.MustCompile(`Imported (\d+) messages \((\d+) events\)`)

// imported reads the summary's counts.
func imported(t *testing.T, out string) (messages, events int) {
	t.Helper()
	m := importedRE.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no summary in the output:\n%s", out)
	}
	messages, _ = strconv.Atoi(m[1])
	events, _ = strconv.Atoi(m[2])
	return
}

func ghost(slackID string) id.UserID {
	return id.UserID("@slack_t0gen0001-" + strings.ToLower(slackID) + ":localhost")
}

func tsMillis(ts string) int64 {
	sec, frac, _ := strings.Cut(ts, ".")
	s, _ := strconv.ParseInt(sec, 10, 64)
	f, _ := strconv.ParseInt((frac + "000000")[:6], 10, 64)
	return s*1000 + f/1000
}

// roomNamed finds a joined room by its name.
func roomNamed(t *testing.T, cli *mautrix.Client, name string) id.RoomID {
	t.Helper()
	rooms, err := cli.JoinedRooms(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rooms.JoinedRooms {
		var n event.RoomNameEventContent
		if err := cli.StateEvent(t.Context(), r, event.StateRoomName, "", &n); err == nil && n.Name == name {
			return r
		}
	}
	t.Fatalf("%s is in no room named %q (of %d)", cli.UserID, name, len(rooms.JoinedRooms))
	return ""
}

// history paginates a room from its end to its start.
func history(t *testing.T, cli *mautrix.Client, roomID id.RoomID) []*event.Event {
	t.Helper()
	var out []*event.Event
	from := ""
	for {
		resp, err := cli.Messages(t.Context(), roomID, from, "", mautrix.DirectionBackward, nil, 500)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, resp.Chunk...)
		if resp.End == "" || len(resp.Chunk) == 0 {
			break
		}
		from = resp.End
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out
}

// TestSlackImport: an export imported into a stopped server's data, then
// read by a client: every message of a channel with its sender and time,
// threads, edits, reactions and files; the person mapped to a Matrix user
// speaks as them; a second run imports nothing.
func TestSlackImport(t *testing.T) {
	fx := newFixture(t, 1500)
	databases(t, func(t *testing.T, d db) {
		dir := t.TempDir()
		mustCLI(t, dir, d, "user", "add", "ada", "--password", "ada's password")
		ada := fx.m.Users[0]
		userMap := filepath.Join(t.TempDir(), "users.txt")
		if err := os.WriteFile(userMap, []byte("# people already on Matrix\n"+strings.ToUpper(ada.Email)+" @ada:localhost\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		out := mustCLI(t, dir, d, "import", "slack", fx.path, "--files-token", filesToken, "--user-map", userMap,
			"--space", "Example Corp", "--batch", "300", "--slack-api-url", fx.api)
		if !strings.Contains(out, "1 custom emoji as images") {
			t.Errorf("the workspace's custom emoji is not carried as an image:\n%s", out)
		}
		msgs, evs := imported(t, out)
		if msgs != fx.m.Messages {
			t.Fatalf("imported %d messages of %d:\n%s", msgs, fx.m.Messages, out)
		}
		for _, want := range []string{"files no longer in the export", `unknown subtype`, "files uploaded"} {
			if !strings.Contains(out, want) {
				t.Errorf("the summary does not say %q:\n%s", want, out)
			}
		}
		again := mustCLI(t, dir, d, "import", "slack", fx.path, "--files-token", filesToken, "--user-map", userMap, "--slack-api-url", fx.api)
		if m, e := imported(t, again); m != 0 || e != 0 || !strings.Contains(again, fmt.Sprintf("%d messages were imported before", fx.m.Messages)) {
			t.Fatalf("a second run imported %d messages (%d events):\n%s", m, e, again)
		}

		srv := testserver.Start(t, testserver.Options{DataDir: dir, Args: append([]string{"--disable-rate-limits"}, d.args()...)})
		cli := srv.Client(t)
		if _, err := cli.Login(t.Context(), &mautrix.ReqLogin{Type: mautrix.AuthTypePassword,
			Identifier: mautrix.UserIdentifier{Type: mautrix.IdentifierTypeUser, User: "ada"}, Password: "ada's password",
			StoreCredentials: true}); err != nil {
			t.Fatal(err)
		}
		space := roomNamed(t, cli, "Example Corp")
		general := roomNamed(t, cli, "general")
		var parent event.SpaceParentEventContent
		if err := cli.StateEvent(t.Context(), general, event.StateSpaceParent, string(space), &parent); err != nil {
			t.Fatalf("general has no m.space.parent of the space: %v", err)
		}
		checkChannel(t, fx, cli, general, "C00200000", ada.ID)
		t.Logf("%s: %d events in all", d.name, evs)
	})
}

// checkChannel compares a channel's timeline with the messages written.
func checkChannel(t *testing.T, fx *fixture, cli *mautrix.Client, roomID id.RoomID, conv, mappedSlack string) {
	t.Helper()
	who := func(slackID string) id.UserID {
		if slackID == mappedSlack {
			return cli.UserID
		}
		return ghost(slackID)
	}
	tl := readTimeline(t, cli, roomID, true)
	msgs, edits, reactions, files := tl.msgs, tl.edits, tl.reactions, tl.files
	byTS := map[string]*event.Event{}
	checked, threads, edited, reacted := 0, 0, 0, 0
	for _, r := range fx.m.Records {
		if r.Conv != conv || (r.Subtype != "" && r.Subtype != "file_share") {
			continue
		}
		ev := msgs[msgKey{who(r.User), tsMillis(r.TS)}]
		if ev == nil {
			t.Fatalf("no message of %s at %s (%q)", who(r.User), r.TS, r.Text)
		}
		byTS[r.TS] = ev
		checked++
		mc := ev.Content.AsMessage()
		if r.ThreadTS != "" && r.ThreadTS != r.TS {
			root := byTS[r.ThreadTS]
			if root == nil {
				t.Fatalf("the thread start %s of %s was not imported first", r.ThreadTS, r.TS)
			}
			if mc.RelatesTo == nil || mc.RelatesTo.Type != event.RelThread || mc.RelatesTo.EventID != root.ID {
				t.Fatalf("reply %s (%s) is not in the thread of %s: %+v", r.TS, ev.ID, root.ID, mc.RelatesTo)
			}
			threads++
		}
		if r.Edited {
			e := edits[ev.ID]
			if e == nil || e.Sender != ev.Sender {
				t.Fatalf("edited message %s (%s) has no m.replace from its sender", r.TS, ev.ID)
			}
			if nc := e.Content.AsMessage().NewContent; nc == nil || nc.Body != mc.Body {
				t.Fatalf("the edit of %s does not carry the final text: %+v", r.TS, e.Content.Raw)
			}
			edited++
		}
		for _, re := range r.Reactions {
			for _, u := range re.Users {
				found := false
				for k := range reactions[ev.ID] {
					sender, key, _ := strings.Cut(k, "|")
					// The workspace's custom emoji is its image.
					if sender == string(who(u)) && (re.Name != "partyparrot" || strings.HasPrefix(key, "mxc://")) {
						found = true
					}
				}
				if !found {
					t.Fatalf("no reaction %s of %s on %s", re.Name, u, r.TS)
				}
				reacted++
			}
		}
	}
	if checked == 0 || threads == 0 || edited == 0 || reacted == 0 || files == 0 {
		t.Fatalf("checked %d messages, %d thread replies, %d edits, %d reactions, %d files: the export should have all",
			checked, threads, edited, reacted, files)
	}
	t.Logf("checked %d messages, %d thread replies, %d edits, %d reactions, %d files", checked, threads, edited, reacted, files)
}

// TestSlackImportResumes: a run that dies after writing a batch and before
// recording where it stood is run again: it goes on from there, and the
// channel holds every message once, threads, edits and reactions included.
func TestSlackImportResumes(t *testing.T) {
	fx := newFixture(t, 1200)
	databases(t, func(t *testing.T, d db) {
		dir := t.TempDir()
		mustCLI(t, dir, d, "user", "add", "ada", "--password", "ada's password")
		userMap := filepath.Join(t.TempDir(), "users.txt")
		if err := os.WriteFile(userMap, []byte(fx.m.Users[0].ID+",@ada:localhost\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		importResumes(t, dir, d, []string{"import", "slack", fx.path, "--no-avatars", "--files-token", filesToken,
			"--slack-api-url", fx.api, "--user-map", userMap, "--batch", "150"}, fx.m.Messages)
		srv := testserver.Start(t, testserver.Options{DataDir: dir, Args: append([]string{"--disable-rate-limits"}, d.args()...)})
		checkChannel(t, fx, loginAda(t, srv), roomNamed(t, loginAda(t, srv), "general"), "C00200000", fx.m.Users[0].ID)
	})
}

func loginAda(t *testing.T, srv *testserver.Server) *mautrix.Client {
	t.Helper()
	cli := srv.Client(t)
	if _, err := cli.Login(t.Context(), &mautrix.ReqLogin{Type: mautrix.AuthTypePassword,
		Identifier: mautrix.UserIdentifier{Type: mautrix.IdentifierTypeUser, User: "ada"}, Password: "ada's password",
		StoreCredentials: true}); err != nil {
		t.Fatal(err)
	}
	return cli
}

// TestSlackImportIntoRunningServer: with a server running on the data
// directory, the import goes through it: a client syncing meanwhile sees
// the new rooms and their history arrive, without a restart.
func TestSlackImportIntoRunningServer(t *testing.T) {
	fx := newFixture(t, 400)
	databases(t, func(t *testing.T, d db) {
		userMap := func(t *testing.T) string {
			p := filepath.Join(t.TempDir(), "users.txt")
			if err := os.WriteFile(p, []byte(fx.m.Users[0].ID+" @ada:localhost\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			return p
		}
		cli := importWhileRunning(t, d, fx.m.Messages, userMap, "import", "slack", fx.path, "--files-token", filesToken,
			"--slack-api-url", fx.api)
		// The rooms are the server's own now: a new sync lists them all,
		// and the channel reads as imported.
		again, err := cli.SyncRequest(t.Context(), 0, "", "", true, event.PresenceOnline)
		if err != nil {
			t.Fatal(err)
		}
		if len(again.Rooms.Join) < 2 {
			t.Fatalf("ada is in %d rooms after the import", len(again.Rooms.Join))
		}
		checkChannel(t, fx, cli, roomNamed(t, cli, "general"), "C00200000", fx.m.Users[0].ID)
	})
}

// TestSlackImportRefusesDamagedArchives: a truncated archive, or one whose
// day file is not JSON, is refused with one clear line before anything is
// written.
func TestSlackImportRefusesDamagedArchives(t *testing.T) {
	fx := newFixture(t, 300)
	raw, err := os.ReadFile(fx.path)
	if err != nil {
		t.Fatal(err)
	}
	truncated := filepath.Join(t.TempDir(), "truncated.zip")
	if err := os.WriteFile(truncated, raw[:len(raw)*2/3], 0o600); err != nil {
		t.Fatal(err)
	}
	notZip := filepath.Join(t.TempDir(), "notes.zip")
	if err := os.WriteFile(notZip, []byte("not a zip at all"), 0o600); err != nil {
		t.Fatal(err)
	}
	// A byte of a day file's compressed data flipped: its checksum fails.
	corrupt := filepath.Join(t.TempDir(), "corrupt.zip")
	flipped := append([]byte(nil), raw...)
	flipped[len(flipped)/2] ^= 0xff
	if err := os.WriteFile(corrupt, flipped, 0o600); err != nil {
		t.Fatal(err)
	}
	d := db{name: "sqlite"}
	for _, tc := range []struct{ name, path, want string }{
		{"truncated", truncated, "truncated"},
		{"not a zip", notZip, "not a zip archive"},
		{"corrupt", corrupt, "not a readable Slack export"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			out, code := cli(t, dir, d, nil, "import", "slack", tc.path)
			lines := strings.Split(strings.TrimSpace(out), "\n")
			if code == 0 || len(lines) != 1 || !strings.Contains(out, tc.want) {
				t.Fatalf("exit %d, want one line saying %q:\n%s", code, tc.want, out)
			}
			if _, err := os.Stat(filepath.Join(dir, "tributary.db")); err == nil {
				t.Fatal("a database was made for a refused archive")
			}
		})
	}
}
