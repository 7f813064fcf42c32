package stream

import (
	"context"
	"runtime"
	"testing"
	"time"

	"maunium.net/go/mautrix/id"
)

// TestLaneWakesAFewAtATime: a change that concerns many waiters in a lane
// wakes as many as it has places; each place given back wakes the next,
// first woken first.
func TestLaneWakesAFewAtATime(t *testing.T) {
	n := NewLocal(Positions{})
	lane := NewLane(2)
	room := map[id.RoomID]bool{"!r": true}
	var ws []*waiter
	for i := range 5 {
		w, already := n.register(Interest{User: id.UserID("@u" + string(rune('a'+i)) + ":x"), Rooms: room, Lane: lane},
			n.Current())
		if already {
			t.Fatal("registered as behind")
		}
		ws = append(ws, w)
	}
	n.Publish(Change{Stream: Events, Pos: 1, RoomID: "!r"})
	awake := func() (k int) {
		for _, w := range ws {
			if woken(w) {
				k++
			}
		}
		return k
	}
	if k := awake(); k != 2 {
		t.Fatalf("%d waiters woken at once, want the lane's 2", k)
	}
	if q := lane.queued(); q != 3 {
		t.Fatalf("%d queued, want 3", q)
	}
	for want := 3; want <= 5; want++ {
		lane.Leave()
		if k := awake(); k != want {
			t.Fatalf("after a place was given back: %d woken, want %d", k, want)
		}
	}
	// The last two woken hold the lane's two places: a newcomer waits.
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
	defer cancel()
	if err := lane.Enter(ctx); err == nil {
		t.Fatal("entered a full lane")
	}
	if q := lane.queued(); q != 0 {
		t.Fatalf("a cancelled Enter stayed queued (%d)", q)
	}
}

// TestLaneWaitInLane: WaitInLane returns with a place; a waiter whose
// request ends while it is queued leaves without one, and its turn passes
// to the next.
func TestLaneWaitInLane(t *testing.T) {
	n := NewLocal(Positions{})
	lane := NewLane(1)
	if err := lane.Enter(t.Context()); err != nil { // the only place, held
		t.Fatal(err)
	}
	room := map[id.RoomID]bool{"!r": true}
	ctx, cancel := context.WithCancel(t.Context())
	gone := make(chan error)
	go func() {
		_, err := n.WaitInLane(ctx, Interest{User: "@gone:x", Rooms: room}, Positions{}, time.Time{}, lane)
		gone <- err
	}()
	stays := make(chan bool)
	go func() {
		woken, err := n.WaitInLane(t.Context(), Interest{User: "@stays:x", Rooms: room}, Positions{}, time.Time{}, lane)
		stays <- woken && err == nil
	}()
	for n.waiting() != 2 {
		runtime.Gosched()
	}
	n.Publish(Change{Stream: Events, Pos: 1, RoomID: "!r"})
	for lane.queued() != 2 {
		runtime.Gosched()
	}
	cancel()
	if err := <-gone; err == nil {
		t.Fatal("a waiter whose request ended returned with a place")
	}
	select {
	case <-stays:
		t.Fatal("a waiter returned without a place")
	default:
	}
	lane.Leave()
	if !<-stays {
		t.Fatal("the waiter given the place did not return woken")
	}
	// It holds the only place: nobody else may enter until it leaves.
	short, cancel2 := context.WithTimeout(t.Context(), 20*time.Millisecond)
	defer cancel2()
	if lane.Enter(short) == nil {
		t.Fatal("the cancelled waiter's place was not passed on, or was given twice")
	}
	lane.Leave()
	if err := lane.Enter(t.Context()); err != nil {
		t.Fatal(err)
	}
}

// TestLaneTimeoutsQueue: waits that time out together are handed to the
// lane too, and return unwoken, each with a place, one place at a time.
func TestLaneTimeoutsQueue(t *testing.T) {
	n := NewLocal(Positions{})
	lane := NewLane(1)
	if err := lane.Enter(t.Context()); err != nil {
		t.Fatal(err)
	}
	done := make(chan bool)
	until := time.Now().Add(5 * time.Millisecond)
	for _, u := range []id.UserID{"@a:x", "@b:x"} {
		go func() {
			woken, err := n.WaitInLane(t.Context(), Interest{User: u}, Positions{}, until, lane)
			done <- !woken && err == nil
		}()
	}
	for lane.queued() != 2 {
		runtime.Gosched()
	}
	for range 2 {
		lane.Leave()
		if !<-done {
			t.Fatal("a timed-out wait returned woken or without a place")
		}
	}
	select {
	case <-done:
		t.Fatal("more returned than places were given")
	default:
	}
	lane.Leave()
}

// TestLaneAlreadyBehind: a waiter with news already takes a place at once.
func TestLaneAlreadyBehind(t *testing.T) {
	n := NewLocal(Positions{Events: 3})
	lane := NewLane(1)
	woken, err := n.WaitInLane(t.Context(), Interest{User: "@a:x"}, Positions{Events: 1}, time.Time{}, lane)
	if !woken || err != nil {
		t.Fatalf("woken %v, %v", woken, err)
	}
	if !lane.Busy() {
		t.Fatal("the place was not taken")
	}
}

// TestLaneCancel: a waiter that leaves after its wake was handed to the
// lane gives back the place it was given, or leaves the queue.
func TestLaneCancel(t *testing.T) {
	lane := NewLane(1)
	admitted := make(chan struct{})
	lane.admit(admitted) // the free place: admitted at once
	queued := make(chan struct{})
	lane.admit(queued)
	if lane.queued() != 1 || !lane.Busy() {
		t.Fatal("the second wake was not queued")
	}
	lane.cancel(queued)
	if lane.queued() != 0 {
		t.Fatal("a cancelled wake stayed queued")
	}
	lane.cancel(admitted) // admitted already: its place is given back
	if lane.Busy() {
		t.Fatal("the place of a cancelled, admitted wake was not given back")
	}
	if err := lane.Enter(t.Context()); err != nil {
		t.Fatal(err)
	}
}
