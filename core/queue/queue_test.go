package queue

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/core/stream"
	"github.com/tributary-hs/tributary/storage"
	"github.com/tributary-hs/tributary/storage/sqlite"
)

// fakeDeliverer records what it was sent and fails when told to.
type fakeDeliverer struct {
	mu    sync.Mutex
	fail  error
	sent  []Txn // every attempt, failed ones too
	acked []int64
	extra []int64 // what Open plans to carry besides the events
}

func (d *fakeDeliverer) Open(_ context.Context, _ string, pending []int64) (*Plan, bool, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(pending) == 0 && d.extra == nil {
		return nil, false, nil
	}
	return &Plan{Extra: d.extra, Data: "fresh"}, false, nil
}

func (d *fakeDeliverer) Deliver(_ context.Context, _ string, t *Txn) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.sent = append(d.sent, Txn{ID: t.ID, Positions: slices.Clone(t.Positions), Extra: slices.Clone(t.Extra), Data: t.Data})
	return d.fail
}

func (d *fakeDeliverer) Acked(_ context.Context, _ string, t *Txn) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.acked = append(d.acked, t.Positions...)
	return nil
}

func openStore(t *testing.T) storage.Store {
	t.Helper()
	store, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "q.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	return store
}

// queueEvents persists n events queued for the consumers, as the room
// writer does, and returns their positions.
func queueEvents(t *testing.T, store storage.Store, n int, consumers ...storage.Consumer) []int64 {
	t.Helper()
	var writes []*storage.EventWrite
	for range n {
		writes = append(writes, &storage.EventWrite{Event: &storage.Event{
			EventID: id.EventID(fmt.Sprintf("$e%d%s%d", len(writes), consumers[0].ID, n)), RoomID: "!r:x",
			Type: "m.room.message", Sender: "@u:x", JSON: []byte(`{}`)}, Queued: consumers})
	}
	if err := store.PersistEvents(context.Background(), writes); err != nil {
		t.Fatal(err)
	}
	var out []int64
	for _, w := range writes {
		out = append(out, w.Event.StreamPos)
	}
	return out
}

// In order, at least once, the same transaction on every retry, removed
// on acknowledgement — and a restart resumes the transaction in flight.
func TestRunnerDeliversInOrderAtLeastOnce(t *testing.T) {
	ctx := context.Background()
	store := openStore(t)
	c := storage.Consumer{Kind: "test", ID: "a"}
	other := storage.Consumer{Kind: "test", ID: "b"}
	d := &fakeDeliverer{fail: errors.New("consumer down")}
	r, err := New(store, "test", d, nil, Options{Limit: 3})
	if err != nil {
		t.Fatal(err)
	}
	positions := queueEvents(t, store, 5, c)
	queueEvents(t, store, 2, other)

	// The first attempt fails: nothing is removed; the retry (by a new
	// runner, as after a restart) is the same transaction.
	if _, err := r.Step(ctx, "a"); err == nil {
		t.Fatal("a failed delivery was reported as sent")
	}
	r2, _ := New(store, "test", d, nil, Options{Limit: 3})
	if _, err := r2.Step(ctx, "a"); err == nil {
		t.Fatal("a failed retry was reported as sent")
	}
	if len(d.sent) != 2 || d.sent[0].ID != d.sent[1].ID || !slices.Equal(d.sent[0].Positions, positions[:3]) ||
		!slices.Equal(d.sent[1].Positions, positions[:3]) {
		t.Fatalf("first attempt and retry differ: %+v", d.sent)
	}
	if d.sent[0].Data != "fresh" || d.sent[1].Data != nil {
		t.Fatalf("Data: first %v, retry %v (a retry recomputes from Extra)", d.sent[0].Data, d.sent[1].Data)
	}
	d.fail = nil
	for {
		more, err := r2.Step(ctx, "a")
		if err != nil {
			t.Fatal(err)
		}
		if !more {
			break
		}
	}
	if !slices.Equal(d.acked, positions) {
		t.Fatalf("acknowledged %v, want %v in order", d.acked, positions)
	}
	if left, _ := store.PendingFor(ctx, c, 10); len(left) != 0 {
		t.Fatalf("still queued after acknowledgement: %v", left)
	}
	if left, _ := store.PendingFor(ctx, other, 10); len(left) != 2 {
		t.Fatalf("another consumer's queue changed: %v", left)
	}
	ids := map[int64]bool{}
	for _, s := range d.sent {
		ids[s.ID] = true
	}
	if len(ids) != 2 {
		t.Fatalf("%d transaction IDs for two transactions: %+v", len(ids), d.sent)
	}
}

