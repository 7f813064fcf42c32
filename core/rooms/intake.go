package rooms

// The intake of events from other servers, one file per step of the
// server-server API's "Checks performed on receipt of a PDU":
//
//	intake.go          the entry (Intake) and the writer's part (processRemote)
//	intake_check.go    1–3: format, signatures, content hash (redact on mismatch)
//	intake_auth.go     4: auth against the event's own auth events (reject)
//	intake_state.go    5: the state before the event, auth against it (reject)
//	intake_softfail.go 6: auth against the current state (soft fail), and
//	                   what the event does to the room: extremities, state
//	intake_store.go    the stored event, its state group, one commit
//
// Checks 1–3 need no room state and run on the caller's goroutine; the rest
// run in the room's writer, so that remote events and local sends are
// serialised per room like any two local sends.

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"time"

	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/storage"
)

// IntakeStatus is what became of an event from another server.
type IntakeStatus int

const (
	// IntakeAccepted: stored, served to clients, a forward extremity (in
	// place of those of its prev events that were).
	IntakeAccepted IntakeStatus = iota + 1
	// IntakeSoftFailed: allowed by its auth events and the state before it
	// but not by the room's current state (check 6). Stored and part of
	// the graph (state resolution sees it when later events cite it), but
	// never served to clients nor cited by events made here.
	IntakeSoftFailed
	// IntakeRejected: not allowed by its auth events (check 4) or by the
	// state before it (check 5). Stored as rejected, with the state before
	// it as the state after it, so that later events citing it can still
	// be checked; never served, never state.
	IntakeRejected
)

func (st IntakeStatus) String() string {
	switch st {
	case IntakeAccepted:
		return "accepted"
	case IntakeSoftFailed:
		return "soft-failed"
	case IntakeRejected:
		return "rejected"
	}
	return fmt.Sprintf("IntakeStatus(%d)", int(st))
}

// IntakeResult is the outcome of Intake for an event that was stored (or
// had been before).
type IntakeResult struct {
	EventID id.EventID
	Status  IntakeStatus
	// Redacted: the content hash did not match (check 3), so the redacted
	// copy was checked and stored instead of what was received.
	Redacted bool
	// Known: the event was stored before; Status is what became of it then.
	Known bool
	// Reason says why the event was rejected or soft-failed: an
	// *events.AuthError wrapping eventauth's AuthFailError (the spec rule).
	Reason error
}

// ErrDropped is matched (errors.Is) by *DroppedError.
var ErrDropped = errors.New("rooms: event dropped")

// DroppedError is an event that failed check 1 (not a valid event of its
// room version, or of a room this server does not know) or check 2 (its
// signatures): it is not stored. Federation reports it in the PDU's entry
// of the transaction response, never as the transaction's failure.
type DroppedError struct {
	EventID id.EventID // "" when the event is too malformed to have one
	Check   string     // "format" or "signature"
	Err     error
}

func (e *DroppedError) Error() string {
	return fmt.Sprintf("event %s dropped (%s): %v", e.EventID, e.Check, e.Err)
}
func (e *DroppedError) Unwrap() error        { return e.Err }
func (e *DroppedError) Is(target error) bool { return target == ErrDropped }

// ErrMissingEvents is matched (errors.Is) by *MissingEventsError.
var ErrMissingEvents = errors.New("rooms: the event cites events this server does not have")

// MissingEventsError is an event whose prev or auth events this server does
// not have. Nothing is stored: the caller fetches them (get_missing_events,
// event_auth or the state at the event, from Origin; see RemoteRooms) and
// offers the event again. Intake does not fetch by itself, with or
// without Options.Remote: federation/inbound's /send asks the origin's
// get_missing_events for missing prev events and offers the event again,
// then, if a gap is left, IntakeFilling (which fetches the state before
// it). A prev event kept as an outlier without the state after it counts
// as missing.
type MissingEventsError struct {
	EventID id.EventID
	Origin  string
	Prev    []id.EventID
	Auth    []id.EventID
}

func (e *MissingEventsError) Error() string {
	var parts []string
	if len(e.Prev) > 0 {
		parts = append(parts, fmt.Sprintf("prev events %v", e.Prev))
	}
	if len(e.Auth) > 0 {
		parts = append(parts, fmt.Sprintf("auth events %v", e.Auth))
	}
	return fmt.Sprintf("event %s from %s cites unknown %s", e.EventID, e.Origin, strings.Join(parts, " and "))
}
func (e *MissingEventsError) Is(target error) bool { return target == ErrMissingEvents }

// Intake takes an event that origin sent (a transaction, a backfill or
// missing-events answer): wire JSON, signed by its sender's server. It
// runs the checks on receipt of a PDU and stores the event unless it is
// dropped (*DroppedError) or cites unknown events (*MissingEventsError);
// the result says whether it was accepted, soft-failed or rejected.
func (s *Service) Intake(ctx context.Context, origin string, raw []byte) (*IntakeResult, error) {
	rec, res, err := s.precheck(ctx, origin, raw)
	if rec == nil {
		return res, err
	}
	return s.intakeChecked(ctx, rec)
}

// IntakeOutcome is what became of one event of IntakeBatch: a result, or
// the error Intake would have returned for it.
type IntakeOutcome struct {
	Result *IntakeResult
	Err    error
}

