package sync

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	gosync "sync"
	"sync/atomic"
	"time"

	"maunium.net/go/mautrix/id"

	"github.com/tidwall/gjson"

	"github.com/tributary-hs/tributary/core/ephemeral"
	"github.com/tributary-hs/tributary/core/push"
	"github.com/tributary-hs/tributary/core/rooms"
	"github.com/tributary-hs/tributary/core/stream"
	"github.com/tributary-hs/tributary/core/types"
	"github.com/tributary-hs/tributary/storage"
)

// Store is what sync reads directly.
type Store interface {
	storage.AccountData
	storage.Filters
	storage.PushCounts
	RoomsWithEventsBetween(ctx context.Context, after, upto int64) ([]id.RoomID, error)
}

// Service answers /sync.
type Service struct {
	rooms    *rooms.Reader
	eph      *ephemeral.Service
	push     *push.Service
	store    Store
	notifier stream.Notifier
	unread   *unreadCache
	// changed shares which rooms have events in a range among the
	// long-polls that ask the same.
	changed stream.Shared[[2]int64, []id.RoomID]
	// MaxTimeout caps the long-poll a client asks for.
	maxTimeout time.Duration
	// memberships caches each user's room memberships between their syncs
	// (bounded); membershipsChanged drops a user's entry when one of theirs
	// changes.
	memberships stream.Cache[id.UserID, []rooms.UserMembership]
	// generations hold, for users whose memberships changed lately, a
	// stamp of their last change (genClock's, so a stamp is never used
	// twice), so that a read that raced a change is not cached. Bounded:
	// a user forgotten gets the clock's current value, which differs from
	// any stamp read before a later change.
	generations gosync.Map // id.UserID → int64
	nGens       atomic.Int64
	genClock    atomic.Int64
	// membershipLoads shares a user's memberships read among the syncs that
	// ask at once (every long-poll a presence change woke asks for the
	// rooms of the same user).
	membershipLoads stream.Shared[membershipKey, []rooms.UserMembership]
	// deviceLists (optional, WithDeviceLists) adds the E2EE sections.
	deviceLists DeviceLists
	// rebuilds bounds the woken long-polls that build their answer at once.
	rebuilds chan struct{}
	// lane bounds the long-polls running between their waits (see Lane).
	lane *stream.Lane
	// work hands the builds of those long-polls to the builders (see
	// onBuilder), of which there are at most cap(rebuilds).
	work     chan func()
	builders atomic.Int64
	// filters are the parsed filters in use (see ResolveFilter); parsed
	// holds them for lookups that take no lock (every /sync asks), nParsed
	// counts them.
	filters stream.Shared[filterKey, *Filter]
	parsed  gosync.Map // filterKey → *Filter
	nParsed atomic.Int64
}

// laneWidth is how many long-polls work at once between their waits (see
// Lane): enough to keep the builders and the cores busy.
var laneWidth = max(8, 4*runtime.GOMAXPROCS(0))

// maxGenerations bounds the users whose last membership change is
// stamped.
const maxGenerations = 100_000

// generation is the stamp of user's last membership change; a user
// without one is given the clock's current value (so that other users'
// changes do not look like theirs), which a later change of theirs
// replaces.
func (s *Service) generation(user id.UserID) int64 {
	if g, ok := s.generations.Load(user); ok {
		return g.(int64)
	}
	g, loaded := s.generations.LoadOrStore(user, s.genClock.Load())
	if !loaded {
		s.countGeneration()
	}
	return g.(int64)
}

// countGeneration counts a new entry of generations and, past
// maxGenerations, forgets a quarter of them.
func (s *Service) countGeneration() {
	if s.nGens.Add(1) <= maxGenerations {
		return
	}
	s.generations.Range(func(k, _ any) bool {
		if _, ok := s.generations.LoadAndDelete(k); ok {
			s.nGens.Add(-1)
		}
		return s.nGens.Load() > maxGenerations*3/4
	})
}

// membershipsChanged forgets the cached memberships of users whose
// membership just changed (after each room commit).
func (s *Service) membershipsChanged(users []id.UserID) {
	for _, u := range users {
		if _, had := s.generations.Swap(u, s.genClock.Add(1)); !had {
			s.countGeneration()
		}
		s.memberships.Forget(u)
	}
}

func (s *Service) userMemberships(ctx context.Context, user id.UserID) ([]rooms.UserMembership, error) {
	return s.memberships.Get(user, func() ([]rooms.UserMembership, bool, error) {
		before := s.generation(user)
		ms, err := s.membershipLoads.Get(ctx, membershipKey{user, before}, func(ctx context.Context) ([]rooms.UserMembership, error) {
			return s.rooms.UserMemberships(ctx, user)
		})
		return ms, err == nil && s.generation(user) == before, err
	})
}

type membershipKey struct {
	user id.UserID
	gen  int64
}

// sharesRoom reports whether user is joined to one of the rooms joined
// holds (presence is shared with who shares a room).
func (s *Service) sharesRoom(joined map[id.RoomID]bool) func(ctx context.Context, user id.UserID) (bool, error) {
	return func(ctx context.Context, user id.UserID) (bool, error) {
		ms, err := s.userMemberships(ctx, user)
		if err != nil {
			return false, err
		}
		for _, m := range ms {
			if m.Membership == "join" && joined[m.RoomID] {
				return true, nil
			}
		}
		return false, nil
	}
}

