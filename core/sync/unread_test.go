package sync

import (
	"context"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/tributary-hs/tributary/storage"
)

// fakeUnread is one user's push actions and read markers in one room.
type fakeUnread struct {
	actions []fakeAction
	read    map[string]int64
	own     int64
	queries int
}

type fakeAction struct {
	pos       int64
	thread    string
	highlight bool
}

func (f *fakeUnread) ReadPositions(context.Context, string, string) (map[string]int64, int64, error) {
	return maps.Clone(f.read), f.own, nil
}

func (f *fakeUnread) PushActionCounts(_ context.Context, _, _, thread string, after, upto int64) ([]storage.UnreadCount, error) {
	f.queries++
	by := map[string]storage.UnreadCount{}
	for _, a := range f.actions {
		if a.pos > after && a.pos <= upto && (thread == "" || a.thread == thread) {
			c := by[a.thread]
			c.ThreadID = a.thread
			c.Notifications++
			if a.highlight {
				c.Highlights++
			}
			by[a.thread] = c
		}
	}
	var out []storage.UnreadCount
	for _, t := range slices.Sorted(maps.Keys(by)) {
		out = append(out, by[t])
	}
	return out, nil
}

// TestUnreadCacheMatchesRecount: whatever happens — new notifications,
// receipts (threaded or not), the user's own messages, syncs at older
// positions — the cached counts equal a count from scratch.
func TestUnreadCacheMatchesRecount(t *testing.T) {
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(1, 2))
	threads := []string{"main", "$t1", "$t2"}
	for run := range 50 {
		f := &fakeUnread{read: map[string]int64{}}
		cache := newUnreadCache(f)
		var pos int64
		for step := range 200 {
			switch r := rng.IntN(10); {
			case r < 6:
				pos++
				f.actions = append(f.actions, fakeAction{pos: pos, thread: threads[rng.IntN(3)], highlight: rng.IntN(5) == 0})
			case r < 7:
				pos++
				f.own = pos // the user speaks (their event notifies nobody)
			case r < 8 && pos > 0:
				f.read[""] = max(f.read[""], 1+rng.Int64N(pos))
			case r < 9 && pos > 0:
				th := threads[rng.IntN(3)]
				f.read[th] = max(f.read[th], 1+rng.Int64N(pos))
			}
			upto := pos
			if rng.IntN(8) == 0 && pos > 0 {
				upto = rng.Int64N(pos + 1) // a sync that started earlier
			}
			got, err := cache.counts(ctx, "!r", "@u", upto)
			if err != nil {
				t.Fatal(err)
			}
			fresh, err := newUnreadCache(f).counts(ctx, "!r", "@u", upto)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, fresh) {
				t.Fatalf("run %d step %d (upto %d): cached %+v, recounted %+v", run, step, upto, got, fresh)
			}
		}
	}
}

// TestUnreadCacheCountsOnlyNewNotifications: with the read markers
// unchanged, a sync after new messages asks only for those.
func TestUnreadCacheCountsOnlyNewNotifications(t *testing.T) {
	ctx := context.Background()
	f := &fakeUnread{read: map[string]int64{}}
	cache := newUnreadCache(f)
	for i := int64(1); i <= 100; i++ {
		f.actions = append(f.actions, fakeAction{pos: i, thread: "main"})
	}
	if _, err := cache.counts(ctx, "!r", "@u", 100); err != nil {
		t.Fatal(err)
	}
	f.actions = append(f.actions, fakeAction{pos: 101, thread: "main"})
	f.queries = 0
	got, err := cache.counts(ctx, "!r", "@u", 101)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Notifications != 101 || f.queries != 1 {
		t.Fatalf("counts %+v after %d queries", got, f.queries)
	}
}
