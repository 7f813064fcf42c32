package rooms

import (
	"bytes"
	"context"
	"encoding/json/jsontext"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/tidwall/gjson"

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

// poisonRoom is a room service on base behind a poisonStore (its gate
// open), and a private room alice created in it.
func poisonRoom(t *testing.T, base storage.Store) (*poisonStore, *Service, id.UserID, id.RoomID) {
	t.Helper()
	store := &poisonStore{Store: base, gate: make(chan struct{}), entered: make(chan struct{}, 1)}
	close(store.gate)
	s, err := New(store, Options{ServerName: "example.org", Signer: events.NewSigner("example.org", federation.GenerateSigningKey())})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	alice := id.UserID("@alice:example.org")
	roomID, err := s.CreateRoom(context.Background(), &CreateRequest{Creator: alice, Preset: "private_chat"})
	if err != nil {
		t.Fatal(err)
	}
	return store, s, alice, roomID
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
	store, s, alice, roomID := poisonRoom(t, base)

	// Hold the writer on a first request, queue the others behind it, then
	// let it go: they are served as one batch.
	release, held := holdWriter(ctx, t, s, roomID, alice)
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
	close(release)
	wg.Wait()
	if err := <-held; err == nil {
		t.Fatal("the holding request was stored")
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
	if bodies != n-1 { // the honest ones
		t.Fatalf("%d messages stored, want %d", bodies, n)
	}
}

// holdWriter hands the room's writer a request whose check waits for
// release and then refuses it: requests sent meanwhile queue behind it.
// held gets the request's outcome.
func holdWriter(ctx context.Context, t *testing.T, s *Service, roomID id.RoomID, sender id.UserID) (release chan struct{}, held <-chan error) {
	t.Helper()
	release, entered := make(chan struct{}), make(chan struct{})
	out := make(chan error, 1)
	go func() {
		res := s.queue(ctx, roomID, &sendReq{
			proto: &events.Proto{Type: "m.room.message", Sender: sender, Content: jsontext.Value(`{"msgtype":"m.text","body":"hold"}`)},
			check: func(*batchState) error {
				close(entered)
				<-release
				return errors.New("held")
			},
		})
		out <- res.err
	}()
	select {
	case <-entered:
	case <-time.After(20 * time.Second):
		t.Fatal("the writer never took the holding request")
	}
	return release, out
}

// sendAll sends each body from its own goroutine; results come back in
// order once all are answered (wait).
func sendAll(ctx context.Context, s *Service, roomID id.RoomID, sender id.UserID, bodies []string) (wait func() ([]id.EventID, []error)) {
	ids, errs := make([]id.EventID, len(bodies)), make([]error, len(bodies))
	var wg sync.WaitGroup
	for i, body := range bodies {
		wg.Go(func() { ids[i], errs[i] = sendText(ctx, s, roomID, sender, body) })
	}
	return func() ([]id.EventID, []error) {
		wg.Wait()
		return ids, errs
	}
}

// The writer builds the next batch while one is being committed. When the
// commit fails, the batch built on top of it is not stored on events that
// never were: it is built again on what storage holds. Every send answered
// with an event ID finds it stored, and the room's events form one chain
// whose prev events all exist.
func TestPipelinedBatchAfterFailedCommit(t *testing.T) {
	for _, db := range []string{"sqlite", "postgres"} {
		t.Run(db, func(t *testing.T) {
			ctx := context.Background()
			base := openStore(t, db)
			store, s, alice, roomID := poisonRoom(t, base)
			s.mu.Lock()
			w := s.writers[roomID]
			s.mu.Unlock()
			store.gate = make(chan struct{})
			select { // drain what room creation left
			case <-store.entered:
			default:
			}

			// Batch A, with a poisoned event, goes to storage as one batch
			// and is held in its commit.
			release, held := holdWriter(ctx, t, s, roomID, alice)
			waitA := sendAll(ctx, s, roomID, alice, []string{"a0", "a1", "poison", "a3", "a4"})
			waitFor(t, "batch A to queue", func() bool { return len(w.reqs) == 5 })
			close(release)
			if err := <-held; err == nil {
				t.Fatal("the holding request was stored")
			}
			select {
			case <-store.entered:
			case <-time.After(20 * time.Second):
				t.Fatal("batch A never reached storage")
			}

			// Batch B is taken by the writer while A is in flight: it is
			// built on A.
			release, held = holdWriter(ctx, t, s, roomID, alice)
			waitB := sendAll(ctx, s, roomID, alice, []string{"b0", "b1", "b2", "b3", "b4"})
			waitFor(t, "batch B to queue", func() bool { return len(w.reqs) == 5 })
			close(release)
			if err := <-held; err == nil {
				t.Fatal("the holding request was stored")
			}
			waitFor(t, "the writer to take batch B", func() bool { return len(w.reqs) == 0 })

			// A fails in its commit.
			close(store.gate)
			idsA, errsA := waitA()
			idsB, errsB := waitB()
			var acked []id.EventID
			for i, err := range errsA {
				if i == 2 {
					if err == nil {
						t.Error("the poisoned send succeeded")
					}
					continue
				}
				if err != nil {
					t.Errorf("send a%d failed with the poisoned one: %v", i, err)
				}
				acked = append(acked, idsA[i])
			}
			for i, err := range errsB {
				if err != nil {
					t.Errorf("send b%d failed after the failed batch: %v", i, err)
				}
				acked = append(acked, idsB[i])
			}
			store.mu.Lock()
			batched := slices.Contains(store.batches, 5)
			store.mu.Unlock()
			if !batched {
				t.Fatalf("batch A never went to storage as one (batches %v): the test proves nothing", store.batches)
			}

			stored, err := s.store.GetEvents(ctx, acked)
			if err != nil {
				t.Fatal(err)
			}
			if len(stored) != len(acked) {
				t.Fatalf("%d of %d acknowledged events stored", len(stored), len(acked))
			}
			evs, err := s.store.RoomEvents(ctx, roomID, 0, 0, false, 100)
			if err != nil {
				t.Fatal(err)
			}
			have := map[id.EventID]bool{}
			for _, e := range evs {
				have[e.EventID] = true
			}
			messages := 0
			for _, e := range evs {
				if e.Type == "m.room.message" {
					messages++
				}
				for _, prev := range gjson.GetBytes(e.JSON, "prev_events").Array() {
					if !have[id.EventID(prev.Str)] {
						t.Errorf("event %s (depth %d) follows %s, which is not stored", e.EventID, e.Depth, prev.Str)
					}
				}
			}
			if messages != len(acked) {
				t.Errorf("%d messages stored, want the %d acknowledged", messages, len(acked))
			}
			ext, err := s.store.GetForwardExtremities(ctx, roomID)
			if err != nil {
				t.Fatal(err)
			}
			if len(ext) != 1 || !have[ext[0]] {
				t.Errorf("forward extremities %v, want one stored event", ext)
			}
			// The writer goes on from there.
			if _, err := sendText(ctx, s, roomID, alice, "after"); err != nil {
				t.Fatalf("send after: %v", err)
			}
		})
	}
}
