package rooms

import (
	"context"
	"encoding/json/v2"
	"path/filepath"
	"testing"

	"maunium.net/go/mautrix/federation"
	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/core/events"
	"github.com/tributary-hs/tributary/storage"
	"github.com/tributary-hs/tributary/storage/sqlite"
)

func newTestRooms(t testing.TB) (*Service, storage.Store) {
	t.Helper()
	return newTestRoomsWith(t, Options{})
}

// newTestRoomsWith builds the service for example.org on a fresh SQLite
// database, with opts' other settings.
func newTestRoomsWith(t testing.TB, opts Options) (*Service, storage.Store) {
	t.Helper()
	store, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "rooms.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	return newTestRoomsOn(t, store, opts), store
}

// newTestRoomsOn builds the service for example.org on store, with opts'
// other settings.
func newTestRoomsOn(t testing.TB, store Store, opts Options) *Service {
	t.Helper()
	opts.ServerName = "example.org"
	opts.Signer = events.NewSigner("example.org", federation.GenerateSigningKey())
	s, err := New(store, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	return s
}

// When a room has several forward extremities (as federation will bring),
// the writer resolves their states before the next event, and that event
// references every extremity.
func TestWriterResolvesForkedExtremities(t *testing.T) {
	ctx := context.Background()
	s, store := newTestRooms(t)
	alice := id.UserID("@alice:example.org")
	name := "before the fork"
	roomID, err := s.CreateRoom(ctx, &CreateRequest{Creator: alice, Preset: "public_chat", Name: &name})
	if err != nil {
		t.Fatal(err)
	}
	empty := ""
	topicA, err := s.Send(ctx, &SendRequest{RoomID: roomID, Sender: alice, Type: "m.room.topic", StateKey: &empty,
		Content: []byte(`{"topic":"branch A"}`)})
	if err != nil {
		t.Fatal(err)
	}
	// Branch B: an event built on the same parent as topic A, persisted
	// directly as a second extremity.
	aEv, err := store.GetEvent(ctx, topicA)
	if err != nil {
		t.Fatal(err)
	}
	aPDU, err := parsePDU(aEv)
	if err != nil {
		t.Fatal(err)
	}
	rv := events.DefaultRoomVersion
	b, _, err := s.opts.Signer.Build(rv, roomID, &events.Proto{Type: "m.room.name", StateKey: &empty, Sender: alice,
		Content: map[string]any{"name": "branch B"}, OriginServerTS: aPDU.OriginServerTS + 1},
		aPDU.PrevEvents, aPDU.AuthEvents, aPDU.Depth, nil)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := json.Marshal(b)
	prevEv, err := store.GetEvent(ctx, aPDU.PrevEvents[0])
	if err != nil {
		t.Fatal(err)
	}
	gid, err := store.ReserveStateGroupIDs(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	bid := b.InternalMeta.EventID
	err = store.PersistEvents(ctx, []*storage.EventWrite{{
		Event: &storage.Event{EventID: bid, RoomID: roomID, Type: b.Type, StateKey: b.StateKey,
			Sender: alice, OriginServerTS: b.OriginServerTS, Depth: b.Depth, JSON: raw, StateGroup: gid},
		NewGroup: &storage.StateGroup{GroupID: gid, RoomID: roomID, PrevGroup: prevEv.StateGroup, ChainLen: 1,
			Entries: []storage.StateEntry{{Type: "m.room.name", StateKey: "", EventID: bid}}},
		Extremities: []id.EventID{topicA, bid},
	}})
	if err != nil {
		t.Fatal(err)
	}

	// A new service (a restart) loads the fork and resolves it.
	s2, err := New(store, Options{ServerName: "example.org", Signer: s.opts.Signer})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Stop()
	msg, err := s2.Send(ctx, &SendRequest{RoomID: roomID, Sender: alice, Type: "m.room.message",
		Content: []byte(`{"msgtype":"m.text","body":"after the fork"}`)})
	if err != nil {
		t.Fatal(err)
	}
	ps, err := s2.loadPDUs(ctx, []id.EventID{msg})
	if err != nil || ps[0] == nil {
		t.Fatal(err)
	}
	if len(ps[0].PrevEvents) != 2 {
		t.Fatalf("event after the fork has prev_events %v, want both extremities", ps[0].PrevEvents)
	}
	st, err := s2.State(ctx, roomID, alice)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, ev := range st {
		var c map[string]string
		_ = json.Unmarshal(ev.Content, &c)
		got[ev.Type] = c["name"] + c["topic"]
	}
	if got["m.room.name"] != "branch B" || got["m.room.topic"] != "branch A" {
		t.Fatalf("resolved state: name %q topic %q", got["m.room.name"], got["m.room.topic"])
	}
}
