package rooms

// Several events of one room from another server in one writer request
// (IntakeBatch): a run of events that each follow the room's one forward
// extremity and change no state is checked against the writer's state and
// stored in one commit; anything else is taken one event at a time as
// processRemote does.

import (
	"context"
	"fmt"
	"slices"
	"time"

	"maunium.net/go/mautrix/federation/pdu"
	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/storage"
)

// remoteRun is the run of events laid on the writer's state, not stored
// yet.
type remoteRun struct {
	writes []*storage.EventWrite
	built  []*pdu.PDU
	// at are the indexes in the request of the events the run answers.
	at []int
	// groups are the state groups of the run's events.
	groups map[id.EventID]int64
}

func (w *roomWriter) processRemoteBatch(r *sendReq) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if Relayed(r.ctx) {
		ctx = WithRelay(ctx)
	}
	run := &remoteRun{groups: map[id.EventID]int64{}}
	flush := func() {
		if len(run.at) == 0 {
			return
		}
		if len(run.writes) > 0 {
			if err := w.storeRun(ctx, run); err != nil {
				for _, j := range run.at {
					r.remoteErrs[j] = err
				}
			}
		}
		run = &remoteRun{groups: map[id.EventID]int64{}}
	}
	for j, rec := range r.remotes {
		if err := r.ctx.Err(); err != nil {
			r.remoteErrs[j] = err
			continue
		}
		if err := w.loadState(ctx); err != nil {
			r.remoteErrs[j] = err
			continue
		}
		ok, err := w.intakeLinear(ctx, rec, run)
		if err != nil {
			r.remoteErrs[j] = err
			continue
		}
		if ok {
			run.at = append(run.at, j)
			continue
		}
		flush()
		if err := w.loadState(ctx); err != nil {
			r.remoteErrs[j] = err
			continue
		}
		r.remoteErrs[j] = w.intake(ctx, rec)
	}
	flush()
	r.done <- sendResult{}
}

// intakeLinear takes rec into the run when it follows the room's one
// forward extremity, changes no state and passes the checks: its state
// before is the writer's current state, so checks 4–6 read nothing but
// its auth events. Not ok (and nothing done) for any other event, or one
// the checks fail: processRemote's path decides those.
func (w *roomWriter) intakeLinear(ctx context.Context, rec *received, run *remoteRun) (bool, error) {
	s, rs, ev := w.svc, w.rs, rec.ev
	if rec.legacy != nil || ev.StateKey != nil || ev.Type == "m.room.redaction" || len(ev.PrevEvents) != 1 ||
		len(rs.extremities) != 1 || ev.PrevEvents[0] != rs.extremities[0] || rs.group == 0 {
		return false, nil
	}
	eid := rec.eventID()
	if _, dup := run.groups[eid]; dup {
		rec.result = &IntakeResult{EventID: eid, Status: IntakeAccepted, Redacted: rec.redacted, Known: true}
		return true, nil
	}
	if _, err := s.store.GetEvent(ctx, eid); err == nil {
		return false, nil // known: answered as such by the other path
	} else if !storageNotFound(err) {
		return false, err
	}
	// The state before the event is the writer's only when its prev event
	// holds it as its group.
	prev := ev.PrevEvents[0]
	group, inRun := run.groups[prev]
	if !inRun {
		p, err := s.store.GetEvent(ctx, prev)
		if storageNotFound(err) {
			return false, nil
		} else if err != nil {
			return false, err
		}
		if p.Outlier || p.Rejected || p.SoftFailed || p.RoomID != rec.roomID {
			return false, nil
		}
		group = p.StateGroup
	}
	if group != rs.group {
		return false, nil
	}
	auth, err := s.loadPDUs(ctx, ev.AuthEvents)
	if err != nil {
		return false, err
	}
	if slices.Contains(auth, nil) {
		return false, nil // missing auth events: the other path says so
	}
	if err := s.checkAuthEvents(ctx, rec); isAuthFailure(err) { // check 4
		return false, nil
	} else if err != nil {
		return false, err
	}
	before := &priorState{state: rs.state, live: true, group: rs.group, chainLen: rs.chainLen}
	if err := s.checkStateBefore(ctx, rec, before); isAuthFailure(err) { // check 5
		return false, nil
	} else if err != nil {
		return false, err
	}
	// Check 6 passes: the state before the event is the current state.
	b := newBatch(rs)
	wr, err := w.layRemote(ctx, b, rec, before, &verdict{status: IntakeAccepted})
	if err != nil {
		return false, err
	}
	if wr.Event.StateGroup != rs.group || len(wr.CurrentState) > 0 {
		return false, fmt.Errorf("intake of %s: a state-less event changed the state", eid)
	}
	// The writer's state moves on now; storeRun commits the run, or the
	// state is reloaded when that fails.
	b.commit()
	run.writes = append(run.writes, wr)
	run.built = append(run.built, ev)
	run.groups[eid] = wr.Event.StateGroup
	rec.result = &IntakeResult{EventID: eid, Status: IntakeAccepted, Redacted: rec.redacted}
	return true, nil
}

// storeRun commits the run's events in one transaction; only the last
// moves the stored forward extremities.
func (w *roomWriter) storeRun(ctx context.Context, run *remoteRun) error {
	s := w.svc
	for _, wr := range run.writes[:len(run.writes)-1] {
		wr.Extremities = nil
	}
	if slices.ContainsFunc(run.writes, func(wr *storage.EventWrite) bool { return wr.Event.RelatesTo != "" }) {
		s.relWrites.Add(1)
		defer s.relWrites.Add(-1)
	}
	if err := s.store.PersistEvents(ctx, run.writes); err != nil {
		w.rs = nil // the writer's state ran ahead of storage: reload
		return fmt.Errorf("persist events: %w", err)
	}
	w.publish(run.writes, run.built)
	return nil
}
