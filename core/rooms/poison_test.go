package rooms

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"

	"maunium.net/go/mautrix/federation"
	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/core/events"
	"github.com/tributary-hs/tributary/storage"
	"github.com/tributary-hs/tributary/storage/sqlite"
)

// poisonStore refuses to persist any batch holding an event whose JSON
// contains "poison" (as PostgreSQL refuses bytes SQLite stores), and can
// hold the writer inside PersistEvents so that later sends queue up and
// are committed as one batch.
type poisonStore struct {
	storage.Store
	gate    chan struct{} // closed: PersistEvents goes on
	entered chan struct{} // receives once per PersistEvents call while gated
	mu      sync.Mutex
	batches []int
}

func (p *poisonStore) PersistEvents(ctx context.Context, writes []*storage.EventWrite) error {
	select {
	case p.entered <- struct{}{}:
	default:
	}
	<-p.gate
	p.mu.Lock()
	p.batches = append(p.batches, len(writes))
	p.mu.Unlock()
	for _, w := range writes {
		if bytes.Contains(w.Event.JSON, []byte("poison")) {
			return errors.New("invalid byte sequence")
		}
	}
	return p.Store.PersistEvents(ctx, writes)
}

// An event the database refuses fails alone: the sends batched with it
// are committed.
func TestPoisonedEventFailsAlone(t *testing.T) {
	ctx := context.Background()
	base, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "rooms.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { base.Close() })
	store := &poisonStore{Store: base, gate: make(chan struct{}), entered: make(chan struct{}, 1)}
	close(store.gate)
	s, err := New(store, Options{ServerName: "example.org", Signer: events.NewSigner("example.org", federation.GenerateSigningKey())})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	alice := id.UserID("@alice:example.org")
	roomID, err := s.CreateRoom(ctx, &CreateRequest{Creator: alice, Preset: "private_chat"})
	if err != nil {
		t.Fatal(err)
	}

	// Hold the writer in the commit of a first message, queue the others
	// behind it, then let it go: they are served as one batch.
	store.gate = make(chan struct{})
	select { // drain what room creation left
	case <-store.entered:
	default:
	}
	first := make(chan error, 1)
	go func() { _, err := sendText(ctx, s, roomID, alice, "first"); first <- err }()
	<-store.entered
	const n = 20
	results := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			body := fmt.Sprintf("honest %d", i)
			if i == n/2 {
				body = "poison"
			}
			_, results[i] = sendText(ctx, s, roomID, alice, body)
		})
	}
	s.mu.Lock()
	w := s.writers[roomID]
	s.mu.Unlock()
	waitFor(t, "the sends to queue", func() bool { return len(w.reqs) == n })
	close(store.gate)
	wg.Wait()
	if err := <-first; err != nil {
		t.Fatalf("first send: %v", err)
	}
	for i, err := range results {
		if i == n/2 {
			if err == nil {
				t.Error("the poisoned send succeeded")
			}
		} else if err != nil {
			t.Errorf("honest send %d failed with the poisoned one: %v", i, err)
		}
	}
	store.mu.Lock()
	batched := false
	for _, b := range store.batches {
		batched = batched || b == n
	}
	store.mu.Unlock()
	if !batched {
		t.Fatalf("the sends were never committed as one batch (batches %v): the test proves nothing", store.batches)
	}
	evs, err := s.store.RoomEvents(ctx, roomID, 0, 0, false, 100)
	if err != nil {
		t.Fatal(err)
	}
	bodies := 0
	for _, e := range evs {
		if e.Type == "m.room.message" {
			bodies++
		}
	}
	if bodies != n { // first + n-1 honest
		t.Fatalf("%d messages stored, want %d", bodies, n)
	}
}
