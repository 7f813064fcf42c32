package delayed

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/core/rooms"
	"github.com/tributary-hs/tributary/core/stream"
	"github.com/tributary-hs/tributary/core/types"
	"github.com/tributary-hs/tributary/storage"
)

// Store is what the service persists to.
type Store interface {
	storage.DelayedEvents
	storage.AccountModeration
	WithTx(ctx context.Context, fn func(ctx context.Context) error) error
}

// Sender sends an event as a user (core/rooms.Service).
type Sender interface {
	Send(ctx context.Context, req *rooms.SendRequest) (id.EventID, error)
}

// Event is a pending delayed event.
type Event = storage.DelayedEvent

// Options configure the service.
type Options struct {
	// MaxDelay is the longest delay a user may ask for; 0 turns scheduling
	// off (events already pending are still sent).
	MaxDelay time.Duration
	// MaxPerUser caps each user's pending delayed events (0: no cap).
	MaxPerUser int
	Logger     *slog.Logger
	// Now is the clock (tests); nil is time.Now.
	Now func() time.Time
}

// Service schedules, manages and fires delayed events.
type Service struct {
	store    Store
	sender   Sender
	notifier stream.Notifier
	opts     Options
	log      *slog.Logger

	// wake tells the scheduler that the earliest due time or the rooms to
	// check may have changed.
	wake chan struct{}
	mu   sync.Mutex
	// stateRooms are rooms with delayed state events pending (it may hold
	// rooms without any: they cost a check); dirty are those of them whose
	// state changed since the scheduler last looked.
	stateRooms map[id.RoomID]bool
	dirty      map[id.RoomID]bool
	cancel     context.CancelFunc
	done       chan struct{}
}

// New builds the service; n (nil: none) tells it of new events, whose
// state may cancel delayed state events.
func New(store Store, sender Sender, n stream.Notifier, opts Options) (*Service, error) {
	if store == nil || sender == nil {
		return nil, errors.New("delayed: store and sender are required")
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	s := &Service{store: store, sender: sender, notifier: n, opts: opts, log: opts.Logger,
		wake: make(chan struct{}, 1), stateRooms: map[id.RoomID]bool{}, dirty: map[id.RoomID]bool{}}
	if n != nil {
		n.Observe(s.observe)
	}
	return s, nil
}

// Enabled reports whether users may schedule delayed events.
func (s *Service) Enabled() bool { return s.opts.MaxDelay > 0 }

// observe marks rooms with pending delayed state whose events advanced.
func (s *Service) observe(c stream.Change) {
	if c.Stream != stream.Events || c.RoomID == "" {
		return
	}
	s.mu.Lock()
	hit := s.stateRooms[c.RoomID]
	if hit {
		s.dirty[c.RoomID] = true
	}
	s.mu.Unlock()
	if hit {
		s.poke()
	}
}

func (s *Service) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func (s *Service) now() int64 { return s.opts.Now().UnixMilli() }

// Start runs the scheduler until Stop: it first cancels delayed state
// overridden while the server was down, then sends what fell due.
func (s *Service) Start(ctx context.Context) error {
	rs, err := s.store.DelayedStateRooms(ctx)
	if err != nil {
		return err
	}
	s.mu.Lock()
	for _, r := range rs {
		s.stateRooms[r], s.dirty[r] = true, true
	}
	s.mu.Unlock()
	ctx, s.cancel = context.WithCancel(context.WithoutCancel(ctx))
	s.done = make(chan struct{})
	go s.run(ctx)
	s.poke()
	return nil
}

// Stop ends the scheduler and waits for it; a send under way finishes.
func (s *Service) Stop() {
	if s.cancel != nil {
		s.cancel()
		<-s.done
	}
}

// retryAfter is how long the scheduler waits after a send failed for a
// reason of the server's own (the database), before trying again.
const retryAfter = 5 * time.Second

func (s *Service) run(ctx context.Context) {
	defer close(s.done)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case <-s.wake:
		case <-timer.C:
		}
		next, ok := s.pass(ctx)
		timer.Stop()
		if ok {
			timer.Reset(max(time.Until(next), 0))
		}
	}
}

