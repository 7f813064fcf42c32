package importer

import (
	"context"
	"errors"
	"slices"
	"sync/atomic"
	"testing"
)

// Writes run in the order given, one at a time, while Do returns as soon
// as one place is free: the reader goes on while the writer works.
func TestPipeRunsWritesInOrderBehindTheReader(t *testing.T) {
	ctx := context.Background()
	p := NewPipe(ctx)
	release := make(chan struct{})
	started := make(chan int, 10)
	var running atomic.Int32
	var order []int
	write := func(i int) func(context.Context) error {
		return func(context.Context) error {
			if running.Add(1) != 1 {
				t.Error("two writes ran at once")
			}
			defer running.Add(-1)
			started <- i
			<-release
			order = append(order, i)
			return nil
		}
	}
	if err := p.Do(ctx, write(0)); err != nil {
		t.Fatal(err)
	}
	<-started
	// The first write runs and is blocked: the next Do still returns at
	// once (one write waits behind it), and the reader goes on.
	if err := p.Do(ctx, write(1)); err != nil {
		t.Fatal(err)
	}
	close(release)
	for i := 2; i < 5; i++ {
		if err := p.Do(ctx, write(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(order, []int{0, 1, 2, 3, 4}) {
		t.Fatalf("writes ran in order %v", order)
	}
}

// Do blocks while one write runs and another waits.
func TestPipeHoldsAtMostTwoWrites(t *testing.T) {
	ctx := context.Background()
	p := NewPipe(ctx)
	release := make(chan struct{})
	running := make(chan struct{})
	block := func(context.Context) error { running <- struct{}{}; <-release; return nil }
	if err := p.Do(ctx, block); err != nil {
		t.Fatal(err)
	}
	<-running
	if err := p.Do(ctx, func(context.Context) error { return nil }); err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithCancel(ctx)
	cancel()
	if err := p.Do(short, func(context.Context) error { return nil }); !errors.Is(err, context.Canceled) {
		t.Fatalf("a third write was taken while two were held: %v", err)
	}
	close(release)
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
}

// After a write fails, the ones queued behind it do not run (their
// cursors would pass the failed batch) and the failure comes back from
// Do and Close.
func TestPipeStopsAtTheFirstFailure(t *testing.T) {
	ctx := context.Background()
	p := NewPipe(ctx)
	boom := errors.New("boom")
	release := make(chan struct{})
	var after atomic.Bool
	if err := p.Do(ctx, func(context.Context) error { <-release; return boom }); err != nil {
		t.Fatal(err)
	}
	if err := p.Do(ctx, func(context.Context) error { after.Store(true); return nil }); err != nil {
		t.Fatal(err)
	}
	close(release)
	if err := p.Close(); !errors.Is(err, boom) {
		t.Fatalf("Close: %v, want the write's error", err)
	}
	if after.Load() {
		t.Fatal("a write queued after the failed one ran")
	}
	p2 := NewPipe(ctx)
	_ = p2.Do(ctx, func(context.Context) error { return boom })
	var doErr error
	for range 1_000_000 {
		// Do reports the failure once the writer has seen it (the writes
		// queued meanwhile are dropped).
		if doErr = p2.Do(ctx, func(context.Context) error { return nil }); doErr != nil {
			break
		}
	}
	if !errors.Is(doErr, boom) {
		t.Fatalf("Do after the failure: %v", doErr)
	}
	if err := p2.Close(); !errors.Is(err, boom) {
		t.Fatalf("Close: %v", err)
	}
}
