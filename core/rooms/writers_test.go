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

// A send repeating a client transaction whose event the writer no longer
// remembers (it retired) gets that event, whether it comes alone or batched
// with other sends, and even when the sender could not send it any more:
// storage refuses the transaction at the commit, and the writer answers
// the stored event. Nothing is stored twice.
func TestRepeatedTxnAfterWriterRetired(t *testing.T) {
	ctx := context.Background()
	s, store := newIdleRooms(t, time.Millisecond)
	alice, bob := id.UserID("@alice:example.org"), id.UserID("@bob:example.org")
	roomID, err := s.CreateRoom(ctx, &CreateRequest{Creator: alice, Preset: "public_chat"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.ChangeMembership(ctx, &MembershipRequest{RoomID: roomID, Sender: bob, Target: bob, Membership: "join"}); err != nil {
		t.Fatal(err)
	}
	send := func(sender id.UserID, txn, body string) (id.EventID, error) {
		return s.Send(ctx, &SendRequest{RoomID: roomID, Sender: sender, DeviceID: "DEV", Type: "m.room.message", TxnID: txn,
			Content: []byte(fmt.Sprintf(`{"msgtype":"m.text","body":%q}`, body))})
	}
	first, err := send(bob, "t1", "once")
	if err != nil {
		t.Fatal(err)
	}
	retired := func() { waitFor(t, "the writer to retire", func() bool { return s.writerCount() == 0 }) }

	retired()
	if got, err := send(bob, "t1", "once"); err != nil || got != first {
		t.Fatalf("repeat alone: %s, %v; want %s", got, err, first)
	}

	// Batched: the repeat's commit fails, and each send is retried alone.
	retired()
	var wg sync.WaitGroup
	got := make([]id.EventID, 16)
	errs := make([]error, 16)
	for i := range 16 {
		wg.Go(func() {
			if i == 7 {
				got[i], errs[i] = send(bob, "t1", "once")
			} else {
				got[i], errs[i] = send(alice, fmt.Sprintf("a%d", i), fmt.Sprintf("other %d", i))
			}
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
	}
	if got[7] != first {
		t.Fatalf("batched repeat: %s, want %s", got[7], first)
	}

	// Bob left: a repeat still answers the event it made.
	if _, err := s.ChangeMembership(ctx, &MembershipRequest{RoomID: roomID, Sender: bob, Target: bob, Membership: "leave"}); err != nil {
		t.Fatal(err)
	}
	retired()
	if got, err := send(bob, "t1", "once"); err != nil || got != first {
		t.Fatalf("repeat after leaving: %s, %v; want %s", got, err, first)
	}

	evs, err := store.RoomEvents(ctx, roomID, 0, 0, false, 1000)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range evs {
		if e.Sender == bob && e.Type == "m.room.message" {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("bob's messages stored: %d, want 1", n)
	}
}