// IntakeBatch is Intake for several events of one room from origin, in
// the order given (a transaction's PDUs of a room). Checks 1–3 of all of
// them run in parallel; the room's writer then takes them in order in one
// request, and stores a run of them that continue the room's one forward
// extremity without changing its state (the usual traffic of a busy room)
// in one commit. An event citing unknown events gets *MissingEventsError
// as from Intake, and so does any later one that cites it: the caller
// fetches what is missing and offers them again one by one.
func (s *Service) IntakeBatch(ctx context.Context, origin string, raws [][]byte) []IntakeOutcome {
	out := make([]IntakeOutcome, len(raws))
	if len(raws) == 1 {
		out[0].Result, out[0].Err = s.Intake(ctx, origin, raws[0])
		return out
	}
	recs := make([]*received, len(raws))
	var wg sync.WaitGroup
	sem := make(chan struct{}, max(2, runtime.GOMAXPROCS(0)))
	for i, raw := range raws {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			recs[i], out[i].Result, out[i].Err = s.precheck(ctx, origin, raw)
		}()
	}
	wg.Wait()
	var roomID id.RoomID
	var queued []*received
	var at []int
	for i, rec := range recs {
		if rec == nil {
			continue
		}
		if roomID == "" {
			roomID = rec.roomID
		}
		if rec.roomID != roomID {
			// Not one room: this one on its own.
			out[i].Result, out[i].Err = s.intakeChecked(ctx, rec)
			continue
		}
		queued, at = append(queued, rec), append(at, i)
	}
	if len(queued) == 0 {
		return out
	}
	req := &sendReq{remotes: queued, remoteErrs: make([]error, len(queued))}
	res := s.queue(ctx, roomID, req)
	for j, i := range at {
		switch {
		case res.err != nil:
			out[i].Err = res.err
		case req.remoteErrs[j] != nil:
			out[i].Err = req.remoteErrs[j]
		default:
			out[i].Result = queued[j].result
		}
	}
	return out
}

// precheck runs checks 1–3 of Intake: rec is nil when the event needs no
// writer (known before: res) or was dropped (err).
func (s *Service) precheck(ctx context.Context, origin string, raw []byte) (rec *received, res *IntakeResult, err error) {
	rec, err = s.checkFormat(ctx, origin, raw)
	if err != nil {
		return nil, nil, err
	}
	// Servers resend what they sent; the writer asks again, this only
	// spares the signature checks.
	if e, err := s.store.GetEvent(ctx, rec.eventID()); err == nil {
		return nil, knownResult(e), nil
	} else if !storageNotFound(err) {
		return nil, nil, err
	}
	if rec.ev.Type == "m.room.create" {
		// A room has one create event, stored here before anything else.
		return nil, nil, &DroppedError{EventID: rec.eventID(), Check: "format",
			Err: errors.New("a second create event for a room this server knows")}
	}
	if err := s.checkSignatures(ctx, rec); err != nil {
		return nil, nil, &DroppedError{EventID: rec.eventID(), Check: "signature", Err: err}
	}
	if err := rec.checkHash(); err != nil {
		return nil, nil, &DroppedError{EventID: rec.eventID(), Check: "format", Err: err}
	}
	return rec, nil, nil
}

// intakeChecked hands an event past checks 1–3 to its room's writer.
func (s *Service) intakeChecked(ctx context.Context, rec *received) (*IntakeResult, error) {
	res := s.queue(ctx, rec.roomID, &sendReq{remote: rec})
	if res.err != nil {
		return nil, res.err
	}
	return rec.result, nil
}

// knownResult describes an event stored before.
func knownResult(e *storage.Event) *IntakeResult {
	st := IntakeAccepted
	switch {
	case e.Rejected:
		st = IntakeRejected
	case e.SoftFailed:
		st = IntakeSoftFailed
	}
	return &IntakeResult{EventID: e.EventID, Status: st, Known: true}
}

// processRemote runs checks 4–6 on a remote event and stores it: between
// two commits of local events, never inside one. Like process, it works
// under its own deadline: a queued request is answered with what happened.
func (w *roomWriter) processRemote(r *sendReq) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if Relayed(r.ctx) {
		ctx = WithRelay(ctx)
	}
	rec := r.remote
	if err := r.ctx.Err(); err != nil {
		r.done <- sendResult{err: err}
		return
	}
	if err := w.loadState(ctx); err != nil {
		r.done <- sendResult{err: err}
		return
	}
	err := w.intake(ctx, rec)
	r.done <- sendResult{eventID: rec.eventID(), err: err}
}

// intake decides what becomes of rec, in the writer, and stores it.
func (w *roomWriter) intake(ctx context.Context, rec *received) error {
	s := w.svc
	if e, err := s.store.GetEvent(ctx, rec.eventID()); err == nil {
		rec.result = knownResult(e)
		return nil
	} else if !storageNotFound(err) {
		return err
	}
	prevs, err := s.prevEvents(ctx, rec)
	if err != nil {
		return err
	}
	v := &verdict{status: IntakeAccepted}
	if err := s.checkAuthEvents(ctx, rec); isAuthFailure(err) { // check 4
		v.reject(err)
	} else if err != nil {
		return err
	}
	before, err := s.stateBeforeEvent(ctx, w.rs, rec, prevs)
	if err != nil {
		return err
	}
	if v.status == IntakeAccepted {
		if err := s.checkStateBefore(ctx, rec, before); isAuthFailure(err) { // check 5
			v.reject(err)
		} else if err != nil {
			return err
		}
	}
	if v.status == IntakeAccepted {
		if err := w.checkCurrentState(ctx, rec, prevs); isAuthFailure(err) { // check 6
			v.status, v.reason = IntakeSoftFailed, err
		} else if err != nil {
			return err
		}
	}
	if err := w.storeRemote(ctx, rec, before, v); err != nil {
		return err
	}
	rec.result = &IntakeResult{EventID: rec.eventID(), Status: v.status, Redacted: rec.redacted, Reason: v.reason}
	return nil
}

// verdict is what the checks made of an event.
type verdict struct {
	status IntakeStatus
	reason error
}

func (v *verdict) reject(err error) { v.status, v.reason = IntakeRejected, err }
