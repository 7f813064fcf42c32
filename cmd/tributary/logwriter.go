package main

import (
	"io"
	"sync"
)

// logWriter hands log lines to a goroutine that writes them out, so that
// a request does not wait for a slow log sink (a pipe whose reader lags, a
// terminal over a slow link): the request log line is written after the
// handler and before net/http sends the answer, and slog's handlers write
// under one lock, so one blocked write held up every request behind it.
// When a message wakes 2,000 long-polls, their 2,000 request lines came
// at once; an unrelated /sync waited up to 175 ms for its log line.
//
// Lines are kept, never dropped: past max buffered bytes, Write waits for
// the sink as before. Close writes out what is buffered. What a crash
// (a panic in a goroutine) leaves in the buffer is lost: at most the
// last few milliseconds of lines.
type logWriter struct {
	out io.Writer
	max int

	mu     sync.Mutex
	cond   *sync.Cond // signalled when buf fills or empties, and at close
	buf    []byte     // lines not yet handed to out
	closed bool
	done   chan struct{}
}

func newLogWriter(out io.Writer, maxBuffered int) *logWriter {
	w := &logWriter{out: out, max: maxBuffered, done: make(chan struct{})}
	w.cond = sync.NewCond(&w.mu)
	go w.run()
	return w
}

// Write buffers p (slog writes one whole line per call).
func (w *logWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	for len(w.buf) >= w.max && !w.closed {
		w.cond.Wait()
	}
	if w.closed {
		w.mu.Unlock()
		<-w.done // after the buffered lines
		return w.out.Write(p)
	}
	w.buf = append(w.buf, p...)
	w.cond.Broadcast()
	w.mu.Unlock()
	return len(p), nil
}

func (w *logWriter) run() {
	defer close(w.done)
	var spare []byte
	for {
		w.mu.Lock()
		for len(w.buf) == 0 && !w.closed {
			w.cond.Wait()
		}
		if len(w.buf) == 0 {
			w.mu.Unlock()
			return
		}
		b := w.buf
		w.buf = spare[:0]
		w.cond.Broadcast() // writers waiting for room fill the other buffer
		w.mu.Unlock()
		_, _ = w.out.Write(b) // a log sink's error has nowhere to go
		spare = b
		if cap(spare) > 256<<10 {
			spare = nil // a burst's buffer goes back to the heap
		}
	}
}

// Close writes out the buffered lines and waits until they are written;
// later writes go straight to the sink.
func (w *logWriter) Close() error {
	w.mu.Lock()
	w.closed = true
	w.cond.Broadcast()
	w.mu.Unlock()
	<-w.done
	return nil
}
