package push

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime"
	"testing"

	"maunium.net/go/mautrix/id"
)

// A user's first syncs reuse the encoding of her push rules, and the
// encodings kept are bounded apart from the rulesets: they were kept with
// every ruleset, 4.5 KiB a user who ever synced.
func TestAccountDataContentKept(t *testing.T) {
	ctx := context.Background()
	s := newService(t)
	a, err := s.AccountDataContent(ctx, "@alice:example.org")
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.AccountDataContent(ctx, "@alice:example.org")
	if err != nil {
		t.Fatal(err)
	}
	if &a[0] != &b[0] {
		t.Error("a second first sync encoded the push rules again")
	}
	var st stored
	if err := json.Unmarshal(a, &st); err != nil || st.Global == nil {
		t.Fatalf("content %s: %v", a, err)
	}

	firstSyncs := func(from, to int) {
		for i := from; i < to; i++ {
			if _, err := s.AccountDataContent(ctx, id.UserID(fmt.Sprintf("@u%d:example.org", i))); err != nil {
				t.Fatal(err)
			}
		}
	}
	firstSyncs(0, encodedRulesets) // the encodings kept fill up
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	const users = 3 * encodedRulesets
	firstSyncs(encodedRulesets, encodedRulesets+users)
	runtime.GC()
	runtime.ReadMemStats(&after)
	if n := s.encoded.Len(); n > encodedRulesets {
		t.Errorf("%d encodings kept, max %d", n, encodedRulesets)
	}
	// The rulesets stay cached (about 2 KiB each), the encodings do not.
	if per := (int64(after.HeapAlloc) - int64(before.HeapAlloc)) / users; per > 4<<10 {
		t.Errorf("%d bytes kept per user", per)
	}
}