// New builds the service.
func New(r *rooms.Reader, eph *ephemeral.Service, p *push.Service, store Store, n stream.Notifier, opts ...Option) (*Service, error) {
	if r == nil || eph == nil || p == nil || store == nil || n == nil {
		return nil, errors.New("sync: rooms, ephemeral, push, store and notifier are required")
	}
	s := &Service{rooms: r, eph: eph, push: p, store: store, notifier: n, maxTimeout: 5 * time.Minute,
		unread: newUnreadCache(store)}
	s.changed.Max = 1024
	s.membershipLoads.Max = 4096
	s.filters.Max = 16384
	s.rebuilds = make(chan struct{}, max(4, 2*runtime.GOMAXPROCS(0)))
	s.lane = stream.NewLane(laneWidth)
	s.work = make(chan func())
	for _, o := range opts {
		o(s)
	}
	// Observers run before the waiters wake, so cached memberships and
	// unread counts are forgotten before a woken /sync reads them.
	n.Observe(func(c stream.Change) {
		switch c.Stream {
		case stream.Receipts:
			for _, u := range c.Users {
				s.unread.forget(u, c.RoomID) // their read marker moved
			}
		case stream.Events:
			s.membershipsChanged(c.Users)
			s.spoke(c.RoomID, c.Senders)
		}
	})
	return s, nil
}

// changedRooms lists the rooms with events in (after, upto].
func (s *Service) changedRooms(ctx context.Context, after, upto int64) ([]id.RoomID, error) {
	return s.changed.Get(ctx, [2]int64{after, upto}, func(ctx context.Context) ([]id.RoomID, error) {
		return s.store.RoomsWithEventsBetween(ctx, after, upto)
	})
}

// spoke forgets the unread counts of users who sent events to a room:
// their own last event is a read marker too.
func (s *Service) spoke(roomID id.RoomID, users []id.UserID) {
	for _, u := range users {
		s.unread.forget(u, roomID)
	}
}

// Request is a parsed GET /sync.
type Request struct {
	User      id.UserID
	DeviceID  id.DeviceID
	Since     string
	Timeout   time.Duration
	FullState bool
	Filter    *Filter
	// StateAfter asks for state_after in place of state (use_state_after,
	// spec v1.16, MSC4222).
	StateAfter StateAfterMode
	// Encode asks for the answer's JSON too (Response.JSON), encoded where
	// the answer is built rather than on the request's goroutine. The
	// answer of a long-poll that timed out then has its JSON and NextBatch
	// only (what a parked long-poll keeps).
	Encode bool
	// Lane, when the caller holds one, is left while the long-poll waits
	// and taken again before it goes on; Sync returns holding it (unless
	// the request ended meanwhile).
	Lane *Lane
}

// Lane is a long-poll's place in the sync service's lane (see
// stream.Lane): the long-polls that look for news and build their answers
// run a few at a time, not in thousands at once when one message wakes a
// crowded room, so that a request outside the lane (one that wants an
// answer now) waits for a core behind a few of them. A long-poll holds its
// place while it works, leaves it while it waits (and before its answer
// is written), and is woken by a change or its timeout only once it has a
// place again.
type Lane struct {
	lane *stream.Lane
	in   bool
}

// EnterLane takes a place in the lane for a long-poll (a since token and
// a timeout), waiting for one; the caller leaves it (Lane.Leave) once the
// answer is written.
func (s *Service) EnterLane(ctx context.Context) (*Lane, error) {
	if err := s.lane.Enter(ctx); err != nil {
		return nil, err
	}
	return s.HeldLane(), nil
}

// HeldLane is the place in the lane of a request that holds one already
// (EnterLane's, or taken for it before it was read: see
// httpx.LaneListener).
func (s *Service) HeldLane() *Lane { return &Lane{lane: s.lane, in: true} }

// StreamLane is the lane, for a listener that queues requests in it.
func (s *Service) StreamLane() *stream.Lane { return s.lane }

// Leave gives the place back (a no-op if it is not held).
func (l *Lane) Leave() {
	if l != nil && l.in {
		l.in = false
		l.lane.Leave()
	}
}

// StateAfterMode is how a /sync asked for state_after, which names the field.
type StateAfterMode int

const (
	// NoStateAfter: rooms carry state, at the start of the timeline.
	NoStateAfter StateAfterMode = iota
	// StateAfterStable: use_state_after, answered with state_after.
	StateAfterStable
	// StateAfterUnstable: MSC4222's org.matrix.msc4222.use_state_after,
	// answered with org.matrix.msc4222.state_after, as clients written
	// against the MSC expect.
	StateAfterUnstable
)

// roomState fills the state field a request asked for: state, or one of
// the state_after fields (the other ones omitted).
func (m StateAfterMode) roomState(evs []*rooms.ClientEvent) (state, after, afterUnstable *StateEvents) {
	se := &StateEvents{Events: nonNil(evs)}
	switch m {
	case StateAfterStable:
		return nil, se, nil
	case StateAfterUnstable:
		return nil, nil, se
	}
	return se, nil, nil
}

// Response is the /sync answer.
type Response struct {
	NextBatch   string  `json:"next_batch"`
	Rooms       *Rooms  `json:"rooms,omitempty"`
	AccountData *Events `json:"account_data,omitempty"`
	Presence    *Events `json:"presence,omitempty"`
	ToDevice    *Events `json:"to_device,omitempty"`
	// DeviceLists and the key counts: see devicelists.go.
	DeviceLists                  *DeviceListsSection `json:"device_lists,omitempty"`
	DeviceOneTimeKeysCount       map[string]int64    `json:"device_one_time_keys_count,omitempty"`
	DeviceUnusedFallbackKeyTypes []string            `json:"device_unused_fallback_key_types,omitzero"`
	// raw is the answer's JSON, with Request.Encode.
	raw []byte
}

