package sync

import (
	"context"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"

	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/storage"
)

// fakeUnread is one room's push actions and one user's (@u) read markers.
type fakeUnread struct {
	// actions are defaults (every member's), exceptions users' own.
	actions    []fakeAction
	exceptions []storage.PushException
	read       map[string]int64
	own        int64
	queries    int
	reads      int
	ranges     int
}

type fakeAction struct {
	pos       int64
	thread    string
	highlight bool
	sender    id.UserID // whom the default does not count for
}

func (f *fakeUnread) PushActionsBetween(_ context.Context, _ id.RoomID, after, upto int64) ([]storage.PushDefault, []storage.PushException, error) {
	f.ranges++
	var ds []storage.PushDefault
	for _, a := range f.actions {
		if a.pos > after && a.pos <= upto {
			ds = append(ds, storage.PushDefault{StreamPos: a.pos, ThreadID: a.thread, Highlight: a.highlight, Sender: a.sender})
		}
	}
	var xs []storage.PushException
	for _, x := range f.exceptions {
		if x.StreamPos > after && x.StreamPos <= upto {
			xs = append(xs, x)
		}
	}
	return ds, xs, nil
}

func (f *fakeUnread) ReadPositions(context.Context, id.RoomID, id.UserID) (map[string]int64, int64, error) {
	f.reads++
	return maps.Clone(f.read), f.own, nil
}

func (f *fakeUnread) ReadPositionsIn(_ context.Context, rooms []id.RoomID, _ id.UserID) (map[id.RoomID]storage.ReadMarks, error) {
	f.reads++
	out := map[id.RoomID]storage.ReadMarks{}
	for _, r := range rooms {
		out[r] = storage.ReadMarks{Read: maps.Clone(f.read), Own: f.own}
	}
	return out, nil
}

func (f *fakeUnread) PushActionCountsIn(ctx context.Context, user id.UserID, after map[id.RoomID]int64, upto int64) (map[id.RoomID][]storage.UnreadCount, error) {
	out := map[id.RoomID][]storage.UnreadCount{}
	for r, a := range after {
		c, err := f.PushActionCounts(ctx, r, user, "", a, upto)
		if err != nil {
			return nil, err
		}
		if len(c) > 0 {
			out[r] = c
		}
	}
	return out, nil
}

func (f *fakeUnread) PushActionCounts(_ context.Context, _ id.RoomID, user id.UserID, thread string, after, upto int64) ([]storage.UnreadCount, error) {
	f.queries++
	by := map[string]storage.UnreadCount{}
	count := func(pos int64, th string, highlight bool) {
		if pos > after && pos <= upto && (thread == "" || th == thread) {
			c := by[th]
			c.ThreadID = th
			c.Notifications++
			if highlight {
				c.Highlights++
			}
			by[th] = c
		}
	}
	for _, a := range f.actions {
		if a.sender != user &&
			!slices.ContainsFunc(f.exceptions, func(x storage.PushException) bool { return x.StreamPos == a.pos && x.UserID == user }) {
			count(a.pos, a.thread, a.highlight)
		}
	}
	for _, x := range f.exceptions {
		if x.UserID == user && x.Notify {
			count(x.StreamPos, x.ThreadID, x.Highlight)
		}
	}
	var out []storage.UnreadCount
	for _, t := range slices.Sorted(maps.Keys(by)) {
		out = append(out, by[t])
	}
	return out, nil
}

// TestUnreadCacheMatchesRecount: whatever happens — new notifications,
// receipts (threaded or not), the user's own messages (each followed by
// forget, as the service does), syncs at older positions — the cached
// counts equal a count from scratch.
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
				th := threads[rng.IntN(3)]
				f.actions = append(f.actions, fakeAction{pos: pos, thread: th, highlight: rng.IntN(5) == 0})
				// Exceptions: someone else's, or @u's (silenced or highlighted).
				switch rng.IntN(4) {
				case 0:
					f.exceptions = append(f.exceptions, storage.PushException{UserID: "@other", StreamPos: pos, ThreadID: th})
				case 1:
					f.exceptions = append(f.exceptions, storage.PushException{UserID: "@u", StreamPos: pos, ThreadID: th,
						Highlight: rng.IntN(2) == 0, Notify: rng.IntN(2) == 0})
				}
			case r < 7:
				pos++
				f.own = pos // the user speaks: their event notifies the others
				f.actions = append(f.actions, fakeAction{pos: pos, thread: threads[rng.IntN(3)], sender: "@u"})
				cache.forget("@u", "!r")
			case r < 8 && pos > 0:
				f.read[""] = max(f.read[""], 1+rng.Int64N(pos))
				cache.forget("@u", "!r")
			case r < 9 && pos > 0:
				th := threads[rng.IntN(3)]
				f.read[th] = max(f.read[th], 1+rng.Int64N(pos))
				cache.forget("@u", "!r")
			}
			upto := pos
			var err error
			if rng.IntN(8) == 0 && pos > 0 {
				upto = rng.Int64N(pos + 1) // a sync that started earlier
			}
			var ahead readAhead
			if rng.IntN(3) == 0 { // read ahead, as /sync does for many rooms
				if ahead, err = cache.prefetch(ctx, []id.RoomID{"!r"}, "@u", upto); err != nil {
					t.Fatal(err)
				}
			}
			got, err := cache.counts(ctx, "!r", "@u", upto, ahead)
			if err != nil {
				t.Fatal(err)
			}
			fresh, err := newUnreadCache(f).counts(ctx, "!r", "@u", upto, nil)
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
	if _, err := cache.counts(ctx, "!r", "@u", 100, nil); err != nil {
		t.Fatal(err)
	}
	f.actions = append(f.actions, fakeAction{pos: 101, thread: "main"})
	f.queries, f.reads = 0, 0
	got, err := cache.counts(ctx, "!r", "@u", 101, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Notifications != 101 || f.queries != 0 || f.ranges != 1 || f.reads != 0 {
		t.Fatalf("counts %+v after %d count, %d range and %d read-marker queries", got, f.queries, f.ranges, f.reads)
	}
	// Another member woken by the same message reads nothing.
	if _, err := cache.counts(ctx, "!r", "@v", 100, nil); err != nil {
		t.Fatal(err)
	}
	f.queries, f.reads, f.ranges = 0, 0, 0
	if got, err := cache.counts(ctx, "!r", "@v", 101, nil); err != nil || len(got) != 1 || got[0].Notifications != 101 ||
		f.queries+f.ranges+f.reads != 0 {
		t.Fatalf("the second member: %+v %v after %d queries", got, err, f.queries+f.ranges+f.reads)
	}
	// The user reads: the next sync looks at the markers again.
	f.read[""] = 101
	cache.forget("@u", "!r")
	if got, err := cache.counts(ctx, "!r", "@u", 101, nil); err != nil || len(got) != 0 || f.reads != 1 {
		t.Fatalf("after reading: %+v %v (%d read-marker queries)", got, err, f.reads)
	}
}

