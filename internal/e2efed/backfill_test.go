package e2efed

import (
	"fmt"
	"slices"
	"testing"

	"github.com/tidwall/gjson"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/federation/pdu"
	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/internal/pgtest"
	"github.com/tributary-hs/tributary/internal/testserver"
)

// history pages alice's /messages back from the end of the room until
// it ends, returning the message bodies oldest first, and whether the
// room's create event came.
func history(t *testing.T, cli *mautrix.Client, roomID id.RoomID) ([]string, bool) {
	t.Helper()
	var bodies []string
	create := false
	from := ""
	for range 20 {
		resp, err := cli.Messages(t.Context(), roomID, from, "", mautrix.DirectionBackward, nil, 15)
		if err != nil {
			t.Fatalf("messages: %v", err)
		}
		for _, ev := range resp.Chunk {
			if ev.Type == event.EventMessage {
				bodies = append(bodies, gjson.GetBytes(ev.Content.VeryRaw, "body").Str)
			}
			create = create || ev.Type == event.StateCreate
		}
		if resp.End == "" {
			slices.Reverse(bodies)
			return bodies, create
		}
		from = resp.End
	}
	t.Fatal("messages never ended")
	return nil, false
}

// alice joins a room of C with history: paging /messages back past her
// join, A fetches the earlier events from C (/backfill, the state at the
// oldest with /state_ids), checks and stores them as history, and serves
// them in order, down to the room's creation. They are not the room's
// forward extremities: alice's next message follows what came last. In a
// room whose history is visible to joined members only, alice sees none
// of what came before her.
func TestBackfillOnMessages(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) { backfillOnMessages(t, start(t)) })
	t.Run("postgres", func(t *testing.T) { backfillOnMessages(t, start(t, "--database-url", pgtest.URL(t))) })
}

func backfillOnMessages(t *testing.T, a *testserver.Server) {
	ctx := t.Context()
	alice := register(t, a, "alice")
	c := newFakeServer(t)
	h := c.host(t)
	carol := id.NewUserID("carol", c.name)
	empty := ""
	var want []string
	r := h.createRoom(id.RoomV11, carol, "public", "shared", func(r *hostedRoom) {
		for i := range 30 {
			body := fmt.Sprintf("old %d", i)
			want = append(want, body)
			h.add(r, carol, "m.room.message", nil, map[string]any{"msgtype": "m.text", "body": body})
			if i == 10 {
				h.add(r, carol, "m.room.topic", &empty, map[string]any{"topic": "midway"})
			}
		}
	})
	if _, err := alice.JoinRoomByID(ctx, r.roomID); err != nil {
		t.Fatal(err)
	}
	h.mu.Lock()
	last := h.add(r, carol, "m.room.message", nil, map[string]any{"msgtype": "m.text", "body": "new"})
	raw := r.raw[last]
	h.mu.Unlock()
	if res := c.sendTxn(t, a, raw); res[last].Error != "" {
		t.Fatalf("C's message: %+v", res)
	}
	waitForEvent(t, alice, r.roomID, last)

	got, create := history(t, alice, r.roomID)
	if !slices.Equal(got, append(slices.Clone(want), "new")) || !create {
		t.Fatalf("history alice pages through: %q (create event: %v)", got, create)
	}
	h.mu.Lock()
	asked := h.asked["backfill"]
	h.mu.Unlock()
	if asked == 0 {
		t.Fatal("C was not asked to backfill")
	}
	// A second pass reads what is stored.
	if again, _ := history(t, alice, r.roomID); !slices.Equal(again, got) {
		t.Fatalf("history the second time: %q", again)
	}
	h.mu.Lock()
	askedAgain := h.asked["backfill"]
	h.mu.Unlock()
	if askedAgain != asked {
		t.Fatalf("backfill asked again: %d then %d", asked, askedAgain)
	}
	// alice's message follows C's last, not the history.
	sent, err := alice.SendText(ctx, r.roomID, "hello")
	if err != nil {
		t.Fatal(err)
	}
	ev, err := c.client().GetEvent(ctx, a.Opts.ServerName, sent.EventID)
	if err != nil || len(ev.PDUs) != 1 {
		t.Fatalf("alice's message from A: %v", err)
	}
	if prev := gjson.GetBytes(ev.PDUs[0], "prev_events").Array(); len(prev) != 1 || prev[0].Str != last.String() {
		t.Fatalf("alice's message has prev_events %s, want [%s]", gjson.GetBytes(ev.PDUs[0], "prev_events").Raw, last)
	}

	// History visible to joined members only: nothing before the join.
	private := h.createRoom(id.RoomV11, carol, "public", "joined", func(r *hostedRoom) {
		for i := range 5 {
			h.add(r, carol, "m.room.message", nil, map[string]any{"msgtype": "m.text", "body": fmt.Sprintf("secret %d", i)})
		}
	})
	if _, err := alice.JoinRoomByID(ctx, private.roomID); err != nil {
		t.Fatal(err)
	}
	joinedState(t, alice, private.roomID)
	// A serves what it keeps of the room's state to servers in the room,
	// whatever the history visibility: C asks for the power levels.
	h.mu.Lock()
	plID := private.state[pdu.StateKey{Type: "m.room.power_levels"}]
	h.mu.Unlock()
	if got, err := c.client().GetEvent(ctx, a.Opts.ServerName, plID); err != nil || len(got.PDUs) != 1 {
		t.Fatalf("A's copy of the power levels: %v", err)
	}
	if got, _ := history(t, alice, private.roomID); len(got) != 0 {
		t.Fatalf("alice sees history from before she joined: %q", got)
	}
}
