package ephemeral

import (
	"context"
	"path/filepath"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"maunium.net/go/mautrix/federation"
	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/core/events"
	"github.com/tributary-hs/tributary/core/rooms"
	"github.com/tributary-hs/tributary/core/stream"
	"github.com/tributary-hs/tributary/storage"
	"github.com/tributary-hs/tributary/storage/sqlite"
)

type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

const (
	alice = id.UserID("@alice:example.org")
	bob   = id.UserID("@bob:example.org")
	carol = id.UserID("@carol:example.org")
)

// presenceFixture: alice and bob share a room, carol is alone in hers;
// changes are the presence changes published.
type presenceFixture struct {
	eph     *Service
	store   storage.Store
	clock   *clock
	shared  id.RoomID
	mu      sync.Mutex
	changes []stream.Change
}

func newPresenceFixture(t *testing.T) *presenceFixture {
	t.Helper()
	ctx := context.Background()
	store, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "presence.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	n := stream.NewLocal(stream.Positions{})
	rs, err := rooms.New(store, rooms.Options{ServerName: "example.org", Notifier: n,
		Signer: events.NewSigner("example.org", federation.GenerateSigningKey())})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rs.Stop)
	f := &presenceFixture{store: store, clock: &clock{now: time.UnixMilli(1_700_000_000_000)}}
	if f.shared, err = rs.CreateRoom(ctx, &rooms.CreateRequest{Creator: alice, Preset: "public_chat"}); err != nil {
		t.Fatal(err)
	}
	if _, err := rs.ChangeMembership(ctx, &rooms.MembershipRequest{RoomID: f.shared, Sender: bob, Target: bob, Membership: "join"}); err != nil {
		t.Fatal(err)
	}
	if _, err := rs.CreateRoom(ctx, &rooms.CreateRequest{Creator: carol, Preset: "public_chat"}); err != nil {
		t.Fatal(err)
	}
	n.Observe(func(c stream.Change) {
		if c.Stream == stream.Presence {
			f.mu.Lock()
			f.changes = append(f.changes, c)
			f.mu.Unlock()
		}
	})
	f.eph, err = New(store, rs.Reader, n, Options{ServerName: "example.org", PresenceEnabled: true,
		OfflineAfter: time.Minute, Now: f.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.eph.Stop)
	return f
}

func (f *presenceFixture) published() []stream.Change {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.changes)
}