// Events is a list of events in a sync section.
type Events struct {
	Events []any `json:"events"`
}

// Rooms is the rooms section.
type Rooms struct {
	Join   map[id.RoomID]*JoinedRoom  `json:"join,omitempty"`
	Invite map[id.RoomID]*InvitedRoom `json:"invite,omitempty"`
	Knock  map[id.RoomID]*KnockedRoom `json:"knock,omitempty"`
	Leave  map[id.RoomID]*LeftRoom    `json:"leave,omitempty"`
}

// Timeline is a room's timeline section.
type Timeline struct {
	Events    []*rooms.ClientEvent `json:"events"`
	Limited   bool                 `json:"limited"`
	PrevBatch string               `json:"prev_batch,omitempty"`
}

// StateEvents is a room's state section.
type StateEvents struct {
	Events []*rooms.ClientEvent `json:"events"`
}

// JoinedRoom is a room the user is in.
type JoinedRoom struct {
	Summary map[string]any `json:"summary,omitempty"`
	// State, or StateAfter or StateAfterUnstable: see StateAfterMode.
	State                     *StateEvents      `json:"state,omitempty"`
	StateAfter                *StateEvents      `json:"state_after,omitempty"`
	StateAfterUnstable        *StateEvents      `json:"org.matrix.msc4222.state_after,omitempty"`
	Timeline                  Timeline          `json:"timeline"`
	AccountData               Events            `json:"account_data"`
	Ephemeral                 Events            `json:"ephemeral"`
	UnreadNotifications       Counts            `json:"unread_notifications"`
	UnreadThreadNotifications map[string]Counts `json:"unread_thread_notifications,omitempty"`
}

// Counts are unread notification counts.
type Counts struct {
	HighlightCount    int64 `json:"highlight_count"`
	NotificationCount int64 `json:"notification_count"`
}

// InvitedRoom is a room the user is invited to.
type InvitedRoom struct {
	InviteState struct {
		Events []map[string]any `json:"events"`
	} `json:"invite_state"`
}

// KnockedRoom is a room the user knocked on.
type KnockedRoom struct {
	KnockState struct {
		Events []map[string]any `json:"events"`
	} `json:"knock_state"`
}

// LeftRoom is a room the user left or was removed from.
type LeftRoom struct {
	State              *StateEvents `json:"state,omitempty"`
	StateAfter         *StateEvents `json:"state_after,omitempty"`
	StateAfterUnstable *StateEvents `json:"org.matrix.msc4222.state_after,omitempty"`
	Timeline           Timeline     `json:"timeline"`
	AccountData        Events       `json:"account_data"`
}

// Sync answers one /sync request: at once if anything changed since the
// token, else when something does or the timeout ends.
//
// A long-poll parks in the request's goroutine (net/http's, one per
// connection), and thousands park at once: its stack is kept small. Sync
// and park have small frames; everything deep (the build, which runs
// through the database driver, and with Request.Encode the JSON encoding)
// runs in answer, on a goroutine of its own for long-polls, so that the
// parked goroutine neither holds nor regrows a large stack.
func (s *Service) Sync(ctx context.Context, req *Request) (*Response, error) {
	p, err := s.plan(req)
	if err != nil {
		return nil, err
	}
	for {
		a, err := s.quiet(ctx, req, p)
		quiet := a != nil
		if err == nil && !quiet {
			a, err = s.answer(ctx, req, p)
		}
		if err != nil {
			return nil, err
		}
		var late *Response
		if !quiet {
			if p.answersNow(req, a.resp) {
				return a.resp, nil
			}
			// The answer should the wait time out is known now: the
			// parked long-poll keeps only that (with Request.Encode its
			// JSON alone), not the built answer.
			if late, err = a.timedOut(); err != nil {
				return nil, err
			}
			a.resp = nil
		}
		req.Lane.Leave()
		woke, err := s.park(ctx, req, a, p.deadline)
		if err != nil {
			return nil, err
		}
		if !woke {
			if !quiet {
				return late, nil
			}
			// Quiet until the end: the answer moves the token (and
			// carries the key counts) all the same, built in turn.
			p.woken = true
			if a, err = s.answer(ctx, req, p); err != nil {
				return nil, err
			}
			return a.resp, nil
		}
		// Something for this user may have happened: look again from the
		// same token, so nothing between since and now is skipped.
		p.woken = true
	}
}

// quiet is the wait of a long-poll that nothing concerns yet, before any
// answer is built: when no stream it does not ignore moved past its token
// (a long-poll back right after its answer, as every long-poll a message
// woke is), the answer would be empty, so it parks at once with the rooms
// it is joined to (cached) and builds only when woken or at its timeout.
// That halves the builds a message costs: each of its recipients built an
// empty answer for its next long-poll, in turn with the others' answers.
// It returns nil when an answer has to be built.
func (s *Service) quiet(ctx context.Context, req *Request, p *syncPlan) (*built, error) {
	if p.woken || p.initial || req.FullState || p.timeout <= 0 {
		return nil, nil
	}
	now := s.notifier.Current()
	ignore := ignored(req.Filter)
	for st := range now {
		if now[st] > p.since[st] && !ignore.Has(stream.Stream(st)) {
			return nil, nil
		}
	}
	ms, err := s.userMemberships(ctx, req.User)
	if err != nil {
		return nil, err
	}
	a := &built{upto: p.since, joined: map[id.RoomID]bool{}}
	for _, m := range ms {
		if m.Membership == "join" && m.Pos <= p.since[stream.Events] {
			a.joined[m.RoomID] = true
		}
	}
	return a, nil
}

