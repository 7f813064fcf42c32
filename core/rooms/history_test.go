package rooms

import (
	"context"
	"slices"
	"testing"

	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/core/events"
	"github.com/tributary-hs/tributary/storage"
)

// History inserted backward (a bridge backfilling older messages) is the
// server's local history, off the room's graph: its events chain from the
// create event, never become forward extremities, and no later live event
// has one as a prev event — over federation, old messages would otherwise
// arrive as the newest.
func TestHistoryIsNeverAPrevEventOfLiveEvents(t *testing.T) {
	ctx := context.Background()
	s, store := newTestRooms(t)
	alice := id.UserID("@alice:example.org")
	roomID, err := s.CreateRoom(ctx, &CreateRequest{Creator: alice, Preset: "private_chat"})
	if err != nil {
		t.Fatal(err)
	}
	pduOf := func(eid id.EventID) *storage.Event {
		t.Helper()
		e, err := store.GetEvent(ctx, eid)
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	prevOf := func(eid id.EventID) []id.EventID {
		t.Helper()
		p, err := parsePDU(pduOf(eid))
		if err != nil {
			t.Fatal(err)
		}
		return p.PrevEvents
	}
	send := func(body string) id.EventID {
		t.Helper()
		eid, err := s.Send(ctx, &SendRequest{RoomID: roomID, Sender: alice, Type: "m.room.message",
			Content: []byte(`{"msgtype":"m.text","body":"` + body + `"}`)})
		if err != nil {
			t.Fatal(err)
		}
		return eid
	}
	history := func(bodies ...string) []id.EventID {
		t.Helper()
		var protos []*events.Proto
		for i, b := range bodies {
			protos = append(protos, &events.Proto{Type: "m.room.message", Sender: alice, OriginServerTS: int64(1000 + i),
				Content: map[string]any{"msgtype": "m.text", "body": b}})
		}
		ids, err := s.BatchSend(ctx, roomID, protos, BatchOptions{History: true})
		if err != nil {
			t.Fatal(err)
		}
		return ids
	}
	createID := id.EventID("")
	if st, err := store.CurrentStateEvent(ctx, roomID, "m.room.create", ""); err != nil {
		t.Fatal(err)
	} else {
		createID = st
	}

	m1 := send("m1")
	h := history("h1", "h2")
	older := history("h-1", "h0")
	if got := prevOf(h[0]); !slices.Equal(got, []id.EventID{createID}) {
		t.Errorf("first history event's prev_events = %v, want the create event %s", got, createID)
	}
	if got := prevOf(h[1]); !slices.Equal(got, []id.EventID{h[0]}) {
		t.Errorf("second history event's prev_events = %v, want %s", got, h[0])
	}
	if got := prevOf(older[0]); !slices.Equal(got, []id.EventID{createID}) {
		t.Errorf("older batch's first prev_events = %v, want the create event", got)
	}
	if ext, err := store.GetForwardExtremities(ctx, roomID); err != nil || !slices.Equal(ext, []id.EventID{m1}) {
		t.Fatalf("forward extremities after history = %v (%v), want [%s]", ext, err, m1)
	}
	m2 := send("m2")
	if got := prevOf(m2); !slices.Equal(got, []id.EventID{m1}) {
		t.Fatalf("live event after history has prev_events %v, want [%s]", got, m1)
	}
	if d1, d2 := pduOf(m1).Depth, pduOf(m2).Depth; d2 != d1+1 {
		t.Errorf("live depth went %d → %d across a history batch", d1, d2)
	}

	// A writer that reloads the room from storage (restart, idle release)
	// sees the same live end.
	s2, err := New(store, Options{ServerName: "example.org", Signer: s.opts.Signer})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Stop()
	history("h-3")
	m3, err := s2.Send(ctx, &SendRequest{RoomID: roomID, Sender: alice, Type: "m.room.message",
		Content: []byte(`{"msgtype":"m.text","body":"m3"}`)})
	if err != nil {
		t.Fatal(err)
	}
	if got := prevOf(m3); !slices.Equal(got, []id.EventID{m2}) {
		t.Fatalf("live event from a reloaded writer has prev_events %v, want [%s]", got, m2)
	}
}