func (f *presenceFixture) stored(t *testing.T, user id.UserID) *storage.Presence {
	t.Helper()
	p, err := f.store.GetPresence(context.Background(), user)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// A user who keeps syncing while online writes their presence once, not
// every minute; a change is published once, to the user and their rooms.
func TestSyncingWhileOnlineWritesOnce(t *testing.T) {
	f := newPresenceFixture(t)
	ctx := context.Background()
	for range 60 { // ten minutes of long-polls
		done, err := f.eph.MarkActive(ctx, alice, "online")
		if err != nil {
			t.Fatal(err)
		}
		f.clock.advance(10 * time.Second)
		done()
	}
	got := f.published()
	if len(got) != 1 {
		t.Fatalf("ten minutes of syncs published %d presence changes, want 1", len(got))
	}
	if c := got[0]; !slices.Equal(c.Users, []id.UserID{alice}) || !slices.Equal(c.Rooms, []id.RoomID{f.shared}) ||
		c.RoomID != "" {
		t.Fatalf("the change names users %v, rooms %v, room %q: want alice and her one room", c.Users, c.Rooms, c.RoomID)
	}
	if pos, err := f.store.MaxPresencePos(ctx); err != nil || pos != 1 {
		t.Fatalf("presence position %d %v, want 1", pos, err)
	}
	// last_active_ago follows the syncs, not the one write.
	evs, err := f.eph.PresenceSince(ctx, bob, 0, 1, map[id.RoomID]bool{f.shared: true}, func(context.Context, id.UserID) (bool, error) { return true, nil })
	if err != nil || len(evs) != 1 {
		t.Fatalf("bob's presence events %v %v", evs, err)
	}
	content := evs[0]["content"].(map[string]any)
	if content["last_active_ago"] != int64(10_000) || content["currently_active"] != true {
		t.Fatalf("alice's presence %v: want last active 10 s ago (her last sync), currently active", content)
	}
}

// A user whose syncs stopped goes offline OfflineAfter after the last one
// ended; never while one runs.
func TestSweeperMarksStoppedUsersOffline(t *testing.T) {
	f := newPresenceFixture(t)
	ctx := context.Background()
	done, err := f.eph.MarkActive(ctx, alice, "online")
	if err != nil {
		t.Fatal(err)
	}
	running, err := f.eph.MarkActive(ctx, bob, "unavailable")
	if err != nil {
		t.Fatal(err)
	}
	defer running()
	done()
	f.clock.advance(59 * time.Second)
	f.eph.sweep(ctx)
	if p := f.stored(t, alice); p.Presence != "online" {
		t.Fatalf("alice is %s 59 s after her sync", p.Presence)
	}
	f.clock.advance(2 * time.Second)
	f.eph.sweep(ctx)
	if p := f.stored(t, alice); p.Presence != "offline" {
		t.Fatalf("alice is %s 61 s after her last sync, want offline", p.Presence)
	}
	if p := f.stored(t, bob); p.Presence != "unavailable" {
		t.Fatalf("bob, whose sync runs, is %s", p.Presence)
	}
	before := len(f.published())
	f.clock.advance(time.Hour)
	f.eph.sweep(ctx)
	if n := len(f.published()); n != before {
		t.Fatal("a swept user was marked offline again")
	}
	// Back: online again, with a new change.
	done, err = f.eph.MarkActive(ctx, alice, "online")
	if err != nil {
		t.Fatal(err)
	}
	done()
	if p := f.stored(t, alice); p.Presence != "online" {
		t.Fatalf("alice syncing again is %s", p.Presence)
	}
}

// PresenceSince asks visible only about the users whose presence changed
// in the range, and gives out only those it accepts and the viewer.
func TestPresenceSinceChecksOnlyChangedUsers(t *testing.T) {
	f := newPresenceFixture(t)
	ctx := context.Background()
	for _, u := range []id.UserID{alice, bob, carol} {
		if err := f.eph.SetPresence(ctx, u, u, "online", ""); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.eph.SetPresence(ctx, carol, carol, "online", "busy"); err != nil {
		t.Fatal(err)
	}
	var asked []id.UserID
	visible := func(_ context.Context, u id.UserID) (bool, error) {
		asked = append(asked, u)
		return u == alice, nil
	}
	bobsRooms := map[id.RoomID]bool{f.shared: true}
	evs, err := f.eph.PresenceSince(ctx, bob, 1, 4, bobsRooms, visible)
	if err != nil {
		t.Fatal(err)
	}
	// Carol's changes were published with her rooms, which bob is not in.
	if len(asked) != 0 {
		t.Fatalf("visible was asked about %v, want nobody (carol's rooms were published with her change)", asked)
	}
	if len(evs) != 1 || evs[0]["sender"] != string(bob) {
		t.Fatalf("bob's presence events %v, want his own", evs)
	}
	// A change published elsewhere without its rooms is checked with
	// visible; one with them is shown in those rooms without asking.
	f.eph.observePresence(stream.Change{Stream: stream.Presence, Pos: 5, Users: []id.UserID{carol}})
	f.eph.observePresence(stream.Change{Stream: stream.Presence, Pos: 6, Users: []id.UserID{alice},
		Rooms: []id.RoomID{f.shared}})
	asked = nil
	if evs, err = f.eph.PresenceSince(ctx, bob, 4, 6, bobsRooms, visible); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(asked, []id.UserID{carol}) {
		t.Fatalf("visible was asked about %v, want carol (published without rooms)", asked)
	}
	var senders []string
	for _, ev := range evs {
		senders = append(senders, ev["sender"].(string))
	}
	if !slices.Equal(senders, []string{string(alice)}) {
		t.Fatalf("bob sees the presence of %v, want alice's (in his room)", senders)
	}
}

// The syncs that give out a change at the same moment share its event;
// a later moment, or a newer activity of the user, gets an event of its own.
func TestPresenceEventsAreSharedAtTheSameMoment(t *testing.T) {
	f := newPresenceFixture(t)
	ctx := context.Background()
	done, err := f.eph.MarkActive(ctx, alice, "online")
	if err != nil {
		t.Fatal(err)
	}
	done()
	all := func(context.Context, id.UserID) (bool, error) { return true, nil }
	since := func() map[string]any {
		t.Helper()
		evs, err := f.eph.PresenceSince(ctx, bob, 0, 1, map[id.RoomID]bool{f.shared: true}, all)
		if err != nil || len(evs) != 1 {
			t.Fatalf("bob's presence events %v %v", evs, err)
		}
		return evs[0]
	}
	ago := func(ev map[string]any) any { return ev["content"].(map[string]any)["last_active_ago"] }
	first := since()
	if again := since(); reflect.ValueOf(again).Pointer() != reflect.ValueOf(first).Pointer() {
		t.Fatal("two syncs at the same moment built an event each")
	}
	f.clock.advance(time.Second)
	later := since()
	if ago(first) != int64(0) || ago(later) != int64(1000) {
		t.Fatalf("last_active_ago %v then %v: want 0, then 1000 a second later", ago(first), ago(later))
	}
	done, err = f.eph.MarkActive(ctx, alice, "online") // active again: no change published
	if err != nil {
		t.Fatal(err)
	}
	done()
	if ev := since(); ago(ev) != int64(0) {
		t.Fatalf("last_active_ago %v after a new activity: want 0", ago(ev))
	}
}