// TestUnreadCacheSkipsOwnDefaults: the user's own event, counted on top of
// counts kept from before it (a sync between its commit and the forget
// that follows), is not a notification of theirs.
func TestUnreadCacheSkipsOwnDefaults(t *testing.T) {
	ctx := context.Background()
	f := &fakeUnread{read: map[string]int64{}, actions: []fakeAction{{pos: 1, thread: "main"}}}
	cache := newUnreadCache(f)
	if got, err := cache.counts(ctx, "!r", "@u", 1, nil); err != nil || len(got) != 1 || got[0].Notifications != 1 {
		t.Fatalf("first count %+v %v", got, err)
	}
	f.actions = append(f.actions, fakeAction{pos: 2, thread: "main", sender: "@u"})
	if got, err := cache.counts(ctx, "!r", "@u", 2, nil); err != nil || len(got) != 1 || got[0].Notifications != 1 {
		t.Fatalf("after the user's own event: %+v %v", got, err)
	}
	if got, err := cache.counts(ctx, "!r", "@v", 2, nil); err != nil || len(got) != 1 || got[0].Notifications != 2 {
		t.Fatalf("another member after it: %+v %v", got, err)
	}
}

// TestUnreadCacheDropsRacingAnswers: an answer computed from read markers
// that moved while it was computed is not kept.
func TestUnreadCacheDropsRacingAnswers(t *testing.T) {
	ctx := context.Background()
	f := &fakeUnread{read: map[string]int64{}, actions: []fakeAction{{pos: 1, thread: "main"}, {pos: 2, thread: "main"}}}
	var cache *unreadCache
	cache = newUnreadCache(racingStore{f, func() {
		f.read[""] = 2 // the receipt commits while the count is computed
		cache.forget("@u", "!r")
	}})
	if got, _ := cache.counts(ctx, "!r", "@u", 2, nil); len(got) != 1 || got[0].Notifications != 2 {
		t.Fatalf("first count %+v", got) // computed from the markers before the receipt
	}
	cache.store = f
	if got, _ := cache.counts(ctx, "!r", "@u", 2, nil); len(got) != 0 {
		t.Fatalf("the racing answer was kept: %+v", got)
	}
}

// racingStore runs during once, right after the read markers were read.
type racingStore struct {
	*fakeUnread
	during func()
}

func (r racingStore) ReadPositions(ctx context.Context, room id.RoomID, user id.UserID) (map[string]int64, int64, error) {
	read, own, err := r.fakeUnread.ReadPositions(ctx, room, user)
	r.during()
	return read, own, err
}

// TestUnreadCacheDropsRacingReadAhead: read markers read ahead for many
// rooms, then moved before the room's count: the answer is not kept.
func TestUnreadCacheDropsRacingReadAhead(t *testing.T) {
	ctx := context.Background()
	f := &fakeUnread{read: map[string]int64{}, actions: []fakeAction{{pos: 1, thread: "main"}, {pos: 2, thread: "main"}}}
	cache := newUnreadCache(f)
	for _, seen := range []bool{false, true} { // a key new to the cache, then one it has
		if seen {
			if _, err := cache.counts(ctx, "!r", "@u", 2, nil); err != nil {
				t.Fatal(err)
			}
			f.read[""] = 0
			cache.forget("@u", "!r")
		}
		ahead, err := cache.prefetch(ctx, []id.RoomID{"!r"}, "@u", 2)
		if err != nil || ahead == nil {
			t.Fatalf("prefetch: %v %v", ahead, err)
		}
		f.read[""] = 2 // the receipt commits after the read ahead
		cache.forget("@u", "!r")
		if got, _ := cache.counts(ctx, "!r", "@u", 2, ahead); len(got) != 1 || got[0].Notifications != 2 {
			t.Fatalf("count from the markers read ahead: %+v", got)
		}
		if got, _ := cache.counts(ctx, "!r", "@u", 2, nil); len(got) != 0 {
			t.Fatalf("seen %v: the racing answer was kept: %+v", seen, got)
		}
	}
}