// pass checks the dirty rooms, sends what is due and returns when the
// next delayed event is due (ok false: none pending).
func (s *Service) pass(ctx context.Context) (time.Time, bool) {
	s.mu.Lock()
	dirty := s.dirty
	s.dirty = map[id.RoomID]bool{}
	s.mu.Unlock()
	failed := false
	for r := range dirty {
		if _, err := s.store.CancelOverriddenDelayedState(ctx, r); err != nil && ctx.Err() == nil {
			s.log.Error("delayed events: cancelling overridden state", "room", r, "err", err)
			s.markDirty(r)
			failed = true
		}
	}
	const batch = 100
	for ctx.Err() == nil {
		due, err := s.store.DueDelayedEvents(ctx, s.now(), batch)
		if err != nil {
			if ctx.Err() == nil {
				s.log.Error("delayed events: listing due events", "err", err)
				failed = true
			}
			break
		}
		retry := 0
		for _, e := range due {
			if !s.fire(ctx, e) {
				retry++
			}
		}
		if retry > 0 {
			failed = true
		}
		if len(due) < batch || retry == len(due) {
			break
		}
	}
	if len(dirty) > 0 {
		s.refreshStateRooms(ctx)
	}
	var next time.Time
	ts, ok, err := s.store.NextDelayedEventTS(ctx)
	if err == nil && ok {
		next = time.UnixMilli(ts)
	}
	if failed || err != nil {
		if retry := time.Now().Add(retryAfter); !ok || retry.After(next) {
			next, ok = retry, true
		}
	}
	return next, ok
}

func (s *Service) markDirty(r id.RoomID) {
	s.mu.Lock()
	s.dirty[r] = true
	s.mu.Unlock()
}

