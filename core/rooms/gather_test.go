package rooms

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/storage"
)

// commitLog records the size of each commit of events.
type commitLog struct {
	Store
	mu    sync.Mutex
	sizes []int
}

func (c *commitLog) PersistEvents(ctx context.Context, writes []*storage.EventWrite) error {
	err := c.Store.PersistEvents(ctx, writes)
	if err == nil {
		c.mu.Lock()
		c.sizes = append(c.sizes, len(writes))
		c.mu.Unlock()
	}
	return err
}

func (c *commitLog) since(n int) []int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]int(nil), c.sizes[n:]...)
}

func (c *commitLog) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.sizes)
}

// newGatherRoom is a room of alice and bob whose writer gathers for gather,
// with each having sent a message (both are active senders).
func newGatherRoom(t *testing.T, gather time.Duration) (*Service, *commitLog, id.RoomID) {
	t.Helper()
	ctx := context.Background()
	log := &commitLog{Store: openStore(t, "sqlite")}
	s := newTestRoomsOn(t, log, Options{GatherFor: gather})
	alice, bob := id.UserID("@alice:example.org"), id.UserID("@bob:example.org")
	roomID, err := s.CreateRoom(ctx, &CreateRequest{Creator: alice, Preset: "public_chat"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.ChangeMembership(ctx, &MembershipRequest{RoomID: roomID, Sender: bob, Target: bob, Membership: "join"}); err != nil {
		t.Fatal(err)
	}
	// One after the other: each batch carries one send, and none waits.
	for _, u := range []id.UserID{alice, bob} {
		if _, err := sendText(ctx, s, roomID, u, "hello"); err != nil {
			t.Fatal(err)
		}
	}
	return s, log, roomID
}

// When the room's last batch carried several sends, a batch that finds no
// commit in flight waits for the other active senders: alice's and bob's
// sends, made at the same time, are committed together.
func TestGatherWaitsForActiveSenders(t *testing.T) {
	ctx := context.Background()
	// A gather window far longer than the test may take: the sends meet
	// in one batch however the two goroutines are scheduled.
	s, log, roomID := newGatherRoom(t, time.Hour)
	w, err := s.acquire(roomID, nil)
	if err != nil {
		t.Fatal(err)
	}
	w.crowded = true // as after a batch of several (handed over with the requests below)
	s.release(w)
	before := log.count()
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	for _, u := range []id.UserID{"@alice:example.org", "@bob:example.org"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := sendText(ctx, s, roomID, u, "together")
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if got := log.since(before); fmt.Sprint(got) != "[2]" {
		t.Fatalf("commits of the two sends: %v, want one of both", got)
	}
}

// Senders who take turns never overlap: their batches carry one send each
// and none waits for the other, however recently they sent (a bridge
// sending for many users one after the other).
func TestGatherNeverHoldsTurns(t *testing.T) {
	ctx := context.Background()
	s, log, roomID := newGatherRoom(t, time.Hour)
	before := log.count()
	start := time.Now()
	for i := range 6 {
		u := id.UserID("@alice:example.org")
		if i%2 == 1 {
			u = "@bob:example.org"
		}
		if _, err := sendText(ctx, s, roomID, u, fmt.Sprint("turn ", i)); err != nil {
			t.Fatal(err)
		}
	}
	// A wait would last the hour of the gather window.
	if d := time.Since(start); d > time.Minute {
		t.Fatalf("six sends in turn took %v", d)
	}
	if got := log.since(before); fmt.Sprint(got) != "[1 1 1 1 1 1]" {
		t.Fatalf("commits: %v", got)
	}
}
