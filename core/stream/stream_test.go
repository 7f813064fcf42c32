package stream

import (
	"context"
	"testing"

	"maunium.net/go/mautrix/id"
)

func woken(w *waiter) bool {
	select {
	case <-w.wake:
		return true
	default:
		return false
	}
}

func TestLocalWakesOnlyConcernedWaiters(t *testing.T) {
	n := NewLocal(Positions{})
	member, _ := n.register("@a:x", map[id.RoomID]bool{"!r": true}, n.Current())
	named, _ := n.register("@c:x", nil, n.Current())

	n.Publish(Change{Stream: Events, Pos: 1, RoomID: "!other"})
	if woken(member) || woken(named) {
		t.Fatal("a change in another room woke a waiter")
	}
	n.Publish(Change{Stream: Events, Pos: 2, RoomID: "!r"})
	if !woken(member) || woken(named) {
		t.Fatal("a change in the member's room woke the wrong waiters")
	}
	n.Publish(Change{Stream: ToDevice, Pos: 1, Users: []id.UserID{"@c:x"}})
	if !woken(named) {
		t.Fatal("a change naming the user did not wake them")
	}
	if c := n.Current(); c[Events] != 2 || c[ToDevice] != 1 {
		t.Fatalf("current = %v", c)
	}
	// Positions never go back.
	n.Publish(Change{Stream: Events, Pos: 1, RoomID: "!r"})
	if n.Current()[Events] != 2 {
		t.Fatal("an older position moved the stream back")
	}
}

func TestLocalWaitReturnsAtOnceWhenBehind(t *testing.T) {
	n := NewLocal(Positions{5})
	if !n.Wait(context.Background(), "@b:x", nil, Positions{}) {
		t.Fatal("a waiter whose token is behind slept")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if n.Wait(ctx, "@b:x", nil, n.Current()) {
		t.Fatal("a cancelled wait reported a wake-up")
	}
	if len(n.waiters) != 0 {
		t.Fatal("a cancelled waiter stayed registered")
	}
}

func TestLocalObserversSeeEveryChange(t *testing.T) {
	n := NewLocal(Positions{})
	var seen []Change
	n.Observe(func(c Change) { seen = append(seen, c) })
	n.Publish(Change{Stream: Typing, Pos: 5, RoomID: "!r"})
	n.Publish(Change{Stream: ToDevice, Pos: 1, Users: []id.UserID{"@a:x"}})
	if len(seen) != 2 || seen[0].Stream != Typing || seen[1].Users[0] != "@a:x" {
		t.Fatalf("observer saw %+v", seen)
	}
}