// syncPlan is what Sync's loop keeps between its answers.
type syncPlan struct {
	since    stream.Positions
	initial  bool
	timeout  time.Duration
	deadline time.Time
	// woken: the long-poll was woken (and looks again).
	woken bool
}

func (s *Service) plan(req *Request) (*syncPlan, error) {
	p := &syncPlan{initial: req.Since == ""}
	if !p.initial {
		var err error
		if p.since, err = ParseToken(req.Since); err != nil {
			return nil, err
		}
	}
	p.timeout = min(req.Timeout, s.maxTimeout)
	p.deadline = time.Now().Add(p.timeout)
	return p, nil
}

// answersNow: resp is the answer (else the long-poll waits).
func (p *syncPlan) answersNow(req *Request, resp *Response) bool {
	return p.initial || req.FullState || !resp.empty() || p.timeout <= 0 || !time.Now().Before(p.deadline)
}

// built is one answer of Sync's loop: for (since, upto], and the rooms
// the user is joined to (what a long-poll waits for).
type built struct {
	resp   *Response
	joined map[id.RoomID]bool
	upto   stream.Positions
}

// timedOut is the answer of a long-poll that timed out: empty, moving the
// token to upto. With Request.Encode it is its JSON alone (see Encode).
func (a *built) timedOut() (*Response, error) {
	r := a.resp
	if next := FormatToken(a.upto); next != r.NextBatch {
		r.NextBatch = next
		if r.raw != nil {
			if err := r.encode(); err != nil {
				return nil, err
			}
		}
	}
	if r.raw == nil {
		return r, nil
	}
	return &Response{NextBatch: r.NextBatch, raw: r.raw}, nil
}

