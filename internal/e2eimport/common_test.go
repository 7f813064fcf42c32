package e2eimport

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/internal/testserver"
)

// What the Slack and Discord import tests share: reading a room's
// timeline back, a run killed halfway and resumed, and an import into a
// running server.

// msgKey names a message by its sender and time.
type msgKey struct {
	sender id.UserID
	ts     int64
}

// timeline is a room's history as the import tests compare it with an
// export: each message's first event (its text) by sender and time, the
// edit of each event, and each event's reactions ("sender|key").
type timeline struct {
	msgs      map[msgKey]*event.Event
	edits     map[id.EventID]*event.Event
	reactions map[id.EventID]map[string]bool
	// files counts the events of files in the media repository.
	files int
}

// readTimeline reads a room's history; a reaction there twice fails the
// test, and so does, with uniqueBodies, a message of the same sender,
// time and body twice. evTypes are the message event types (default
// m.room.message).
func readTimeline(t *testing.T, cli *mautrix.Client, roomID id.RoomID, uniqueBodies bool, evTypes ...event.Type) *timeline {
	t.Helper()
	if len(evTypes) == 0 {
		evTypes = []event.Type{event.EventMessage}
	}
	tl := &timeline{msgs: map[msgKey]*event.Event{}, edits: map[id.EventID]*event.Event{},
		reactions: map[id.EventID]map[string]bool{}}
	seen := map[string]bool{}
	for _, ev := range history(t, cli, roomID) {
		_ = ev.Content.ParseRaw(ev.Type)
		switch {
		case ev.Type == event.EventReaction:
			rel := ev.Content.AsReaction().RelatesTo
			if tl.reactions[rel.EventID] == nil {
				tl.reactions[rel.EventID] = map[string]bool{}
			}
			dup := string(ev.Sender) + "|" + rel.Key
			if tl.reactions[rel.EventID][dup] {
				t.Fatalf("reaction %s twice on %s", dup, rel.EventID)
			}
			tl.reactions[rel.EventID][dup] = true
		case isOneOf(ev.Type, evTypes):
			mc := ev.Content.AsMessage()
			if mc.RelatesTo != nil && mc.RelatesTo.Type == event.RelReplace {
				tl.edits[mc.RelatesTo.EventID] = ev
				continue
			}
			if uniqueBodies {
				dup := fmt.Sprintf("%s|%d|%s", ev.Sender, ev.Timestamp, mc.Body)
				if seen[dup] {
					t.Fatalf("message %q of %s at %d is there twice", mc.Body, ev.Sender, ev.Timestamp)
				}
				seen[dup] = true
			}
			if strings.HasPrefix(string(mc.URL), "mxc://localhost/") {
				tl.files++
			}
			k := msgKey{ev.Sender, ev.Timestamp}
			if tl.msgs[k] == nil {
				tl.msgs[k] = ev // the first part of a message: its text
			}
		}
	}
	return tl
}

func isOneOf(t event.Type, types []event.Type) bool {
	for _, u := range types {
		if t == u {
			return true
		}
	}
	return false
}

// importResumes runs an import (args, whose --batch makes several batches)
// that crashes after its third batch, then again, which must go on from
// there and import the rest of the export's total messages, then a third
// time, which must import nothing.
func importResumes(t *testing.T, dir string, d db, args []string, total int) {
	t.Helper()
	out, code := cli(t, dir, d, []string{"TRIBUTARY_IMPORT_CRASH_AFTER_BATCHES=3"}, append(args, "--workers", "1")...)
	if code != 3 || !strings.Contains(out, "crashing as asked") {
		t.Fatalf("the crashing run: exit %d\n%s", code, out)
	}
	out = mustCLI(t, dir, d, args...)
	msgs, _ := imported(t, out)
	before := regexp.MustCompile(`(\d+) messages were imported before`).FindStringSubmatch(out)
	if before == nil || msgs == 0 {
		t.Fatalf("the second run did not resume:\n%s", out)
	}
	if n, _ := strconv.Atoi(before[1]); n+msgs != total {
		t.Fatalf("%d messages found imported + %d imported != %d:\n%s", n, msgs, total, out)
	}
	if m, _ := imported(t, mustCLI(t, dir, d, args...)); m != 0 {
		t.Fatalf("a third run imported %d messages", m)
	}
}

// importWhileRunning starts a server, registers ada (in no room yet), and
// runs an import (args, with a --user-map file that userMap writes) of the
// export's total messages through it, while a sync of ada's waits: it must
// see the new rooms arrive. It returns ada's client.
func importWhileRunning(t *testing.T, d db, total int, userMap func(t *testing.T) string, args ...string) *mautrix.Client {
	t.Helper()
	srv := testserver.Start(t, testserver.Options{Args: append([]string{"--enable-registration", "--disable-rate-limits"},
		d.args()...)})
	cli := srv.Client(t)
	if _, err := cli.RegisterDummy(t.Context(), &mautrix.ReqRegister[any]{Username: "ada", Password: "ada's password"}); err != nil {
		t.Fatal(err)
	}
	cli = loginAda(t, srv)
	first, err := cli.SyncRequest(t.Context(), 0, "", "", true, event.PresenceOnline)
	if err != nil {
		t.Fatal(err)
	}
	if len(first.Rooms.Join) != 0 {
		t.Fatalf("ada is in %d rooms before the import", len(first.Rooms.Join))
	}
	// The next sync waits for what the import writes.
	synced := make(chan *mautrix.RespSync, 1)
	go func() {
		resp, err := cli.SyncRequest(t.Context(), 60_000, first.NextBatch, "", false, event.PresenceOnline)
		if err != nil {
			t.Error(err)
		}
		synced <- resp
	}()
	out := mustCLI(t, srv.DataDir, d, append(args, "--user-map", userMap(t))...)
	if !strings.Contains(out, "importing through it") {
		t.Fatalf("the import did not go through the running server:\n%s", out)
	}
	if m, _ := imported(t, out); m != total {
		t.Fatalf("imported %d of %d messages:\n%s", m, total, out)
	}
	resp := <-synced
	if resp == nil || len(resp.Rooms.Join) == 0 {
		t.Fatalf("the waiting sync saw no room: %+v", resp)
	}
	return cli
}
