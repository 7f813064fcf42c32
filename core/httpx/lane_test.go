package httpx

import (
	"context"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// fakeLane is always busy and counts who entered and left.
type fakeLane struct {
	mu            sync.Mutex
	entered, left int
}

func (f *fakeLane) Enter(context.Context) error { f.mu.Lock(); f.entered++; f.mu.Unlock(); return nil }
func (f *fakeLane) Leave()                      { f.mu.Lock(); f.left++; f.mu.Unlock() }
func (f *fakeLane) Busy() bool                  { return true }
func (f *fakeLane) counts() (int, int)          { f.mu.Lock(); defer f.mu.Unlock(); return f.entered, f.left }

// laneConnPair is a LaneListener's connection and the client's end.
func laneConnPair(t *testing.T, lane Lane) (*laneConn, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	wanted := func(head []byte) bool { return strings.HasPrefix(string(head), "GET /long") }
	ll := &LaneListener{Listener: ln, Lane: lane, Wanted: wanted}
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	c, err := ll.Accept()
	if err != nil {
		t.Fatal(err)
	}
	lc, ok := c.(*laneConn)
	if !ok {
		t.Fatalf("accepted %T", c)
	}
	t.Cleanup(func() { lc.Close() })
	return lc, client
}

// TestLaneConnQueuesWholeWantedHeads: a wanted request whose head arrived
// whole takes a place before it is handed to net/http; the handler takes
// the place over (once); anything else, a head that has not arrived whole
// (a client trickling its request) or net/http's one-byte watch reads,
// takes none; a place not taken over is given back at the next read or at
// close.
func TestLaneConnQueuesWholeWantedHeads(t *testing.T) {
	lane := &fakeLane{}
	lc, client := laneConnPair(t, lane)
	ctx := LaneConnContext(context.Background(), lc)
	buf := make([]byte, 4096)
	read := func(send string) {
		t.Helper()
		if _, err := io.WriteString(client, send); err != nil {
			t.Fatal(err)
		}
		n, err := lc.Read(buf)
		if err != nil || string(buf[:n]) != send {
			t.Fatalf("read %q, %v", buf[:n], err)
		}
	}

	read("GET /long?x HTTP/1.1\r\nHost: a\r\n\r\n")
	if e, _ := lane.counts(); e != 1 {
		t.Fatalf("a whole wanted head entered the lane %d times, want 1", e)
	}
	if !TakeLanePlace(ctx) || TakeLanePlace(ctx) {
		t.Fatal("the handler did not take the place over exactly once")
	}
	if _, l := lane.counts(); l != 0 {
		t.Fatal("a place taken over was given back by the connection")
	}

	read("GET /long?y HTTP/1.1\r\nHost: a\r\n") // no blank line yet
	read("GET /other HTTP/1.1\r\n\r\n")
	if e, _ := lane.counts(); e != 1 {
		t.Fatalf("a partial or unwanted head entered the lane (%d entries)", e)
	}

	read("GET /long?z HTTP/1.1\r\n\r\n") // held, not taken over
	if _, err := io.WriteString(client, "x"); err != nil {
		t.Fatal(err)
	}
	if n, err := lc.Read(buf[:1]); n != 1 || err != nil {
		t.Fatal(n, err)
	}
	if e, l := lane.counts(); e != 2 || l != 0 {
		t.Fatalf("a one-byte read entered or left the lane: %d entered, %d left", e, l)
	}
	read("GET /other HTTP/1.1\r\n\r\n")
	if e, l := lane.counts(); e != 2 || l != 1 {
		t.Fatalf("the next read did not give the held place back: %d entered, %d left", e, l)
	}

	read("GET /long?w HTTP/1.1\r\n\r\n")
	lc.Close()
	lc.Close()
	if e, l := lane.counts(); e != 3 || l != 2 {
		t.Fatalf("close did not give the held place back once: %d entered, %d left", e, l)
	}
}

// TestLaneConnIdleLane: while the lane is not busy nothing queues.
func TestLaneConnIdleLane(t *testing.T) {
	var entered atomic.Int32
	lane := &idleLane{entered: &entered}
	lc, client := laneConnPair(t, lane)
	if _, err := io.WriteString(client, "GET /long HTTP/1.1\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4096)
	if _, err := lc.Read(buf); err != nil {
		t.Fatal(err)
	}
	if entered.Load() != 0 || TakeLanePlace(LaneConnContext(context.Background(), lc)) {
		t.Fatal("a request queued in a lane that was not busy")
	}
}

type idleLane struct{ entered *atomic.Int32 }

func (l *idleLane) Enter(context.Context) error { l.entered.Add(1); return nil }
func (l *idleLane) Leave()                      {}
func (l *idleLane) Busy() bool                  { return false }
