package rooms

import (
	"errors"
	"slices"
	"testing"
	"time"

	"maunium.net/go/mautrix/federation/pdu"
	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/core/events"
	"github.com/tributary-hs/tributary/core/state"
)

// chain builds messages of sender, each on the one before, the first on
// prev (at depth), all with the auth events authState selects.
func (r *intakeRoom) chain(sender id.UserID, n int, prev id.EventID, depth int64, authState state.Map) ([]*pdu.PDU, [][]byte) {
	r.t.Helper()
	var evs []*pdu.PDU
	var raws [][]byte
	for i := range n {
		p := &events.Proto{Type: "m.room.message", Sender: sender, OriginServerTS: time.Now().UnixMilli(),
			Content: map[string]any{"msgtype": "m.text", "body": "chained " + string(rune('a'+i))}}
		probe := &pdu.PDU{Type: p.Type, Sender: p.Sender}
		var auth []id.EventID
		for _, k := range probe.AuthEventSelection(r.rv) {
			if eid := authState[k]; eid != "" {
				auth = append(auth, eid)
			}
		}
		ev, raw, err := r.remote.Build(r.rv, r.roomID, p, []id.EventID{prev}, auth, depth+1, nil)
		if err != nil {
			r.t.Fatal(err)
		}
		evs, raws = append(evs, ev), append(raws, raw)
		prev, depth = ev.InternalMeta.EventID, depth+1
	}
	return evs, raws
}

func TestIntakeBatch(t *testing.T) {
	t.Run("a linear run is stored, in order, and moves the extremity", func(t *testing.T) {
		r := newIntakeRoom(t, events.DefaultRoomVersion)
		join := r.joinRita()
		st := r.stateAt(join)
		evs, raws := r.chain(rita, 5, join, r.stored(join).Depth, st)
		raws = append(raws, raws[1]) // a server may repeat a PDU
		out := r.s.IntakeBatch(r.ctx, "remote.example", raws)
		for i, o := range out {
			if o.Err != nil || o.Result == nil || o.Result.Status != IntakeAccepted {
				t.Fatalf("PDU %d: %+v, %v", i, o.Result, o.Err)
			}
		}
		if id := out[5].Result.EventID; id != evs[1].InternalMeta.EventID {
			t.Fatalf("the repeated PDU answered as %s", id)
		}
		last := evs[4].InternalMeta.EventID
		if got := r.extremities(); !slices.Equal(got, []id.EventID{last}) {
			t.Fatalf("extremities %v, want the last of the run %s", got, last)
		}
		tl := r.timeline()
		for i, ev := range evs {
			if tl[4-i] != ev.InternalMeta.EventID {
				t.Fatalf("timeline %v, want the run newest first", tl[:5])
			}
			if g := r.stored(ev.InternalMeta.EventID).StateGroup; g != r.stored(join).StateGroup {
				t.Fatalf("event %d has state group %d, want the join's %d", i, g, r.stored(join).StateGroup)
			}
		}
		// The room goes on from there: a local send and another run.
		r.sendLocal("after the run")
		more, raws := r.chain(rita, 2, r.extremities()[0], r.stored(r.extremities()[0]).Depth, st)
		for i, o := range r.s.IntakeBatch(r.ctx, "remote.example", raws) {
			if o.Err != nil || o.Result.Status != IntakeAccepted {
				t.Fatalf("second run, PDU %d: %+v, %v", i, o.Result, o.Err)
			}
		}
		if got := r.extremities(); !slices.Equal(got, []id.EventID{more[1].InternalMeta.EventID}) {
			t.Fatalf("extremities %v after the second run", got)
		}
	})

	t.Run("an unauthorised event in the run is rejected, the rest accepted", func(t *testing.T) {
		r := newIntakeRoom(t, events.DefaultRoomVersion)
		join := r.joinRita()
		st := r.stateAt(join)
		first, raws := r.chain(rita, 1, join, r.stored(join).Depth, st)
		// mallory of remote.example never joined: her message names rita's
		// join as its membership auth event, which the auth rules refuse.
		mallory := id.UserID("@mallory:remote.example")
		bad, badRaw := r.chain(mallory, 1, first[0].InternalMeta.EventID, first[0].Depth, st)
		_ = bad
		out := r.s.IntakeBatch(r.ctx, "remote.example", append(raws, badRaw...))
		if out[0].Err != nil || out[0].Result.Status != IntakeAccepted {
			t.Fatalf("rita's message: %+v, %v", out[0].Result, out[0].Err)
		}
		if out[1].Err != nil || out[1].Result.Status != IntakeRejected {
			t.Fatalf("mallory's message: %+v, %v", out[1].Result, out[1].Err)
		}
		if got := r.extremities(); !slices.Equal(got, []id.EventID{first[0].InternalMeta.EventID}) {
			t.Fatalf("extremities %v, want rita's message", got)
		}
	})

	t.Run("events citing unknown events wait, with what follows them", func(t *testing.T) {
		r := newIntakeRoom(t, events.DefaultRoomVersion)
		join := r.joinRita()
		st := r.stateAt(join)
		ok, okRaws := r.chain(rita, 1, join, r.stored(join).Depth, st)
		gap := id.EventID("$unknown-prev-event")
		_, gapRaws := r.chain(rita, 2, gap, 10, st)
		out := r.s.IntakeBatch(r.ctx, "remote.example", append(okRaws, gapRaws...))
		if out[0].Err != nil || out[0].Result.Status != IntakeAccepted {
			t.Fatalf("the message on the extremity: %+v, %v", out[0].Result, out[0].Err)
		}
		for i := 1; i < 3; i++ {
			var missing *MissingEventsError
			if !errors.As(out[i].Err, &missing) {
				t.Fatalf("PDU %d: %+v, %v; want missing events", i, out[i].Result, out[i].Err)
			}
		}
		if got := r.extremities(); !slices.Equal(got, []id.EventID{ok[0].InternalMeta.EventID}) {
			t.Fatalf("extremities %v", got)
		}
	})
}
