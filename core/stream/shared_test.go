package stream

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
)

func TestSharedAsksOncePerKey(t *testing.T) {
	var loads atomic.Int32
	release := make(chan struct{})
	fail := errors.New("database down")
	c := &Shared[[2]int64, []string]{Max: 10}
	get := func(ctx context.Context, after, upto int64) ([]string, error) {
		return c.Get(ctx, [2]int64{after, upto}, func(context.Context) ([]string, error) {
			loads.Add(1)
			if after == 99 {
				return nil, fail
			}
			<-release
			return []string{"!r"}, nil
		})
	}
	ctx := context.Background()
	results := make(chan []string)
	for range 20 {
		go func() {
			rooms, err := get(ctx, 1, 5)
			if err != nil {
				t.Error(err)
			}
			results <- rooms
		}()
	}
	close(release)
	for range 20 {
		if got := <-results; len(got) != 1 || got[0] != "!r" {
			t.Fatalf("rooms %v", got)
		}
	}
	if _, err := get(ctx, 1, 5); err != nil || loads.Load() != 1 {
		t.Fatalf("loads %d, err %v", loads.Load(), err)
	}
	// Errors are not remembered.
	for range 2 {
		if _, err := get(ctx, 99, 100); !errors.Is(err, fail) {
			t.Fatalf("err %v", err)
		}
	}
	if loads.Load() != 3 {
		t.Fatalf("loads %d after two failures", loads.Load())
	}
}
