package outbound

import (
	"context"
	"log/slog"
	"slices"
	"testing"

	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/core/stream"
	"github.com/tributary-hs/tributary/storage"
)

// cursorStore keeps queue cursors; nothing else of Store is used.
type cursorStore struct {
	Store
	cursors map[string][]int64
}

func (c *cursorStore) QueueCursor(_ context.Context, cs storage.Consumer) ([]int64, error) {
	if p, ok := c.cursors[cs.ID]; ok {
		return slices.Clone(p), nil
	}
	return nil, storage.ErrNotFound
}

func (c *cursorStore) SetQueueCursor(_ context.Context, cs storage.Consumer, p []int64) error {
	c.cursors[cs.ID] = slices.Clone(p)
	return nil
}

// A server's cursor starts where the streams were when its user's join was
// published, not when the sender gets round to it: alice's typing right
// after D joined is D's, though published before the sender's loop took
// the join (TestOutboundReachesRemoteServer lost it so on a loaded
// machine: D never got a transaction).
func TestCursorStartsAtTheJoin(t *testing.T) {
	ctx := t.Context()
	n := stream.NewLocal(stream.Positions{})
	s := &Sender{store: &cursorStore{cursors: map[string][]int64{}}, notifier: n, log: slog.Default(),
		opts:    SenderOptions{ServerName: "a.example", FederatesWith: func(string) bool { return true }},
		servers: newServerCache(nil), cursors: map[string]stream.Positions{},
		changes: newPending[queuedChange](16), overflow: make(chan struct{}, 1)}
	s.seen = n.Current()
	n.Observe(s.observe)

	room := id.RoomID("!r:a.example")
	n.Publish(stream.Change{Stream: stream.Typing, Pos: 3, RoomID: room, Users: []id.UserID{"@alice:a.example"}})
	n.Publish(stream.Change{Stream: stream.Events, Pos: 10, RoomID: room, Users: []id.UserID{"@dave:d.example"}})
	n.Publish(stream.Change{Stream: stream.Typing, Pos: 4, RoomID: room, Users: []id.UserID{"@alice:a.example"}})
	// Only now does the sender's loop take the changes.
	for _, q := range s.changes.take() {
		if q.c.Stream == stream.Events {
			s.startCursors(ctx, q.c.Users, q.at)
		}
	}
	p, err := s.cursor(ctx, "d.example")
	if err != nil {
		t.Fatal(err)
	}
	if p[stream.Typing] != 3 || p[stream.Events] != 10 || p[stream.ToDevice] != 0 {
		t.Fatalf("D's cursor %v: want typing 3 (the change after its join is D's), events 10", p)
	}
}