// refreshStateRooms rereads the rooms with delayed state pending, which
// sends and cancellations shrink.
func (s *Service) refreshStateRooms(ctx context.Context) {
	rs, err := s.store.DelayedStateRooms(ctx)
	if err != nil {
		return // the old set holds more rooms than needed, never fewer
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	fresh := make(map[id.RoomID]bool, len(rs))
	for _, r := range rs {
		fresh[r] = true
	}
	for r := range s.stateRooms {
		if !fresh[r] && !s.dirty[r] {
			delete(s.stateRooms, r)
		}
	}
	for r := range fresh {
		s.stateRooms[r] = true
	}
}

// fire sends a due delayed event and forgets it. It reports false when
// the send failed for a reason of the server's own, to be tried again; an
// event the room refuses (the user left, lacks power…) is dropped, as a
// client's send would have been refused.
func (s *Service) fire(ctx context.Context, e *storage.DelayedEvent) bool {
	if e.StateKey != nil {
		// State another sender set since cancels it, also when the
		// notifier's word of that is still on its way.
		if _, err := s.store.CancelOverriddenDelayedState(ctx, e.RoomID); err != nil {
			return false
		}
		if _, err := s.store.GetDelayedEvent(ctx, e.DelayID); errors.Is(err, storage.ErrNotFound) {
			return true
		} else if err != nil {
			return false
		}
	}
	err := s.send(ctx, e)
	if err != nil {
		if _, matrix := types.AsError(err); !matrix {
			if ctx.Err() == nil {
				s.log.Error("delayed events: sending", "delay_id", e.DelayID, "room", e.RoomID, "err", err)
			}
			return false
		}
		s.log.Info("delayed event refused", "delay_id", e.DelayID, "room", e.RoomID, "user", e.UserID, "err", err)
	}
	if err := s.store.DeleteDelayedEvent(ctx, e.DelayID); err != nil && !errors.Is(err, storage.ErrNotFound) {
		// Sent but remembered: the next attempt finds its transaction and
		// sends nothing more.
		return false
	}
	return true
}

// txnPrefix makes a delayed event's transaction ID from its delay ID: one
// no client's own transaction of the same device is likely to collide with.
const txnPrefix = "org.matrix.msc4140."

func (s *Service) send(ctx context.Context, e *storage.DelayedEvent) error {
	suspended, locked, err := s.store.AccountRestrictions(ctx, e.UserID)
	switch {
	case errors.Is(err, storage.ErrNotFound):
		return types.Forbidden("The account is gone")
	case err != nil:
		return err
	case locked:
		return types.ErrLocked
	case suspended:
		return types.ErrSuspended
	}
	_, err = s.sender.Send(ctx, &rooms.SendRequest{RoomID: e.RoomID, Sender: e.UserID, DeviceID: e.DeviceID,
		Type: e.Type, StateKey: e.StateKey, Content: []byte(e.Content), TxnID: txnPrefix + e.DelayID})
	return err
}

// ScheduleRequest is an event to send later (PUT /send or /state with
// org.matrix.msc4140.delay).
type ScheduleRequest struct {
	RoomID   id.RoomID
	Type     string
	StateKey *string
	Content  json.RawMessage
	// TxnID is the client's transaction ID of a message send ("" for state).
	TxnID string
	Delay time.Duration
}

// Unstable error fields of MSC4140 that Synapse sends with its errors.
const (
	fieldErrcode  = "org.matrix.msc4140.errcode"
	fieldMaxDelay = "org.matrix.msc4140.max_delay"
)

// Schedule stores a delayed event of the caller and returns its delay ID.
func (s *Service) Schedule(ctx context.Context, caller *types.Principal, req ScheduleRequest) (string, error) {
	if caller == nil || caller.UserID == "" {
		return "", types.Forbidden("No caller")
	}
	if caller.Locked {
		return "", types.ErrLocked
	}
	if caller.Suspended {
		return "", types.ErrSuspended
	}
	if !s.Enabled() {
		return "", types.NewError(http.StatusBadRequest, types.CodeUnknown,
			"Delayed events are not supported on this server").With(fieldErrcode, "M_MAX_DELAY_UNSUPPORTED")
	}
	if req.Delay < 0 {
		return "", types.InvalidParam("The delay must not be negative")
	}
	if req.Delay > s.opts.MaxDelay {
		return "", types.NewError(http.StatusBadRequest, types.CodeUnknown,
			"The requested delay exceeds the allowed maximum of %d ms", s.opts.MaxDelay.Milliseconds()).
			With(fieldErrcode, "M_MAX_DELAY_EXCEEDED").With(fieldMaxDelay, s.opts.MaxDelay.Milliseconds())
	}
	if err := checkEvent(req); err != nil {
		return "", err
	}
	now := s.now()
	e := &storage.DelayedEvent{DelayID: newDelayID(), UserID: caller.UserID, DeviceID: caller.DeviceID,
		RoomID: req.RoomID, Type: req.Type, StateKey: req.StateKey, Content: req.Content,
		DelayMS: req.Delay.Milliseconds(), RunningSince: now, SendTS: now + req.Delay.Milliseconds()}
	if req.TxnID != "" {
		e.TxnKey = "send " + string(req.RoomID) + " " + req.Type + " " + req.TxnID
	}
	var existing *storage.DelayedEvent
	err := s.store.WithTx(ctx, func(ctx context.Context) error {
		if s.opts.MaxPerUser > 0 {
			n, err := s.store.CountDelayedEvents(ctx, caller.UserID)
			if err != nil {
				return err
			}
			if n >= s.opts.MaxPerUser {
				return types.NewError(http.StatusBadRequest, "M_MAX_DELAYED_EVENTS_EXCEEDED",
					"You have %d delayed events pending, the most this server keeps", n).
					With(fieldErrcode, "M_MAX_DELAYED_EVENTS_EXCEEDED")
			}
		}
		var err error
		existing, err = s.store.AddDelayedEvent(ctx, e)
		return err
	})
	if err != nil {
		return "", err
	}
	if existing != nil {
		return existing.DelayID, nil // the same request again
	}
	if e.StateKey != nil {
		s.mu.Lock()
		s.stateRooms[e.RoomID] = true
		s.mu.Unlock()
	}
	s.poke()
	return e.DelayID, nil
}

// checkEvent refuses what the room would refuse of any sender at once:
// a bad type, state key, transaction ID or content that is not an object.
func checkEvent(req ScheduleRequest) error {
	if err := types.CheckEventType(req.Type); err != nil {
		return err
	}
	if req.StateKey != nil {
		if err := types.CheckStateKey(*req.StateKey); err != nil {
			return err
		}
	}
	if err := types.CheckTxnID(req.TxnID); err != nil {
		return err
	}
	if t := strings.TrimSpace(string(req.Content)); t == "" || t[0] != '{' {
		return types.BadJSON("Event content must be a JSON object")
	}
	if req.Type == "m.room.create" {
		return types.Forbidden("m.room.create can only be sent by createRoom")
	}
	return nil
}

// newDelayID makes an unguessable delay ID: it is the capability to
// cancel, restart or send the event on the paths that need no login.
func newDelayID() string {
	const alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return "tde_" + string(b)
}

var errUnknown = types.NotFound("Unknown delayed event")

// owned reads a delayed event; owner "" lets anyone holding the ID (the
// unauthenticated paths), else it must be theirs.
func (s *Service) owned(ctx context.Context, delayID string, owner id.UserID) (*storage.DelayedEvent, error) {
	e, err := s.store.GetDelayedEvent(ctx, delayID)
	if errors.Is(err, storage.ErrNotFound) || (err == nil && owner != "" && e.UserID != owner) {
		return nil, errUnknown
	}
	return e, err
}

// Cancel forgets a delayed event without sending it.
func (s *Service) Cancel(ctx context.Context, delayID string, owner id.UserID) error {
	if _, err := s.owned(ctx, delayID, owner); err != nil {
		return err
	}
	if err := s.store.DeleteDelayedEvent(ctx, delayID); errors.Is(err, storage.ErrNotFound) {
		return errUnknown
	} else if err != nil {
		return err
	}
	s.poke()
	return nil
}

// Restart starts a delayed event's delay again from now.
func (s *Service) Restart(ctx context.Context, delayID string, owner id.UserID) error {
	if _, err := s.owned(ctx, delayID, owner); err != nil {
		return err
	}
	if err := s.store.RestartDelayedEvent(ctx, delayID, s.now()); errors.Is(err, storage.ErrNotFound) {
		return errUnknown
	} else if err != nil {
		return err
	}
	s.poke()
	return nil
}

// SendNow sends a delayed event at once. The room's refusal is the
// caller's answer; the event is forgotten either way.
func (s *Service) SendNow(ctx context.Context, delayID string, owner id.UserID) error {
	e, err := s.owned(ctx, delayID, owner)
	if err != nil {
		return err
	}
	sendErr := s.send(ctx, e)
	if _, matrix := types.AsError(sendErr); sendErr != nil && !matrix {
		return sendErr // kept, for the scheduler to try again
	}
	if err := s.store.DeleteDelayedEvent(ctx, delayID); err != nil && !errors.Is(err, storage.ErrNotFound) {
		return err
	}
	s.poke()
	return sendErr
}

// List returns a page of a user's pending delayed events (by delay ID,
// after from) and the token of the next page ("" at the end). Delayed
// state that another sender has overridden is cancelled first.
func (s *Service) List(ctx context.Context, user id.UserID, from string, limit int) ([]*Event, string, error) {
	page, err := s.store.ListDelayedEvents(ctx, user, from, limit+1)
	if err != nil {
		return nil, "", err
	}
	checked := map[id.RoomID]bool{}
	for _, e := range page {
		if e.StateKey != nil && !checked[e.RoomID] {
			checked[e.RoomID] = true
			if _, err := s.store.CancelOverriddenDelayedState(ctx, e.RoomID); err != nil {
				return nil, "", err
			}
		}
	}
	if len(checked) > 0 {
		if page, err = s.store.ListDelayedEvents(ctx, user, from, limit+1); err != nil {
			return nil, "", err
		}
	}
	next := ""
	if len(page) > limit {
		page = page[:limit]
		next = page[limit-1].DelayID
	}
	return page, next, nil
}
