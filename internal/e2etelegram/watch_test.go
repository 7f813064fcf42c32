package e2etelegram

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

// watcher follows a Matrix user's /sync and keeps every room event it saw.
type watcher struct {
	t       testing.TB
	cli     *mautrix.Client
	since   string
	seen    map[id.RoomID][]*event.Event
	invites []id.RoomID
	// inviteState is the stripped state of each invite.
	inviteState map[id.RoomID][]*event.Event
	logs        func() string
}

func newWatcher(t testing.TB, cli *mautrix.Client, logs func() string) *watcher {
	return &watcher{t: t, cli: cli, seen: map[id.RoomID][]*event.Event{}, logs: logs,
		inviteState: map[id.RoomID][]*event.Event{}}
}

// next runs one /sync long-poll.
func (w *watcher) next(ctx context.Context) {
	w.t.Helper()
	resp, err := w.cli.SyncRequest(ctx, 5000, w.since, `{"room":{"timeline":{"limit":500}}}`, false, "")
	if err != nil {
		if ctx.Err() != nil {
			return // the caller says what it waited for
		}
		w.t.Fatalf("/sync: %v", err)
	}
	w.since = resp.NextBatch
	for roomID, inv := range resp.Rooms.Invite {
		w.invites = append(w.invites, roomID)
		for _, evt := range inv.State.Events {
			_ = evt.Content.ParseRaw(evt.Type)
			w.inviteState[roomID] = append(w.inviteState[roomID], evt)
		}
	}
	for roomID, room := range resp.Rooms.Join {
		for _, evt := range append(room.State.Events, room.Timeline.Events...) {
			evt.RoomID = roomID
			_ = evt.Content.ParseRaw(evt.Type)
			w.seen[roomID] = append(w.seen[roomID], evt)
		}
	}
}

// wait returns the first event of the room matching pred, syncing until
// one arrives.
func (w *watcher) wait(ctx context.Context, roomID id.RoomID, what string, pred func(*event.Event) bool) *event.Event {
	w.t.Helper()
	for {
		for _, evt := range w.seen[roomID] {
			if pred(evt) {
				return evt
			}
		}
		if ctx.Err() != nil {
			w.t.Fatalf("waiting for %s in %s: %v\n%s", what, roomID, ctx.Err(), w.report())
		}
		w.next(ctx)
	}
}

// waitMessage waits for a message with the body.
func (w *watcher) waitMessage(ctx context.Context, roomID id.RoomID, body string) *event.Event {
	w.t.Helper()
	return w.wait(ctx, roomID, "message "+strconv.Quote(body), func(evt *event.Event) bool {
		return evt.Type == event.EventMessage && evt.Content.AsMessage().Body == body
	})
}

// roomNamed waits until the user is invited to or in a room with the
// name (the bridge may accept its invites for it, through double
// puppeting), and reports whether the room is a space.
func (w *watcher) roomNamed(ctx context.Context, name string) (roomID id.RoomID, space bool) {
	w.t.Helper()
	for {
		for _, states := range []map[id.RoomID][]*event.Event{w.inviteState, w.seen} {
			for r, state := range states {
				named := false
				space = false
				for _, evt := range state {
					switch evt.Type {
					case event.StateRoomName:
						named = named || evt.Content.AsRoomName().Name == name
					case event.StateCreate:
						space = evt.Content.AsCreate().Type == event.RoomTypeSpace
					}
				}
				if named {
					return r, space
				}
			}
		}
		if ctx.Err() != nil {
			w.t.Fatalf("no room named %q: %v\n%s", name, ctx.Err(), w.report())
		}
		w.next(ctx)
	}
}

// newRoom waits until the user is invited to or in a room other than
// known. The bridge accepts its invites for the user (double puppeting),
// and under load one /sync can bring both the invite and the join: such a
// room is only ever seen joined.
func (w *watcher) newRoom(ctx context.Context, what string, known ...id.RoomID) id.RoomID {
	w.t.Helper()
	for {
		for _, r := range w.invites {
			if !slices.Contains(known, r) {
				return r
			}
		}
		for r := range w.seen {
			if !slices.Contains(known, r) {
				return r
			}
		}
		if ctx.Err() != nil {
			w.t.Fatalf("no invite to or room for %s: %v\n%s", what, ctx.Err(), w.report())
		}
		w.next(ctx)
	}
}

// messageAnywhere waits for a message with the body in any room the user
// is in, and returns the room.
func (w *watcher) messageAnywhere(ctx context.Context, body string) (id.RoomID, *event.Event) {
	w.t.Helper()
	for {
		for r, evts := range w.seen {
			for _, evt := range evts {
				if evt.Type == event.EventMessage && evt.Content.AsMessage().Body == body {
					return r, evt
				}
			}
		}
		if ctx.Err() != nil {
			w.t.Fatalf("no message %q in any room: %v\n%s", body, ctx.Err(), w.report())
		}
		w.next(ctx)
	}
}

// report is what a failed wait shows, most telling first (CI keeps only
// the head and the tail of a long output): every message the watcher saw,
// by room, then the server log's warnings and errors (the plugin's
// included), the plugin's last lines, then the whole server log.
func (w *watcher) report() string {
	var b strings.Builder
	b.WriteString("messages seen:\n")
	for roomID, evts := range w.seen {
		for _, evt := range evts {
			if evt.Type == event.EventMessage {
				fmt.Fprintf(&b, "  %s %s %s: %q\n", roomID, evt.ID, evt.Sender, evt.Content.AsMessage().Body)
			}
		}
	}
	logs := w.logs()
	b.WriteString("server warnings and errors:\n")
	for line := range strings.Lines(logs) {
		if strings.Contains(line, `"level":"WARN"`) || strings.Contains(line, `"level":"ERROR"`) {
			b.WriteString("  " + line)
		}
	}
	// The plugin's last words (its debug lines, where the test asks for
	// them): what it was doing when the wait ran out.
	var plugin []string
	for line := range strings.Lines(logs) {
		if strings.Contains(line, `"plugin":"`) {
			plugin = append(plugin, line)
		}
	}
	b.WriteString("the plugin's last log lines:\n")
	for _, line := range plugin[max(0, len(plugin)-60):] {
		b.WriteString("  " + line)
	}
	b.WriteString("server log:\n" + logs)
	return b.String()
}
