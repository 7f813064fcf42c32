package main

import (
	"bytes"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tributary-hs/tributary/core/config"
)

// stalledSink is a log sink that takes nothing until released, as a pipe
// whose reader lags does.
type stalledSink struct {
	release chan struct{}
	mu      sync.Mutex
	got     bytes.Buffer
}

func (s *stalledSink) Write(p []byte) (int, error) {
	<-s.release
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.got.Write(p)
}

// A burst of request lines (one message waking 2,000 long-polls) must not
// wait for a stalled sink, and every line arrives, in order, once it
// takes them again.
func TestLogWriterBurstDoesNotWaitForSink(t *testing.T) {
	sink := &stalledSink{release: make(chan struct{})}
	cfg := config.Default()
	cfg.Log.Format = "json"
	w := newLogWriter(sink, logBuffer)
	log := newLoggerTo(cfg, w)
	logged := make(chan struct{})
	go func() {
		for i := range 2000 {
			log.Info("request", "method", "GET", "route", "/_matrix/client/v3/sync", "status", 200, "n", i)
		}
		close(logged)
	}()
	select {
	case <-logged:
	case <-time.After(30 * time.Second):
		t.Fatal("logging 2,000 lines waited for the stalled sink")
	}
	close(sink.release)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(sink.got.String(), "\n"), "\n")
	if len(lines) != 2000 {
		t.Fatalf("%d lines arrived, want 2000", len(lines))
	}
	for i, l := range lines {
		if !strings.Contains(l, fmt.Sprintf(`"n":%d}`, i)) {
			t.Fatalf("line %d is %s", i, l)
		}
	}
}

// Past its buffer, the writer waits for the sink rather than drop lines.
func TestLogWriterFullBufferWaits(t *testing.T) {
	sink := &stalledSink{release: make(chan struct{})}
	w := newLogWriter(sink, 10)
	line := []byte("0123456789\n")
	if _, err := w.Write(line); err != nil { // taken by the writing goroutine, which stalls
		t.Fatal(err)
	}
	wrote := make(chan struct{})
	go func() {
		for range 3 {
			_, _ = w.Write(line)
		}
		close(wrote)
	}()
	// The second line fills the buffer while the first is stalled in the
	// sink: the third cannot be taken until the sink moves.
	sink.mu.Lock()
	n := sink.got.Len()
	sink.mu.Unlock()
	if n != 0 {
		t.Fatalf("the sink has %d bytes before it was released", n)
	}
	select {
	case <-wrote:
		t.Fatal("4 lines of 11 bytes were taken with a 10-byte buffer and a stalled sink")
	default:
	}
	close(sink.release)
	<-wrote
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if got := sink.got.String(); got != strings.Repeat(string(line), 4) {
		t.Fatalf("the sink got %q", got)
	}
	// After Close, lines go straight to the sink.
	if _, err := w.Write(line); err != nil {
		t.Fatal(err)
	}
	if got := sink.got.Len(); got != 5*len(line) {
		t.Fatalf("after close the sink has %d bytes", got)
	}
}
