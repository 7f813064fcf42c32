package rooms

import (
	"context"
	"slices"
	"sync"
	"testing"

	"maunium.net/go/mautrix/federation/pdu"
	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/core/events"
)

// seen is what a resolver was told of one event.
type seen struct {
	typ      string
	sender   id.UserID
	servers  []string
	relayed  bool
	received bool
}

// recordingInterest records, for every event resolved, the room's joined
// servers and whether the event is one to pass on.
type recordingInterest struct {
	mu  sync.Mutex
	got []seen
}

func (r *recordingInterest) Kind() string { return "test" }
func (r *recordingInterest) ForBatch(room InterestRoom) BatchInterest {
	return recordingBatch{r: r, room: room}
}

type recordingBatch struct {
	r    *recordingInterest
	room InterestRoom
}

func (b recordingBatch) Interested(ctx context.Context, ev *pdu.PDU) ([]string, error) {
	b.r.mu.Lock()
	defer b.r.mu.Unlock()
	b.r.got = append(b.r.got, seen{typ: ev.Type, sender: ev.Sender, servers: b.room.JoinedServers(), relayed: Relayed(ctx),
		received: Received(ctx)})
	return nil, nil
}

func (r *recordingInterest) last(t *testing.T) seen {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.got) == 0 {
		t.Fatal("nothing resolved")
	}
	return r.got[len(r.got)-1]
}

// The servers in a room, as each event leaves it (where the event is
// sent): a remote join adds its server, a kick of the server's last
// member removes it, a restart reloads them; an event handed over by
// send_join is marked as one to pass on, one from a transaction is not.
func TestInterestRoomJoinedServers(t *testing.T) {
	rec := &recordingInterest{}
	r := newIntakeRoom(t, id.RoomV11, func(o *Options) { o.Interest = []InterestResolver{rec} })
	local := []string{"example.org"}
	both := []string{"example.org", "remote.example"}
	check := func(what string, got seen, wantServers []string, relayed bool) {
		t.Helper()
		received := got.sender.Homeserver() != "example.org"
		if !slices.Equal(got.servers, wantServers) || got.relayed != relayed || got.received != received {
			t.Fatalf("%s: servers %v relayed %v received %v; want %v relayed %v received %v", what, got.servers,
				got.relayed, got.received, wantServers, relayed, received)
		}
	}
	check("alice's room", rec.last(t), local, false)

	r.joinRita()
	check("rita's join", rec.last(t), both, false)
	r.sendLocal("hello")
	check("alice's message", rec.last(t), both, false)

	if _, err := r.s.ChangeMembership(r.ctx, &MembershipRequest{RoomID: r.roomID, Sender: alice, Target: rita,
		Membership: "leave"}); err != nil {
		t.Fatal(err)
	}
	check("rita kicked", rec.last(t), local, false)

	// Rita joins again through send_join: an event to pass on.
	sk := string(rita)
	ev, raw := r.build(&events.Proto{Type: "m.room.member", StateKey: &sk, Sender: rita,
		Content: map[string]any{"membership": "join"}}, r.extremities(), nil)
	if _, err := r.s.takeMembership(r.ctx, "remote.example", r.roomID, ev.InternalMeta.EventID, raw, "join"); err != nil {
		t.Fatal(err)
	}
	check("rita's join by send_join", rec.last(t), both, true)

	// A new writer loads the room's servers from storage.
	r.s.Stop()
	s2, err := New(r.store, r.s.opts)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Stop()
	if _, err := s2.Send(r.ctx, &SendRequest{RoomID: r.roomID, Sender: alice, Type: "m.room.message",
		Content: []byte(`{"msgtype":"m.text","body":"after"}`)}); err != nil {
		t.Fatal(err)
	}
	check("a message after a restart", rec.last(t), both, false)
}
