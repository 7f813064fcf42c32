package e2etelegram

import (
	"context"
	"strconv"
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
	logs    func() string
}

func newWatcher(t testing.TB, cli *mautrix.Client, logs func() string) *watcher {
	return &watcher{t: t, cli: cli, seen: map[id.RoomID][]*event.Event{}, logs: logs}
}

// next runs one /sync long-poll.
func (w *watcher) next(ctx context.Context) {
	w.t.Helper()
	resp, err := w.cli.SyncRequest(ctx, 5000, w.since, `{"room":{"timeline":{"limit":500}}}`, false, "")
	if err != nil {
		w.t.Fatalf("/sync: %v", err)
	}
	w.since = resp.NextBatch
	for roomID := range resp.Rooms.Invite {
		w.invites = append(w.invites, roomID)
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
			w.t.Fatalf("waiting for %s in %s: %v; server log:\n%s", what, roomID, ctx.Err(), w.logs())
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

// waitInvite returns the first invite not in skip.
func (w *watcher) waitInvite(ctx context.Context, skip ...id.RoomID) id.RoomID {
	w.t.Helper()
	for {
		for _, r := range w.invites {
			found := false
			for _, s := range skip {
				found = found || s == r
			}
			if !found {
				return r
			}
		}
		if ctx.Err() != nil {
			w.t.Fatalf("no invite: %v; server log:\n%s", ctx.Err(), w.logs())
		}
		w.next(ctx)
	}
}
