package gateway

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/core/push"
	"github.com/tributary-hs/tributary/storage"
)

// fakeStore is an in-memory queue.
type fakeStore struct {
	mu      sync.Mutex
	queue   []*storage.PushDelivery
	next    map[int64]int64 // pusher → next attempt
	acked   []int64         // stream positions acknowledged
	retries int
}

func (f *fakeStore) DuePushDeliveries(_ context.Context, now int64, limit int) ([]*storage.PushDelivery, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []*storage.PushDelivery
	for _, d := range f.queue {
		if f.next[d.Pusher.PusherID] <= now && len(out) < limit {
			c := *d
			out = append(out, &c)
		}
	}
	return out, nil
}

func (f *fakeStore) NextPushAttempt(context.Context) (int64, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.queue) == 0 {
		return 0, false, nil
	}
	return f.next[f.queue[0].Pusher.PusherID], true, nil
}

func (f *fakeStore) AckPushDelivery(_ context.Context, pusherID, pos int64) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.queue = slices.DeleteFunc(f.queue, func(d *storage.PushDelivery) bool {
		return d.Pusher.PusherID == pusherID && d.StreamPos == pos
	})
	f.acked = append(f.acked, pos)
	return nil
}

func (f *fakeStore) RetryPushDelivery(_ context.Context, pusherID, pos, next int64) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, d := range f.queue {
		if d.Pusher.PusherID == pusherID && d.StreamPos == pos {
			d.Attempts++
		}
	}
	f.next[pusherID] = next
	f.retries++
	return nil
}

func (f *fakeStore) RoomsOfUser(context.Context, id.UserID, []string) ([]storage.CurrentMember, error) {
	return []storage.CurrentMember{{RoomID: "!r:x"}}, nil
}

func (f *fakeStore) UnreadCounts(context.Context, id.RoomID, id.UserID) ([]storage.UnreadCount, error) {
	return []storage.UnreadCount{{ThreadID: "main", Notifications: 3}}, nil
}

type fakeEvents struct{}

func (fakeEvents) PushEvents(_ context.Context, positions []int64) (map[int64]*push.EventInfo, error) {
	out := map[int64]*push.EventInfo{}
	for _, p := range positions {
		if p != 404 { // 404: an event that is gone
			out[p] = &push.EventInfo{EventID: "$e", RoomID: "!r:x", Type: "m.room.message", Sender: "@a:x",
				Content: json.RawMessage(`{"body":"hi"}`)}
		}
	}
	return out, nil
}

type fakePushers struct {
	mu       sync.Mutex
	rejected []int64
}

func (f *fakePushers) PusherRejected(_ context.Context, _ id.UserID, pusherID int64) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rejected = append(f.rejected, pusherID)
	return nil
}

func delivery(pusherID, pos int64, url string) *storage.PushDelivery {
	return &storage.PushDelivery{StreamPos: pos, Tweaks: json.RawMessage(`{"sound":"default"}`),
		Pusher: storage.Pusher{PusherID: pusherID, UserID: "@b:x", Kind: "http", AppID: "app", PushKey: "key",
			Data: json.RawMessage(`{"url":"` + url + `","format":"event_id_only","x":1}`), PushKeyTS: 5000}}
}

func newGateway(t *testing.T, store *fakeStore, pushers *fakePushers, now func() time.Time) *Gateway {
	t.Helper()
	g, err := New(store, fakeEvents{}, pushers, Options{Now: now, MaxAttempts: 3,
		Allowed: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}})
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func TestBackoff(t *testing.T) {
	g, _ := New(&fakeStore{}, fakeEvents{}, &fakePushers{}, Options{})
	var got []time.Duration
	for a := int64(1); a <= 14; a++ {
		got = append(got, g.backoff(a))
	}
	want := []time.Duration{1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 3600, 3600}
	for i := range want {
		want[i] *= time.Second
	}
	if !slices.Equal(got, want) {
		t.Fatalf("backoff %v, want %v", got, want)
	}
}

// One round: a failing gateway is retried with backoff, the notification
// dropped after MaxAttempts; a rejected pushkey deletes the pusher; a
// gone event is acknowledged without a request.
func TestRounds(t *testing.T) {
	var mu sync.Mutex
	status, reject := http.StatusServiceUnavailable, false
	var bodies []map[string]any
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		var b map[string]any
		_ = json.NewDecoder(r.Body).Decode(&b)
		bodies = append(bodies, b)
		w.WriteHeader(status)
		if reject {
			_, _ = w.Write([]byte(`{"rejected":["key"]}`))
		} else {
			_, _ = w.Write([]byte(`{"rejected":[]}`))
		}
	}))
	defer srv.Close()
	url := srv.URL + push.NotifyPath
	clock := time.UnixMilli(1_000_000)
	store := &fakeStore{next: map[int64]int64{}, queue: []*storage.PushDelivery{delivery(1, 10, url),
		delivery(1, 11, url), delivery(2, 404, url)}}
	pushers := &fakePushers{}
	g := newGateway(t, store, pushers, func() time.Time { return clock })
	ctx := context.Background()

	for attempt := 1; attempt <= 3; attempt++ {
		if _, err := g.round(ctx); err != nil {
			t.Fatal(err)
		}
		wantNext := clock.Add(g.backoff(int64(attempt))).UnixMilli()
		if store.next[1] != wantNext {
			t.Fatalf("attempt %d: next attempt %d, want %d", attempt, store.next[1], wantNext)
		}
		clock = time.UnixMilli(store.next[1])
	}
	// Three failures at position 10: dropped; 404 was acknowledged at once.
	if !slices.Equal(store.acked, []int64{404, 10}) || len(store.queue) != 1 || store.queue[0].StreamPos != 11 {
		t.Fatalf("acked %v, queue %d", store.acked, len(store.queue))
	}
	mu.Lock()
	n := bodies[0]["notification"].(map[string]any)
	dev := n["devices"].([]any)[0].(map[string]any)
	if n["event_id"] != "$e" || n["content"] != nil || n["counts"].(map[string]any)["unread"] != float64(3) ||
		n["prio"] != "high" || dev["pushkey_ts"] != float64(5) || dev["data"].(map[string]any)["url"] != nil ||
		dev["data"].(map[string]any)["x"] != float64(1) || dev["tweaks"].(map[string]any)["sound"] != "default" {
		t.Fatalf("body %v", bodies[0])
	}
	status, reject = http.StatusOK, true
	mu.Unlock()
	if _, err := g.round(ctx); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(pushers.rejected, []int64{1}) {
		t.Fatalf("rejected pushers %v", pushers.rejected)
	}
}
