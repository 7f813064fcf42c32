package sync

import (
	"context"
	"fmt"
	"testing"
)

// Inline filters in use are parsed once and then found without a lock;
// those kept stay bounded.
func TestResolvedFiltersAreKeptBounded(t *testing.T) {
	s := &Service{}
	s.filters.Max = 4
	ctx := context.Background()
	const param = `{"room":{"timeline":{"limit":5}}}`
	f, err := s.ResolveFilter(ctx, "@u:example.org", param)
	if err != nil || f == nil {
		t.Fatalf("ResolveFilter: %v %v", f, err)
	}
	if again, _ := s.ResolveFilter(ctx, "@v:example.org", param); again != f {
		t.Fatal("the same inline filter was parsed again")
	}
	if _, ok := s.parsed.Load(filterKey{param: param}); !ok {
		t.Fatal("the filter in use is not kept for lookups without a lock")
	}
	for i := range 20 {
		if _, err := s.ResolveFilter(ctx, "@u:example.org", fmt.Sprintf(`{"room":{"timeline":{"limit":%d}}}`, i+1)); err != nil {
			t.Fatal(err)
		}
		if n := s.nParsed.Load(); n > int64(s.filters.Max) {
			t.Fatalf("%d filters kept, more than %d", n, s.filters.Max)
		}
	}
}