// Extra travels with its transaction and becomes the cursor on
// acknowledgement, even with no queued event.
func TestRunnerExtraMovesTheCursor(t *testing.T) {
	ctx := context.Background()
	store := openStore(t)
	d := &fakeDeliverer{extra: []int64{4, 5}}
	r, _ := New(store, "test", d, nil, Options{})
	if more, err := r.Step(ctx, "a"); err != nil || !more {
		t.Fatalf("step: %v %v", more, err)
	}
	cur, err := store.QueueCursor(ctx, storage.Consumer{Kind: "test", ID: "a"})
	if err != nil || !slices.Equal(cur, []int64{4, 5}) {
		t.Fatalf("cursor %v %v", cur, err)
	}
	if len(d.sent) != 1 || !slices.Equal(d.sent[0].Extra, []int64{4, 5}) || len(d.sent[0].Positions) != 0 {
		t.Fatalf("sent %+v", d.sent)
	}
}

// A commit that queued for a consumer wakes its loop through the notifier.
func TestRunnerWakesOnQueuedChange(t *testing.T) {
	store := openStore(t)
	n := stream.NewLocal(stream.Positions{})
	delivered := make(chan []int64, 10)
	d := &chanDeliverer{out: delivered, idle: make(chan struct{}, 10)}
	r, _ := New(store, "test", d, n, Options{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r.Start(ctx, []string{"a"})
	defer r.Stop()
	<-d.idle // the loop found nothing and sleeps: only a wake-up makes it look again
	c := storage.Consumer{Kind: "test", ID: "a"}
	positions := queueEvents(t, store, 2, c)
	n.Publish(stream.Change{Stream: stream.Events, Pos: positions[1], Queued: []stream.Consumer{{Kind: "test", ID: "a"}}})
	var got []int64
	for len(got) < 2 {
		select {
		case p := <-delivered:
			got = append(got, p...)
		case <-time.After(10 * time.Second):
			t.Fatal("the queued change did not wake the consumer's loop")
		}
	}
	if !slices.Equal(got, positions) {
		t.Fatalf("delivered %v, want %v", got, positions)
	}
}

type chanDeliverer struct {
	out  chan []int64
	idle chan struct{}
}

func (d *chanDeliverer) Open(_ context.Context, _ string, pending []int64) (*Plan, bool, error) {
	if len(pending) == 0 {
		d.idle <- struct{}{}
		return nil, false, nil
	}
	return &Plan{}, false, nil
}
func (d *chanDeliverer) Deliver(_ context.Context, _ string, t *Txn) error {
	d.out <- slices.Clone(t.Positions)
	return nil
}
func (d *chanDeliverer) Acked(context.Context, string, *Txn) error { return nil }

// flakyDeliverer fails until told otherwise and reports each attempt.
type flakyDeliverer struct {
	mu       sync.Mutex
	fail     bool
	attempts chan bool // each attempt: whether it was delivered
}

func (d *flakyDeliverer) Open(_ context.Context, _ string, pending []int64) (*Plan, bool, error) {
	if len(pending) == 0 {
		return nil, false, nil
	}
	return &Plan{}, false, nil
}

func (d *flakyDeliverer) Deliver(context.Context, string, *Txn) error {
	d.mu.Lock()
	fail := d.fail
	d.mu.Unlock()
	d.attempts <- !fail
	if fail {
		return errors.New("consumer down")
	}
	return nil
}

func (d *flakyDeliverer) Acked(context.Context, string, *Txn) error { return nil }

// A failed delivery is published as Unreachable; a Reachable change ends
// the backoff at once (here an hour, which the test would not outlast).
func TestRunnerRetriesWhenReachable(t *testing.T) {
	store := openStore(t)
	n := stream.NewLocal(stream.Positions{})
	unreachable := make(chan string, 10)
	n.Observe(func(c stream.Change) {
		if c.Stream == stream.Unreachable {
			for _, q := range c.Queued {
				unreachable <- q.Kind + "/" + q.ID
			}
		}
	})
	d := &flakyDeliverer{fail: true, attempts: make(chan bool, 10)}
	r, _ := New(store, "test", d, n, Options{FirstBackoff: time.Hour, MaxBackoff: time.Hour})
	queueEvents(t, store, 1, storage.Consumer{Kind: "test", ID: "a"})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r.Start(ctx, []string{"a"})
	defer r.Stop()
	wait := func(what string, ch <-chan bool) bool {
		t.Helper()
		select {
		case v := <-ch:
			return v
		case <-time.After(10 * time.Second):
			t.Fatalf("no %s", what)
		}
		return false
	}
	if wait("first attempt", d.attempts) {
		t.Fatal("the first attempt was delivered")
	}
	select {
	case got := <-unreachable:
		if got != "test/a" {
			t.Fatalf("Unreachable for %s", got)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the failure was not published")
	}
	d.mu.Lock()
	d.fail = false
	d.mu.Unlock()
	n.Publish(stream.Change{Stream: stream.Reachable, Queued: []stream.Consumer{{Kind: "test", ID: "a"}}})
	if !wait("retry after Reachable", d.attempts) {
		t.Fatal("the retry failed")
	}
}

// A Dynamic runner starts a consumer's loop when a commit queues events
// for it, ends the loop after IdleAfter with nothing to send, and starts
// it again for the next events: nothing queued is left behind.
func TestDynamicRunnerStartsAndRetiresLoops(t *testing.T) {
	store := openStore(t)
	n := stream.NewLocal(stream.Positions{})
	d := &chanDeliverer{out: make(chan []int64, 10), idle: make(chan struct{}, 100)}
	r, _ := New(store, "test", d, n, Options{Dynamic: true, IdleAfter: 20 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r.Start(ctx, nil)
	defer r.Stop()
	if len(r.Running()) != 0 {
		t.Fatalf("loops before anything was queued: %v", r.Running())
	}
	for round := range 2 {
		c := storage.Consumer{Kind: "test", ID: "dest"}
		positions := queueEvents(t, store, 2+round, c) // distinct event IDs per round
		n.Publish(stream.Change{Stream: stream.Events, Pos: positions[len(positions)-1], Queued: []stream.Consumer{{Kind: "test", ID: "dest"}}})
		select {
		case got := <-d.out:
			if !slices.Equal(got, positions) {
				t.Fatalf("round %d: delivered %v, want %v", round, got, positions)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("round %d: the queued events did not start a loop", round)
		}
		// The loop retires once idle (polled: nothing announces it).
		deadline := time.Now().Add(10 * time.Second)
		tick := time.NewTicker(5 * time.Millisecond)
		for len(r.Running()) != 0 {
			if time.Now().After(deadline) {
				t.Fatalf("round %d: the idle loop did not end: %v", round, r.Running())
			}
			<-tick.C
		}
		tick.Stop()
	}
}

// Resume makes a loop started after a restart wait out the backoff it
// had (a Retry ends the wait), and OnFailure is told each failure with
// the wait before the next attempt, doubled from the resumed backoff.
func TestRunnerResumesBackoff(t *testing.T) {
	store := openStore(t)
	d := &flakyDeliverer{fail: true, attempts: make(chan bool, 10)}
	failures := make(chan time.Duration, 10)
	r, _ := New(store, "test", d, nil, Options{Dynamic: true, FirstBackoff: time.Second, MaxBackoff: time.Hour,
		Resume: func(string) (time.Duration, time.Duration) { return time.Hour, 10 * time.Minute },
		OnFailure: func(c string, err error, retryIn time.Duration) {
			if c == "a" && err != nil {
				failures <- retryIn
			}
		}})
	queueEvents(t, store, 1, storage.Consumer{Kind: "test", ID: "a"})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r.Start(ctx, []string{"a"})
	defer r.Stop()
	select {
	case <-d.attempts:
		t.Fatal("an attempt before the resumed backoff was over")
	default:
	}
	r.Retry("a")
	select {
	case ok := <-d.attempts:
		if ok {
			t.Fatal("the failing consumer was delivered to")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Retry did not end the resumed wait")
	}
	select {
	case in := <-failures:
		if in != time.Second {
			t.Fatalf("after a Retry the backoff starts over: retry in %v, want 1s", in)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("OnFailure was not told")
	}
}

// With InMemoryTxns a failed transaction is retried as it was (same ID,
// events and Data) and acknowledged without ever being written; IDs come
// from the persisted counter, so a new runner (a restart) never reuses one.
func TestRunnerInMemoryTxns(t *testing.T) {
	ctx := context.Background()
	store := openStore(t)
	c := storage.Consumer{Kind: "test", ID: "a"}
	d := &fakeDeliverer{fail: errors.New("consumer down"), extra: []int64{7}}
	r, _ := New(store, "test", d, nil, Options{Limit: 2, InMemoryTxns: true})
	positions := queueEvents(t, store, 3, c)
	for range 2 {
		if _, err := r.Step(ctx, "a"); err == nil {
			t.Fatal("a failed delivery was reported as sent")
		}
	}
	if _, err := store.TxnInFlight(ctx, c); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("the transaction in flight was written: %v", err)
	}
	if len(d.sent) != 2 || d.sent[0].ID != d.sent[1].ID || d.sent[1].Data != "fresh" ||
		!slices.Equal(d.sent[1].Positions, positions[:2]) {
		t.Fatalf("attempts: %+v", d.sent)
	}
	d.fail = nil
	if more, err := r.Step(ctx, "a"); err != nil || !more {
		t.Fatalf("delivery: %v, %v", more, err)
	}
	pending, err := store.PendingFor(ctx, c, 10)
	if err != nil || !slices.Equal(pending, positions[2:]) {
		t.Fatalf("left queued: %v, %v", pending, err)
	}
	if cur, err := store.QueueCursor(ctx, c); err != nil || !slices.Equal(cur, []int64{7}) {
		t.Fatalf("cursor: %v, %v", cur, err)
	}
	r2, _ := New(store, "test", d, nil, Options{Limit: 2, InMemoryTxns: true})
	if _, err := r2.Step(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if last := d.sent[len(d.sent)-1]; last.ID <= d.sent[0].ID || !slices.Equal(last.Positions, positions[2:]) {
		t.Fatalf("after a restart: %+v (first ID %d)", last, d.sent[0].ID)
	}
}
