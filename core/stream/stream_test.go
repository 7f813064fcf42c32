package stream

import (
	"context"
	"runtime"
	"testing"
	"time"

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
	member, _ := n.register(Interest{User: "@a:x", Rooms: map[id.RoomID]bool{"!r": true}}, n.Current())
	named, _ := n.register(Interest{User: "@c:x"}, n.Current())

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
	if !n.Wait(context.Background(), Interest{User: "@b:x"}, Positions{}) {
		t.Fatal("a waiter whose token is behind slept")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if n.Wait(ctx, Interest{User: "@b:x"}, n.Current()) {
		t.Fatal("a cancelled wait reported a wake-up")
	}
	if n.waiting() != 0 {
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

// A change naming several rooms wakes the waiters of each, once.
func TestLocalWakesEveryNamedRoom(t *testing.T) {
	n := NewLocal(Positions{})
	a, _ := n.register(Interest{User: "@a:x", Rooms: map[id.RoomID]bool{"!a": true, "!b": true}}, n.Current())
	b, _ := n.register(Interest{User: "@b:x", Rooms: map[id.RoomID]bool{"!b": true}}, n.Current())
	c, _ := n.register(Interest{User: "@c:x", Rooms: map[id.RoomID]bool{"!c": true}}, n.Current())
	n.Publish(Change{Stream: Presence, Pos: 1, Rooms: []id.RoomID{"!a", "!b"}, Users: []id.UserID{"@a:x"}})
	if !woken(a) || !woken(b) || woken(c) {
		t.Fatal("a change naming rooms !a and !b woke the wrong waiters")
	}
	if n.waiting() != 1 {
		t.Fatalf("%d waiters left, want the one of !c", n.waiting())
	}
}

// A waiter ignoring a stream is neither woken by its changes nor sent back
// at once when only that stream moved since its token.
func TestLocalIgnoredStreams(t *testing.T) {
	n := NewLocal(Positions{})
	in := Interest{User: "@a:x", Rooms: map[id.RoomID]bool{"!r": true}, Ignore: Streams(Presence, Typing)}
	w, _ := n.register(in, n.Current())
	n.Publish(Change{Stream: Presence, Pos: 1, Rooms: []id.RoomID{"!r"}, Users: []id.UserID{"@a:x"}})
	n.Publish(Change{Stream: Typing, Pos: 1, RoomID: "!r"})
	if woken(w) {
		t.Fatal("a change in an ignored stream woke the waiter")
	}
	n.Publish(Change{Stream: Events, Pos: 1, RoomID: "!r"})
	if !woken(w) {
		t.Fatal("an event in the room did not wake the waiter")
	}
	// Only ignored streams moved past the token: the wait sleeps.
	since := n.Current()
	n.Publish(Change{Stream: Presence, Pos: 2, Users: []id.UserID{"@b:x"}})
	if _, already := n.register(in, since); already {
		t.Fatal("a move of an ignored stream cut the wait short")
	}
	if _, already := n.register(Interest{User: "@a:x"}, since); !already {
		t.Fatal("a waiter that does not ignore presence slept past a newer position")
	}
}

// Current does not wait for a Publish that is still waking waiters (a
// message to a crowd's room wakes thousands): a /sync that only wants
// the positions does not queue behind it. The observer stands in for a
// long wake-up: it holds Publish until Current has answered.
func TestLocalCurrentDoesNotWaitForPublish(t *testing.T) {
	n := NewLocal(Positions{})
	inPublish, release := make(chan struct{}), make(chan struct{})
	n.Observe(func(c Change) {
		if c.Pos == 2 {
			close(inPublish)
			select {
			case <-release:
			case <-time.After(30 * time.Second):
			}
		}
	})
	n.Publish(Change{Stream: Events, Pos: 1, RoomID: "!r"})
	published := make(chan struct{})
	go func() {
		n.Publish(Change{Stream: Events, Pos: 2, RoomID: "!r"})
		close(published)
	}()
	<-inPublish
	got := make(chan Positions, 1)
	go func() { got <- n.Current() }()
	var p Positions
	select {
	case p = <-got:
	case <-published:
		t.Fatal("Current waited for Publish to end")
	}
	close(release)
	<-published
	if p[Events] < 1 || p[Events] > 2 {
		t.Fatalf("Current during Publish = %v", p)
	}
	if c := n.Current(); c[Events] != 2 {
		t.Fatalf("Current after Publish = %v", c)
	}
}

func TestLocalWaitUntilEndsAtItsDeadline(t *testing.T) {
	n := NewLocal(Positions{})
	if n.WaitUntil(context.Background(), Interest{User: "@b:x"}, n.Current(), time.Now().Add(20*time.Millisecond)) {
		t.Fatal("a wait that reached its deadline reported a wake-up")
	}
	if n.waiting() != 0 {
		t.Fatal("a waiter past its deadline stayed registered")
	}
	done := make(chan bool)
	go func() {
		done <- n.WaitUntil(context.Background(), Interest{User: "@b:x"}, n.Current(), time.Now().Add(time.Hour))
	}()
	for n.waiting() == 0 {
		runtime.Gosched() // until the waiter is registered
	}
	n.Publish(Change{Stream: Events, Pos: 1, Users: []id.UserID{"@b:x"}})
	if !<-done {
		t.Fatal("a change did not wake a wait with a deadline")
	}
}

// A user's waiters (several devices' long-polls) are a list: a change for
// the user wakes each that does not ignore it, whatever its place, and
// those left are still woken later; one given up leaves the others.
func TestLocalUserWaitersList(t *testing.T) {
	n := NewLocal(Positions{})
	u := id.UserID("@a:x")
	var ws []*waiter
	for _, ignore := range []StreamSet{Streams(Typing), 0, Streams(Typing), 0} {
		w, _ := n.register(Interest{User: u, Ignore: ignore}, n.Current())
		ws = append(ws, w)
	}
	other, _ := n.register(Interest{User: "@b:x"}, n.Current())
	n.giveUp(ws[1])
	if n.waiting() != 4 || !woken(ws[1]) || ws[1].woken {
		t.Fatalf("%d waiting after one gave up (want 4)", n.waiting())
	}
	n.Publish(Change{Stream: Typing, Pos: 1, Users: []id.UserID{u}})
	if woken(ws[0]) || woken(ws[2]) || !woken(ws[3]) || woken(other) {
		t.Fatalf("typing woke %v %v %v, other %v: want only the third", woken(ws[0]), woken(ws[2]), woken(ws[3]), woken(other))
	}
	n.Publish(Change{Stream: ToDevice, Pos: 1, Users: []id.UserID{u}})
	if !woken(ws[0]) || !woken(ws[2]) || woken(other) {
		t.Fatal("to-device did not wake the user's remaining waiters")
	}
	if n.waiting() != 1 || len(n.byUser) != 1 {
		t.Fatalf("%d waiting, %d users listed: want only the other user's", n.waiting(), len(n.byUser))
	}
}
