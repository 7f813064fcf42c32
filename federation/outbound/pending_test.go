package outbound

import (
	"runtime"
	"slices"
	"testing"

	"maunium.net/go/mautrix/federation"

	"github.com/tributary-hs/tributary/core/rooms"
	"github.com/tributary-hs/tributary/core/stream"
)

// A pending queue takes values in order up to its bound, refuses the rest
// without blocking, signals when something waits, and holds no buffer
// while empty (an idle sender's queues cost nothing).
func TestPending(t *testing.T) {
	p := newPending[int](3)
	if cap(p.items) != 0 {
		t.Fatalf("a new queue holds a buffer of %d", cap(p.items))
	}
	select {
	case <-p.ready:
		t.Fatal("an empty queue is ready")
	default:
	}
	for i := range 4 {
		if ok := p.push(i); ok != (i < 3) {
			t.Fatalf("push %d: %v", i, ok)
		}
	}
	select {
	case <-p.ready:
	default:
		t.Fatal("a queue with values is not ready")
	}
	if got := p.take(); !slices.Equal(got, []int{0, 1, 2}) {
		t.Fatalf("take: %v", got)
	}
	if cap(p.items) != 0 || len(p.take()) != 0 {
		t.Fatal("a taken queue keeps its buffer or values")
	}
	if !p.push(5) {
		t.Fatal("push after take refused")
	}
	<-p.ready
	if got := p.take(); !slices.Equal(got, []int{5}) {
		t.Fatalf("take: %v", got)
	}
}

// fakeEphemeral and fakeKeys stand in for what NewSender only keeps.
type fakeEphemeral struct{ Ephemeral }
type fakeKeys struct{ LocalKeys }

// An idle server's sender holds little memory: its queues grow with what
// waits (they were 1 MiB of buffered channels, allocated at start).
func TestNewSenderIsSmall(t *testing.T) {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	s, err := NewSender(&cursorStore{}, &rooms.Reader{}, fakeEphemeral{}, fakeKeys{}, &federation.Client{},
		stream.NewLocal(stream.Positions{}), SenderOptions{ServerName: "a.example"})
	runtime.ReadMemStats(&after)
	if err != nil {
		t.Fatal(err)
	}
	if n := after.TotalAlloc - before.TotalAlloc; n > 128<<10 {
		t.Fatalf("NewSender allocated %d KiB", n>>10)
	}
	runtime.KeepAlive(s)
}