// answer builds (and with Request.Encode, encodes) the answer for since up
// to now: for long-polls on a goroutine of its own, see Sync.
func (s *Service) answer(ctx context.Context, req *Request, p *syncPlan) (*built, error) {
	since, initial, timeout := p.since, p.initial, p.timeout
	// Long-polls take turns, woken ones (one message wakes everyone in
	// its room at once) and those that just came back after an answer
	// (everyone woken comes back at once): they answer as fast in all,
	// and requests that want an answer now (timeout 0, initial syncs)
	// do not queue behind thousands of them for the cores and the
	// database.
	turn := p.woken || (timeout > 0 && !initial)
	if turn {
		select {
		case s.rebuilds <- struct{}{}:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		defer func() { <-s.rebuilds }()
	}
	a := &built{upto: s.notifier.Current()}
	run := func() error {
		var err error
		if a.resp, a.joined, err = s.build(ctx, req, since, a.upto, initial); err == nil && req.Encode {
			err = a.resp.encode()
		}
		return err
	}
	if timeout <= 0 {
		return a, run()
	}
	var err error
	var panicked any
	done := make(chan struct{})
	job := func() {
		defer func() {
			if r := recover(); r != nil {
				panicked = fmt.Sprintf("%v\n%s", r, debug.Stack())
			}
			close(done)
		}()
		err = run()
	}
	if turn {
		s.onBuilder(job)
	} else {
		go job()
	}
	<-done
	if panicked != nil {
		panic(panicked) // in the request's goroutine, whose middleware answers 500
	}
	return a, err
}

// park waits until something concerns the long-poll answered by a, or
// the deadline; it reports whether it was woken. With a lane it returns
// holding its place again, unless ctx ended. The notifier is called from
// here, not through a helper: thousands of goroutines are parked in this
// call, and each frame on their stacks counts (Go sizes new goroutines'
// stacks from the average in use).
func (s *Service) park(ctx context.Context, req *Request, a *built, deadline time.Time) (bool, error) {
	in := stream.Interest{User: req.User, Rooms: a.joined, Ignore: ignored(req.Filter)}
	var woke bool
	var err error
	if req.Lane == nil {
		woke = s.notifier.WaitUntil(ctx, in, a.upto, deadline)
		err = ctx.Err()
	} else {
		woke, err = s.notifier.WaitInLane(ctx, in, a.upto, deadline, req.Lane.lane)
		req.Lane.in = err == nil
	}
	if woke && err == nil {
		err = s.gatherPresence(ctx, in, a.upto, deadline, req.Lane)
	}
	return woke, err
}

// gatherPresence: presence is not urgent. A long-poll woken by presence
// alone lets changes gather a moment, so that a crowd coming online (a
// restart: everyone reconnects) wakes each roommate's long-poll once in a
// while, not once per arrival. Anything else ends the pause. The pause is
// a wait: the long-poll leaves its place in the lane for it.
func (s *Service) gatherPresence(ctx context.Context, interest stream.Interest, upto stream.Positions, deadline time.Time,
	lane *Lane) error {
	now := s.notifier.Current()
	if !onlyPresenceMoved(upto, now) {
		return nil
	}
	until := time.Now().Add(presenceBatch)
	if until.After(deadline) {
		until = deadline
	}
	interest.Ignore |= stream.Streams(stream.Presence)
	if lane == nil {
		s.notifier.WaitUntil(ctx, interest, now, until)
		return ctx.Err()
	}
	lane.Leave()
	_, err := s.notifier.WaitInLane(ctx, interest, now, until, lane.lane)
	lane.in = err == nil
	return err
}

// encode keeps the answer's JSON (see JSON).
func (r *Response) encode() error {
	raw, err := json.Marshal(r)
	if err != nil {
		return err
	}
	r.raw = raw
	return nil
}

// JSON is the answer encoded by encoding/json, when Request.Encode asked
// for it (else nil).
func (r *Response) JSON() []byte { return r.raw }

// onBuilder runs job on one of the builders: the goroutines that build the
// answers of the long-polls taking turns, at most one per turn. Their
// stacks, grown deep by a build once, stay grown; a goroutine per build
// grew its stack anew each time (copying it from 4 KiB up to 32 KiB or
// more, a few percent of the crowd's CPU). They are started when first
// needed and never end.
func (s *Service) onBuilder(job func()) {
	select {
	case s.work <- job:
		return
	default:
	}
	if s.builders.Add(1) <= int64(cap(s.rebuilds)) {
		go func() {
			for job := range s.work {
				// Each build goes through the global run queue, in turn
				// with requests that just arrived (see stream.Lane's
				// yield), rather than one after the other on this
				// processor for a whole time slice.
				runtime.Gosched()
				job()
			}
		}()
	} else {
		s.builders.Add(-1)
	}
	s.work <- job // a builder is free, or about to be
}

// presenceBatch is how long a long-poll woken by presence alone waits for
// more before it answers.
const presenceBatch = time.Second

// onlyPresenceMoved reports whether now differs from upto in the presence
// stream alone.
func onlyPresenceMoved(upto, now stream.Positions) bool {
	if now[stream.Presence] <= upto[stream.Presence] {
		return false
	}
	now[stream.Presence] = upto[stream.Presence]
	return !now.After(upto)
}

// ignored are the streams whose changes the filter drops, which must not
// wake the long-poll.
func ignored(f *Filter) stream.StreamSet {
	var set stream.StreamSet
	if _, wanted := f.presence(); !wanted {
		set |= stream.Streams(stream.Presence)
	}
	if !f.ephemeralAllows("m.typing") {
		set |= stream.Streams(stream.Typing)
	}
	return set
}

func (r *Response) empty() bool {
	return r.Rooms == nil && r.AccountData == nil && r.Presence == nil && r.ToDevice == nil && r.DeviceLists == nil
}

// build computes the answer for (since, upto]. It also returns the rooms
// the user is joined to (for the long-poll).
func (s *Service) build(ctx context.Context, req *Request, since, upto stream.Positions, initial bool) (*Response, map[id.RoomID]bool, error) {
	resp := &Response{NextBatch: FormatToken(upto)}
	f := req.Filter
	memberships, err := s.userMemberships(ctx, req.User)
	if err != nil {
		return nil, nil, err
	}
	fresh := initial || req.FullState
	// Each stream is read only when it moved since the token: an incremental
	// sync woken by one message costs a few queries, whatever the user's
	// number of rooms.
	adSince := since[stream.AccountData]
	if req.FullState {
		adSince = 0
	}
	var roomData map[id.RoomID][]any
	var global []any
	var pushStored bool
	if fresh || upto[stream.AccountData] > adSince {
		if roomData, global, pushStored, err = s.accountData(ctx, req.User, adSince, upto[stream.AccountData], f); err != nil {
			return nil, nil, err
		}
	}
	changedRooms := map[id.RoomID]bool{}
	if !fresh && upto[stream.Events] > since[stream.Events] {
		ids, err := s.changedRooms(ctx, since[stream.Events], upto[stream.Events])
		if err != nil {
			return nil, nil, err
		}
		for _, r := range ids {
			changedRooms[r] = true
		}
	}
	if initial || req.FullState {
		// A client starting afresh needs m.push_rules even if the user never
		// changed them (then they are the server defaults, not yet stored):
		// all of the account data was read above (adSince is 0).
		if !pushStored && f.accountData().Allows("m.push_rules") {
			content, err := s.push.AccountDataContent(ctx, req.User)
			if err != nil {
				return nil, nil, err
			}
			global = append(global, map[string]any{"type": "m.push_rules", "content": content})
		}
	}
	if len(global) > 0 {
		resp.AccountData = &Events{Events: global}
	}
	joined := map[id.RoomID]bool{}
	var joinedIDs []id.RoomID
	for _, m := range memberships {
		if m.Membership == "join" && m.Pos <= upto[stream.Events] {
			joined[m.RoomID] = true
			if f.wantsRoom(string(m.RoomID)) {
				joinedIDs = append(joinedIDs, m.RoomID)
			}
		}
	}
	var typing map[id.RoomID][]id.UserID
	if f.ephemeralAllows("m.typing") {
		typing = s.eph.TypingSince(joinedIDs, since[stream.Typing])
	}
	receiptSince := since[stream.Receipts]
	if initial || req.FullState {
		receiptSince = 0
	}
	var receipts map[id.RoomID]map[string]any
	if upto[stream.Receipts] > receiptSince && f.ephemeralAllows("m.receipt") {
		if receipts, err = s.eph.ReceiptsSince(ctx, req.User, joinedIDs, receiptSince, upto[stream.Receipts]); err != nil {
			return nil, nil, err
		}
	}
	toDevice, reached, err := s.eph.ToDeviceFor(ctx, req.User, req.DeviceID, since[stream.ToDevice], upto[stream.ToDevice])
	if err != nil {
		return nil, nil, err
	}
	if len(toDevice) > 0 {
		resp.ToDevice = &Events{Events: toAny(toDevice)}
	}
	if reached != upto[stream.ToDevice] {
		next := upto
		next[stream.ToDevice] = reached
		resp.NextBatch = FormatToken(next)
	}
	if pf, wanted := f.presence(); wanted && upto[stream.Presence] > since[stream.Presence] {
		presence, err := s.eph.PresenceSince(ctx, req.User, since[stream.Presence], upto[stream.Presence], joined, s.sharesRoom(joined))
		if err != nil {
			return nil, nil, err
		}
		var evs []any
		for _, p := range presence {
			if sender, _ := p["sender"].(string); pf.AllowsSender(sender) {
				evs = append(evs, p)
			}
		}
		if len(evs) > 0 {
			resp.Presence = &Events{Events: evs}
		}
	}
	rs := &Rooms{}
	// newlyShared are the users this sync newly shares a room with: a room
	// the user joined since the token (its members), or a member who joined
	// one of their rooms since. Their presence is sent even if it did not
	// change (as Synapse does), so that both sides see each other.
	newlyShared := map[id.UserID]bool{}
	var invites *rooms.InvitePolicy // read at the first invite
	_, presenceWanted := f.presence()
	trackShared := presenceWanted && !initial && !req.FullState
	evSince := since[stream.Events]
	if req.FullState {
		evSince = 0
	}
	// The joined rooms with something to show are read first, several at
	// a time (joinedRooms): a first sync of an account in hundreds of rooms
	// would otherwise wait for each room's reads one after the other.
	var wantJoined []rooms.UserMembership
	for _, m := range memberships {
		if m.Membership != "join" || !f.wantsRoom(string(m.RoomID)) || m.Pos > upto[stream.Events] {
			continue
		}
		_, hasTyping := typing[m.RoomID]
		_, hasReceipts := receipts[m.RoomID]
		changed := initial || m.Pos > since[stream.Events] || req.FullState
		if !changed && !changedRooms[m.RoomID] && len(roomData[m.RoomID]) == 0 && !hasTyping && !hasReceipts {
			continue // nothing happened in this room since the token
		}
		wantJoined = append(wantJoined, m)
	}
	joinedData, err := s.joinedRooms(ctx, req, wantJoined, evSince, upto[stream.Events])
	if err != nil {
		return nil, nil, err
	}
	for _, m := range memberships {
		if !f.wantsRoom(string(m.RoomID)) || m.Pos > upto[stream.Events] {
			continue
		}
		changed := initial || m.Pos > since[stream.Events] || req.FullState
		switch m.Membership {
		case "join":
			data, ok := joinedData[m.RoomID]
			if !ok {
				continue
			}
			rsync := data.sync
			ad := roomData[m.RoomID]
			var eph []any
			if users, ok := typing[m.RoomID]; ok {
				eph = append(eph, map[string]any{"type": "m.typing", "content": map[string]any{"user_ids": users}})
			}
			if rc, ok := receipts[m.RoomID]; ok {
				eph = append(eph, map[string]any{"type": "m.receipt", "content": rc})
			}
			if rsync.Empty && len(ad) == 0 && len(eph) == 0 {
				continue
			}
			if trackShared {
				if err := s.noteNewlyShared(ctx, req.User, m, rsync, newlyShared); err != nil {
					return nil, nil, err
				}
			}
			jr := &JoinedRoom{Summary: rsync.Summary,
				Timeline:    Timeline{Events: nonNil(rsync.Timeline), Limited: rsync.Limited, PrevBatch: rsync.PrevBatch},
				AccountData: Events{Events: nonNilAny(ad)}, Ephemeral: Events{Events: nonNilAny(eph)}}
			jr.State, jr.StateAfter, jr.StateAfterUnstable = req.StateAfter.roomState(rsync.State)
			for _, c := range data.counts {
				if c.ThreadID == "main" {
					jr.UnreadNotifications = Counts{HighlightCount: c.Highlights, NotificationCount: c.Notifications}
					continue
				}
				if jr.UnreadThreadNotifications == nil {
					jr.UnreadThreadNotifications = map[string]Counts{}
				}
				jr.UnreadThreadNotifications[c.ThreadID] = Counts{HighlightCount: c.Highlights, NotificationCount: c.Notifications}
			}
			if rs.Join == nil {
				rs.Join = map[id.RoomID]*JoinedRoom{}
			}
			rs.Join[m.RoomID] = jr
		case "invite", "knock":
			if !changed {
				continue
			}
			stripped, err := s.rooms.StrippedState(ctx, m.RoomID, m.EventID)
			if err != nil {
				return nil, nil, err
			}
			if m.Membership == "invite" {
				if invites == nil {
					if invites, err = rooms.LoadInvitePolicy(ctx, s.store, req.User); err != nil {
						return nil, nil, err
					}
				}
				if invites.Judge(inviterOf(stripped, req.User)) != rooms.InviteAllowed {
					// Invites from ignored users (spec, "Ignoring users"),
					// blocked ones (spec, "Invite permission") and those
					// MSC4155's settings ignore or block are not shown.
					continue
				}
				ir := &InvitedRoom{}
				ir.InviteState.Events = stripped
				if rs.Invite == nil {
					rs.Invite = map[id.RoomID]*InvitedRoom{}
				}
				rs.Invite[m.RoomID] = ir
			} else {
				kr := &KnockedRoom{}
				kr.KnockState.Events = stripped
				if rs.Knock == nil {
					rs.Knock = map[id.RoomID]*KnockedRoom{}
				}
				rs.Knock[m.RoomID] = kr
			}
		case "leave", "ban":
			if !changed || (initial && !f.includeLeave()) {
				continue
			}
			if forgotten, err := s.rooms.IsForgotten(ctx, req.User, m.RoomID); err != nil {
				return nil, nil, err
			} else if forgotten && (initial || m.Pos <= since[stream.Events]) {
				// A leave that happened since the token is shown even if
				// the room was forgotten meanwhile: the user's other
				// clients must learn that it is gone.
				continue
			}
			if wasOnlyInvited(ctx, s.rooms, m) && initial {
				continue
			}
			rsync, err := s.rooms.SyncRoom(ctx, &rooms.SyncRoomRequest{User: req.User, Device: req.DeviceID, RoomID: m.RoomID, Since: evSince,
				Upto: upto[stream.Events], MembershipPos: m.Pos, Membership: m.Membership, MembershipEvent: m.EventID,
				TimelineLimit: timelineLimit(f), Filter: f.timeline(), LazyMembers: f.lazyMembers(),
				StateAfter: req.StateAfter != NoStateAfter})
			if err != nil {
				var me *types.Error
				if errors.As(err, &me) {
					continue // the room is no longer readable to them
				}
				return nil, nil, err
			}
			if rs.Leave == nil {
				rs.Leave = map[id.RoomID]*LeftRoom{}
			}
			lr := &LeftRoom{Timeline: Timeline{Events: nonNil(rsync.Timeline), Limited: rsync.Limited, PrevBatch: rsync.PrevBatch},
				AccountData: Events{Events: nonNilAny(roomData[m.RoomID])}}
			lr.State, lr.StateAfter, lr.StateAfterUnstable = req.StateAfter.roomState(rsync.State)
			rs.Leave[m.RoomID] = lr
		}
	}
	if rs.Join != nil || rs.Invite != nil || rs.Knock != nil || rs.Leave != nil {
		resp.Rooms = rs
	}
	if err := s.addSharedPresence(ctx, f, resp, newlyShared); err != nil {
		return nil, nil, err
	}
	if err := s.addDeviceLists(ctx, req, resp, since, upto, initial); err != nil {
		return nil, nil, err
	}
	return resp, joined, nil
}

// joinedRoom is what a sync reads of one joined room.
type joinedRoom struct {
	sync   *rooms.RoomSync
	counts []storage.UnreadCount
}

// joinedRooms reads the timeline, state and unread counts of the given
// joined rooms, all together (rooms.SyncRooms): every read is bounded by
// upto, so the rooms are independent reads of the same snapshot.
func (s *Service) joinedRooms(ctx context.Context, req *Request, ms []rooms.UserMembership, evSince, upto int64) (map[id.RoomID]*joinedRoom, error) {
	out := make(map[id.RoomID]*joinedRoom, len(ms))
	if len(ms) == 0 {
		return out, nil
	}
	f := req.Filter
	var ahead readAhead
	var summaries map[id.RoomID]map[string]any
	if len(ms) > 1 {
		// What each room's read would ask on its own, asked for all at once.
		ids := make([]id.RoomID, len(ms))
		for i, m := range ms {
			ids[i] = m.RoomID
		}
		if err := s.rooms.Prefetch(ctx, ids); err != nil {
			return nil, err
		}
		var err error
		if ahead, err = s.unread.prefetch(ctx, ids, req.User, upto); err != nil {
			return nil, err
		}
		if evSince == 0 || req.FullState { // every room's summary is wanted
			if summaries, err = s.rooms.Summaries(ctx, ids, req.User); err != nil {
				return nil, err
			}
		}
	}
	reqs := make([]*rooms.SyncRoomRequest, len(ms))
	for i, m := range ms {
		reqs[i] = &rooms.SyncRoomRequest{User: req.User, Device: req.DeviceID, RoomID: m.RoomID, Since: evSince,
			Upto: upto, MembershipPos: m.Pos, Membership: m.Membership, MembershipEvent: m.EventID,
			TimelineLimit: timelineLimit(f), Filter: f.timeline(), LazyMembers: f.lazyMembers(), FullState: req.FullState,
			StateAfter: req.StateAfter != NoStateAfter, Summary: summaries[m.RoomID]}
	}
	syncs, err := s.rooms.SyncRooms(ctx, reqs)
	if err != nil {
		return nil, err
	}
	for i, m := range ms {
		counts, err := s.unread.counts(ctx, m.RoomID, req.User, upto, ahead)
		if err != nil {
			return nil, err
		}
		out[m.RoomID] = &joinedRoom{sync: syncs[i], counts: counts}
	}
	return out, nil
}

// inviterOf is the sender of the user's invite in its stripped state.
func inviterOf(stripped []map[string]any, user id.UserID) id.UserID {
	for _, e := range stripped {
		if e["type"] == "m.room.member" && e["state_key"] == user.String() {
			if sender, ok := e["sender"].(id.UserID); ok {
				return sender
			}
		}
	}
	return ""
}

// noteNewlyShared adds to shared the users a joined room's sync shows the
// user newly sharing the room with: every member when the room is new to
// the client (joined since the token), else the members whose join the
// sync carries.
func (s *Service) noteNewlyShared(ctx context.Context, user id.UserID, m rooms.UserMembership,
	rsync *rooms.RoomSync, shared map[id.UserID]bool) error {
	if rsync.Fresh {
		members, err := s.rooms.JoinedMembers(ctx, m.RoomID, user)
		if err != nil {
			return err
		}
		for u := range members {
			if u != user {
				shared[u] = true
			}
		}
		return nil
	}
	for _, evs := range [][]*rooms.ClientEvent{rsync.State, rsync.Timeline} {
		for _, e := range evs {
			if e.Type == "m.room.member" && e.StateKey != nil && *e.StateKey != user.String() &&
				gjson.GetBytes(e.Content, "membership").Str == "join" {
				shared[id.UserID(*e.StateKey)] = true
			}
		}
	}
	return nil
}

// addSharedPresence sends the presence of newly shared users that the
// presence section does not hold yet.
func (s *Service) addSharedPresence(ctx context.Context, f *Filter, resp *Response, shared map[id.UserID]bool) error {
	pf, wanted := f.presence()
	if !wanted || len(shared) == 0 {
		return nil
	}
	if resp.Presence != nil {
		for _, p := range resp.Presence.Events {
			if ev, ok := p.(map[string]any); ok {
				if sender, _ := ev["sender"].(string); sender != "" {
					delete(shared, id.UserID(sender))
				}
			}
		}
	}
	users := slices.Sorted(maps.Keys(shared))
	presence, err := s.eph.PresenceOf(ctx, users)
	if err != nil {
		return err
	}
	for _, p := range presence {
		if sender, _ := p["sender"].(string); pf.AllowsSender(sender) {
			if resp.Presence == nil {
				resp.Presence = &Events{}
			}
			resp.Presence.Events = append(resp.Presence.Events, p)
		}
	}
	return nil
}

// wasOnlyInvited: a rejected invite is not a left room worth showing on an
// initial sync. (The membership event replaced an invite.)
func wasOnlyInvited(context.Context, *rooms.Reader, rooms.UserMembership) bool { return false }

func timelineLimit(f *Filter) int {
	if t := f.timeline(); t != nil && t.Limit > 0 {
		return min(t.Limit, 1000)
	}
	return 10
}

func nonNil(evs []*rooms.ClientEvent) []*rooms.ClientEvent {
	if evs == nil {
		return []*rooms.ClientEvent{}
	}
	return evs
}

func toAny[T any](xs []T) []any {
	out := make([]any, len(xs))
	for i, x := range xs {
		out[i] = x
	}
	return out
}

func nonNilAny(evs []any) []any {
	if evs == nil {
		return []any{}
	}
	return evs
}

// accountData splits the user's account data written in (since, upto] into
// global events and per-room ones.
//
// pushStored tells whether the entries read hold stored push rules (with
// since 0, whether the user has any: as push.HasStored says, without its
// query).
func (s *Service) accountData(ctx context.Context, user id.UserID, since, upto int64, f *Filter) (perRoom map[id.RoomID][]any,
	global []any, pushStored bool, err error) {
	entries, err := s.store.AccountDataSince(ctx, user, since)
	if err != nil {
		return nil, nil, false, err
	}
	perRoom = map[id.RoomID][]any{}
	for _, e := range entries {
		if e.RoomID == "" && e.Type == "m.push_rules" {
			pushStored = true
		}
		if e.StreamPos > upto {
			continue
		}
		ev := map[string]any{"type": e.Type, "content": e.Content}
		if e.RoomID == "" {
			if f.accountData().Allows(e.Type) {
				global = append(global, ev)
			}
			continue
		}
		if rf := f.roomAccountData(); rf != nil && !typeAllowed(rf, e.Type) {
			continue
		}
		perRoom[e.RoomID] = append(perRoom[e.RoomID], ev)
	}
	return perRoom, global, pushStored, nil
}

func typeAllowed(f *rooms.EventFilter, t string) bool {
	tf := &EventTypeFilter{Types: f.Types, NotTypes: f.NotTypes}
	return tf.Allows(t)
}

// CreateFilter stores a filter for the user (POST /user/{userId}/filter).
func (s *Service) CreateFilter(ctx context.Context, caller, user id.UserID, raw []byte) (string, error) {
	if caller != user {
		return "", types.Forbidden("You can only create filters for yourself")
	}
	if _, err := ParseFilter(raw); err != nil {
		return "", err
	}
	return s.store.CreateFilter(ctx, user, raw)
}

// GetFilter returns a stored filter (GET /user/{userId}/filter/{filterId}).
func (s *Service) GetFilter(ctx context.Context, caller, user id.UserID, filterID string) ([]byte, error) {
	if caller != user {
		return nil, types.Forbidden("You can only read your own filters")
	}
	raw, err := s.store.GetFilter(ctx, user, filterID)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, types.NotFound("No such filter")
	}
	return raw, err
}

