package rooms

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"maunium.net/go/mautrix/federation/pdu"
	"maunium.net/go/mautrix/id"
)

// A cache bounded by number drops the oldest quarter when full.
func TestLRUBound(t *testing.T) {
	c := newLRU[int, int](8)
	for i := range 9 {
		c.put(i, i)
	}
	for i := range 9 {
		if _, ok := c.get(i); ok != (i >= 2) {
			t.Errorf("%d cached: %v", i, ok)
		}
	}
}

// A sized cache keeps the sizes of its values within its bound, the
// oldest going first, and counts replaced and forgotten values right.
func TestSizedLRUBound(t *testing.T) {
	c := newSizedLRU[int](100, 1000, func(s string) int { return len(s) })
	check := func() {
		t.Helper()
		sum := 0
		for _, v := range c.items {
			sum += len(v)
		}
		if sum != c.total || c.total > 1000 {
			t.Fatalf("total %d, values %d, max 1000", c.total, sum)
		}
	}
	for i := range 20 {
		c.put(i, strings.Repeat("x", 100))
		check()
	}
	if _, ok := c.get(19); !ok {
		t.Error("the newest value is not cached")
	}
	if _, ok := c.get(0); ok {
		t.Error("the oldest value is still cached")
	}
	c.put(19, strings.Repeat("y", 300))
	check()
	c.forget(19)
	check()
	c.put(50, strings.Repeat("z", 900))
	check()
	if _, ok := c.get(50); !ok {
		t.Error("a value within the bound is not cached")
	}
}

// The Reader's cache of parsed events is bounded by their size: 4,096
// events of 64 KiB were 256 MiB.
func TestPDUCacheBytes(t *testing.T) {
	r, err := NewReader(struct{ Store }{}, Options{ServerName: "a.example"})
	if err != nil {
		t.Fatal(err)
	}
	content, _ := json.Marshal(map[string]string{"body": strings.Repeat("x", 64<<10)})
	for i := range 4096 {
		eid := id.EventID(fmt.Sprintf("$e%d", i))
		r.cache.put(eid, &pdu.PDU{Type: "m.room.message", Content: content})
	}
	if r.cache.total > pduCacheBytes || len(r.cache.items)*len(content) > pduCacheBytes {
		t.Fatalf("%d events of %d bytes cached (%d counted)", len(r.cache.items), len(content), r.cache.total)
	}
}
