package rooms

import (
	"context"
	"errors"
	"testing"

	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/federation/pdu"
	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/core/events"
	"github.com/tributary-hs/tributary/core/push"
	"github.com/tributary-hs/tributary/storage"
)

// A fork whose resolution leaves a key with no candidate that passes the
// auth checks takes the key out of the current state: rita bans zed (never
// in the room) while rob, above her, demotes her on another branch. Once
// both are here, rob's power levels come first, rita's ban fails, and zed
// has no membership at all — as every server resolving the same branches
// finds — where the room had kept the ban.
func TestIntakeForkDropsKeyWithoutCandidate(t *testing.T) {
	r := newIntakeRoom(t, id.RoomV11)
	r.joinRita()
	rob := id.UserID("@rob:remote.example")
	sk := string(rob)
	_, raw := r.build(&events.Proto{Type: "m.room.member", StateKey: &sk, Sender: rob,
		Content: map[string]any{"membership": "join"}}, r.extremities(), nil)
	r.mustIntake(raw, IntakeAccepted)
	empty := ""
	if _, err := r.s.Send(r.ctx, &SendRequest{RoomID: r.roomID, Sender: alice, Type: "m.room.power_levels", StateKey: &empty,
		Content: []byte(`{"users":{"@alice:example.org":100,"@rob:remote.example":100,"@rita:remote.example":75}}`)}); err != nil {
		t.Fatal(err)
	}
	base := r.extremities()
	zed := "@zed:remote.example"
	ban, banRaw := r.build(&events.Proto{Type: "m.room.member", StateKey: &zed, Sender: rita,
		Content: map[string]any{"membership": "ban"}}, base, nil)
	demote, demoteRaw := r.build(&events.Proto{Type: "m.room.power_levels", StateKey: &empty, Sender: rob,
		Content: map[string]any{"users": map[string]int{alice.String(): 100, rob.String(): 100}}}, base, nil)
	r.mustIntake(banRaw, IntakeAccepted)
	if got := r.currentMember(id.UserID(zed)); got != ban.InternalMeta.EventID {
		t.Fatalf("zed's membership after the ban: %s", got)
	}
	r.mustIntake(demoteRaw, IntakeAccepted)
	if got, err := r.store.CurrentStateEvent(r.ctx, r.roomID, "m.room.member", zed); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("zed's membership after the fork is resolved: %s, %v (want none)", got, err)
	}
	if got, err := r.store.CurrentStateEvent(r.ctx, r.roomID, "m.room.power_levels", ""); err != nil || got != demote.InternalMeta.EventID {
		t.Fatalf("power levels after the fork: %s, %v", got, err)
	}
	// The writer's state agrees: alice's next event's state has no zed.
	r.sendLocal("after the fork")
	ext := r.extremities()
	if len(ext) != 1 {
		t.Fatalf("extremities after alice's message: %v", ext)
	}
	if st := r.stateAt(ext[0]); st[pdu.StateKey{Type: "m.room.member", StateKey: zed}] != "" {
		t.Fatalf("state after alice's message still has zed: %s", st[pdu.StateKey{Type: "m.room.member", StateKey: zed}])
	}
}

// A power levels event from another server is taken in a room with local
// members: what reads the new state before the commit (push rules reading
// the power levels) finds the event among the batch's, not in storage.
func TestIntakeRemotePowerLevels(t *testing.T) {
	r := newIntakeRoom(t, id.RoomV11, func(o *Options) { o.Pusher = nopPusher{} })
	r.joinRita()
	empty := ""
	if _, err := r.s.Send(r.ctx, &SendRequest{RoomID: r.roomID, Sender: alice, Type: "m.room.power_levels", StateKey: &empty,
		Content: []byte(`{"users":{"@alice:example.org":100,"@rita:remote.example":100}}`)}); err != nil {
		t.Fatal(err)
	}
	pl, raw := r.build(&events.Proto{Type: "m.room.power_levels", StateKey: &empty, Sender: rita,
		Content: map[string]any{"users": map[string]int{alice.String(): 100, rita.String(): 100}, "state_default": 60}},
		r.extremities(), nil)
	r.mustIntake(raw, IntakeAccepted)
	if got, err := r.store.CurrentStateEvent(r.ctx, r.roomID, "m.room.power_levels", ""); err != nil || got != pl.InternalMeta.EventID {
		t.Fatalf("power levels: %s, %v", got, err)
	}
}

// nopPusher evaluates no rules: it makes the writer run the push step.
type nopPusher struct{}

func (nopPusher) AppendEvaluate(context.Context, *push.RoomContext, *event.Event, []id.UserID, []push.Outcome) ([]push.Outcome, error) {
	return nil, nil
}
func (nopPusher) CopyRoomRules(context.Context, id.UserID, id.RoomID, id.RoomID) error { return nil }