// ResolveFilter turns the filter parameter of /sync (an ID or inline JSON) into a filter.
// Filters never change once stored, so each is read and parsed once, not
// at every long-poll of every client (so are short inline ones); callers
// must not change what they get.
func (s *Service) ResolveFilter(ctx context.Context, user id.UserID, param string) (*Filter, error) {
	if param == "" {
		return nil, nil
	}
	key, load := filterKey{user, param}, func(ctx context.Context) (*Filter, error) {
		raw, err := s.GetFilter(ctx, user, user, param)
		if err != nil {
			return nil, err
		}
		return ParseFilter(raw)
	}
	if strings.HasPrefix(strings.TrimSpace(param), "{") {
		if len(param) > 2048 {
			return ParseFilter([]byte(param))
		}
		key, load = filterKey{param: param}, func(context.Context) (*Filter, error) {
			return ParseFilter([]byte(param))
		}
	}
	// A crowd's long-polls all ask at once, so the filters in use are
	// found without a lock; the first asks for a filter share its read.
	if f, ok := s.parsed.Load(key); ok {
		return f.(*Filter), nil
	}
	f, err := s.filters.Get(ctx, key, load)
	if err != nil {
		return nil, err
	}
	if _, loaded := s.parsed.LoadOrStore(key, f); !loaded && s.nParsed.Add(1) > int64(s.filters.Max) {
		s.parsed.Clear() // bounded: the filters in use come back
		s.nParsed.Store(0)
	}
	return f, nil
}

// filterKey names a stored filter (user and ID) or an inline one (param).
type filterKey struct {
	user  id.UserID
	param string
}
