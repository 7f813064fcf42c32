package rooms

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/core/types"
	"github.com/tributary-hs/tributary/storage"
)

func newIdleRooms(t *testing.T, idle time.Duration) (*Service, storage.Store) {
	t.Helper()
	return newTestRoomsWith(t, Options{WriterIdle: idle})
}

func (s *Service) writerCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.writers)
}

// waitFor polls cond until it holds (the writers retire on their own timers).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func sendText(ctx context.Context, s *Service, roomID id.RoomID, sender id.UserID, body string) (id.EventID, error) {
	return s.Send(ctx, &SendRequest{RoomID: roomID, Sender: sender, Type: "m.room.message",
		Content: []byte(fmt.Sprintf(`{"msgtype":"m.text","body":%q}`, body))})
}

// Rooms written once leave no writer goroutine behind after the idle
// period, and a later write reloads the room's state.
func TestIdleWritersRetire(t *testing.T) {
	ctx := context.Background()
	s, _ := newIdleRooms(t, 30*time.Millisecond)
	alice := id.UserID("@alice:example.org")
	// The same property at any size; 10,000 rooms take a minute under the
	// race detector (make test), so it checks 200 there and make bench's
	// BenchmarkIdleWriters checks 10,000 against the binary.
	n := 10000
	if testing.Short() || raceEnabled {
		n = 200
	}
	base := runtime.NumGoroutine()
	rooms := make([]id.RoomID, n)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	per := (n + 7) / 8
	for g := range 8 {
		wg.Go(func() {
			for i := g * per; i < min(n, (g+1)*per); i++ {
				roomID, err := s.CreateRoom(ctx, &CreateRequest{Creator: alice, Preset: "private_chat"})
				if err == nil {
					_, err = sendText(ctx, s, roomID, alice, "once")
				}
				if err != nil {
					errs <- err
					return
				}
				rooms[i] = roomID
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	waitFor(t, "every writer to retire", func() bool { return s.writerCount() == 0 })
	// Their goroutines are gone too (a few of the runtime's may come and go).
	waitFor(t, "the writer goroutines to end", func() bool { return runtime.NumGoroutine() <= base+4 })

	// A retired room takes writes again, from state reloaded from storage.
	name := "renamed after retiring"
	empty := ""
	if _, err := s.Send(ctx, &SendRequest{RoomID: rooms[0], Sender: alice, Type: "m.room.name", StateKey: &empty,
		Content: []byte(`{"name":"` + name + `"}`)}); err != nil {
		t.Fatal(err)
	}
	if _, err := sendText(ctx, s, rooms[0], alice, "again"); err != nil {
		t.Fatal(err)
	}
	if _, err := sendText(ctx, s, rooms[0], "@mallory:example.org", "not a member"); err == nil {
		t.Fatal("a non-member could send to a reloaded room")
	}
}

// Stopping the service while 16 senders write never panics; every write
// acknowledged is stored, and writes after the stop fail cleanly.
func TestStopUnderConcurrentSenders(t *testing.T) {
	ctx := context.Background()
	for round := range 5 {
		t.Run(fmt.Sprint("round ", round), func(t *testing.T) {
			s, store := newIdleRooms(t, time.Millisecond) // writers come and go all the time too
			alice := id.UserID("@alice:example.org")
			var rooms []id.RoomID
			for range 4 {
				roomID, err := s.CreateRoom(ctx, &CreateRequest{Creator: alice, Preset: "private_chat"})
				if err != nil {
					t.Fatal(err)
				}
				rooms = append(rooms, roomID)
			}
			var mu sync.Mutex
			var acked []id.EventID
			started := make(chan struct{}, 16)
			var wg sync.WaitGroup
			for g := range 16 {
				wg.Go(func() {
					for i := 0; ; i++ {
						eid, err := sendText(ctx, s, rooms[(g+i)%len(rooms)], alice, fmt.Sprintf("%d/%d", g, i))
						if err != nil {
							if me, ok := types.AsError(err); !ok || me.Status != 503 {
								t.Errorf("sender %d: a send failed other than by the shutdown: %v", g, err)
							}
							return
						}
						mu.Lock()
						acked = append(acked, eid)
						mu.Unlock()
						if i == 3 {
							started <- struct{}{}
						}
					}
				})
			}
			for range 16 {
				<-started
			}
			s.Stop()
			wg.Wait()
			if len(acked) < 16*4 {
				t.Fatalf("only %d sends acknowledged", len(acked))
			}
			got, err := store.GetEvents(ctx, acked)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(acked) {
				t.Fatalf("%d of %d acknowledged events are stored", len(got), len(acked))
			}
			if _, err := sendText(ctx, s, rooms[0], alice, "after stop"); err == nil {
				t.Fatal("a send after Stop succeeded")
			} else if !errors.As(err, new(*types.Error)) {
				t.Fatalf("a send after Stop: %v", err)
			}
			s.Stop() // twice is harmless
		})
	}
}
