package stream

import (
	"errors"
	"testing"
)

func TestCacheKeepsUntilForgotten(t *testing.T) {
	var c Cache[string, int]
	loads := 0
	load := func(v int, keep bool) func() (int, bool, error) {
		return func() (int, bool, error) { loads++; return v, keep, nil }
	}
	if v, _ := c.Get("a", load(1, true)); v != 1 {
		t.Fatalf("first get %d", v)
	}
	if v, _ := c.Get("a", load(2, true)); v != 1 || loads != 1 {
		t.Fatalf("cached get %d after %d loads", v, loads)
	}
	c.Forget("a")
	if v, _ := c.Get("a", load(3, true)); v != 3 {
		t.Fatalf("after Forget %d", v)
	}
	// Not kept when load says so, nor on error.
	if v, _ := c.Get("b", load(4, false)); v != 4 {
		t.Fatalf("unkept %d", v)
	}
	if v, _ := c.Get("b", load(5, true)); v != 5 {
		t.Fatalf("unkept value was cached: %d", v)
	}
	if _, err := c.Get("c", func() (int, bool, error) { return 0, true, errors.New("x") }); err == nil {
		t.Fatal("error lost")
	}
	if v, _ := c.Get("c", load(6, true)); v != 6 {
		t.Fatalf("failed load was cached: %d", v)
	}
}

// A read that raced a Forget is answered but not kept.
func TestCacheDropsAReadThatRacedAForget(t *testing.T) {
	var c Cache[string, int]
	v, _ := c.Get("a", func() (int, bool, error) {
		c.Forget("a") // a change is published while the value is read
		return 1, true, nil
	})
	if v != 1 {
		t.Fatalf("racing read answered %d", v)
	}
	if v, _ := c.Get("a", func() (int, bool, error) { return 2, true, nil }); v != 2 {
		t.Fatalf("the racing read was kept: %d", v)
	}
}

// A cache holds at most Max values: past it, a quarter goes; overwriting a
// key or forgetting one keeps the count true.
func TestCacheIsBounded(t *testing.T) {
	c := Cache[int, int]{Max: 100}
	for i := range 1000 {
		c.Put(i, i)
		c.Put(i, i+1) // an overwrite is no new value
		if c.Len() > 100 {
			t.Fatalf("%d values after %d puts", c.Len(), i+1)
		}
	}
	if c.Len() < 75 {
		t.Fatalf("%d values: evicted more than a quarter", c.Len())
	}
	n := c.Len()
	for i := range 1000 {
		c.Forget(i)
	}
	if c.Len() != 0 {
		t.Fatalf("%d values after forgetting all (had %d)", c.Len(), n)
	}
	if v, _ := c.Get(5, func() (int, bool, error) { return 7, true, nil }); v != 7 || c.Len() != 1 {
		t.Fatalf("get after clearing: %d, %d values", v, c.Len())
	}
}
