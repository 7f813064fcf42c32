package sync

import (
	"context"
	"testing"

	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/core/rooms"
	"github.com/tributary-hs/tributary/core/stream"
)

// A long-poll whose token is current parks without building an answer,
// with the rooms it is joined to; one that has something to see since its
// token, or that must answer at once, builds.
func TestQuietLongPollParksWithoutBuilding(t *testing.T) {
	user := id.UserID("@u:example.org")
	var start stream.Positions
	start[stream.Events], start[stream.Presence] = 10, 3
	n := stream.NewLocal(start)
	s := &Service{notifier: n}
	_, _ = s.memberships.Get(user, func() ([]rooms.UserMembership, bool, error) {
		return []rooms.UserMembership{
			{RoomID: "!joined:example.org", Membership: "join", Pos: 5},
			{RoomID: "!left:example.org", Membership: "leave", Pos: 6},
			{RoomID: "!invited:example.org", Membership: "invite", Pos: 7},
		}, true, nil
	})
	noPresence, err := ParseFilter([]byte(`{"presence":{"types":[]}}`))
	if err != nil {
		t.Fatal(err)
	}
	longPoll := &Request{User: user, Timeout: 30_000_000_000}
	plan := func(since stream.Positions) *syncPlan { return &syncPlan{since: since, timeout: longPoll.Timeout} }
	ctx := context.Background()

	a, err := s.quiet(ctx, longPoll, plan(start))
	if err != nil || a == nil {
		t.Fatalf("current token: quiet = %v, %v; want a parked long-poll", a, err)
	}
	if a.resp != nil || a.upto != start || len(a.joined) != 1 || !a.joined["!joined:example.org"] {
		t.Fatalf("parked with resp %v, upto %v, joined %v; want no answer, the token, the joined room", a.resp, a.upto, a.joined)
	}

	n.Publish(stream.Change{Stream: stream.Presence, Pos: 4, Users: []id.UserID{"@v:example.org"}})
	if a, _ := s.quiet(ctx, longPoll, plan(start)); a != nil {
		t.Fatal("presence moved since the token: parked without building")
	}
	filtered := &Request{User: user, Timeout: longPoll.Timeout, Filter: noPresence}
	if a, _ := s.quiet(ctx, filtered, plan(start)); a == nil {
		t.Fatal("only presence, which the filter drops, moved: built an answer")
	}

	for name, tc := range map[string]struct {
		req *Request
		p   *syncPlan
	}{
		"woken":      {longPoll, &syncPlan{since: n.Current(), timeout: longPoll.Timeout, woken: true}},
		"initial":    {longPoll, &syncPlan{initial: true, timeout: longPoll.Timeout}},
		"timeout 0":  {&Request{User: user}, &syncPlan{since: n.Current()}},
		"full state": {&Request{User: user, Timeout: longPoll.Timeout, FullState: true}, plan(n.Current())},
	} {
		if a, _ := s.quiet(ctx, tc.req, tc.p); a != nil {
			t.Errorf("%s: parked without building", name)
		}
	}
}
