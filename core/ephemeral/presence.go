package ephemeral

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/core/stream"
	"github.com/tributary-hs/tributary/core/types"
	"github.com/tributary-hs/tributary/storage"
)

// Presence (Client-Server API, "Presence").
//
// A position of the presence stream marks a change of a user's presence or
// status message, never mere activity: a user who keeps syncing while
// online writes nothing and wakes nobody. Activity (syncs, presence set to
// online) is kept in memory, per user, and last_active_ago is computed from
// it whenever a presence event is given out; the stored last_active_ts is
// that of the last change. "online" means a client is connected (a sync
// runs, or ended less than Options.OfflineAfter ago): the sweeper marks
// offline those who stopped syncing, so currently_active (true while
// online) is followed by a change when they leave, as the spec asks.
//
// A change is published once, naming the user's rooms, so that only the
// long-polls of those rooms wake (core/stream indexes waiters by room).
// A woken /sync learns whose presence changed in its range from presenceLog,
// which the notifier feeds in every process, and checks each of those users
// against its own rooms; only when the log does not cover the range (a token
// older than the process) does it ask the database, once.
//
// Activity is per process: with several processes serving /sync, a user's
// syncs should reach one of them (as Synapse's presence writer), or they
// may be swept offline by another.

const (
	presenceOnline      = "online"
	presenceOffline     = "offline"
	presenceUnavailable = "unavailable"
)

// presenceStates are the states a client may set.
var presenceStates = []string{presenceOnline, presenceOffline, presenceUnavailable}

type presenceState struct {
	log presenceLog
	// users are the users this process saw syncing or setting their
	// presence (and, after a start, those stored as not offline).
	users sync.Map // id.UserID → *activity
	// loads shares the read of a changed user's row among the syncs that
	// the change woke, when another process wrote it.
	loads stream.Shared[presenceKey, *storage.Presence]

	stop context.CancelFunc
	done chan struct{}
}

type presenceKey struct {
	user id.UserID
	pos  int64
}

func (p *presenceState) init(start int64) {
	p.log.floor = start
	p.log.max = 16384
	p.loads.Max = 4096
}

// activity is what this process knows of a user's presence.
type activity struct {
	// latest is the newest presence position published for the user; the
	// notifier's observer sets it, so it takes no lock.
	latest atomic.Int64
	// lastActive is the last time (Unix ms) the user was active here: a
	// sync or their presence set to online.
	lastActive atomic.Int64

	mu sync.Mutex
	// gone: the sweeper removed this entry; a new one replaces it.
	gone bool
	// syncing counts the user's running syncs; lastSync is when the last
	// one ended (or the running one started).
	syncing  int
	lastSync time.Time
	// row is the stored presence (nil: none) when known; it is stale once a
	// newer position was published for the user.
	row   *storage.Presence
	known bool
}

// track returns the user's activity, locked.
func (s *Service) track(user id.UserID) *activity {
	for {
		v, ok := s.presence.users.Load(user)
		if !ok {
			v, _ = s.presence.users.LoadOrStore(user, &activity{})
		}
		a := v.(*activity)
		a.mu.Lock()
		if !a.gone {
			return a
		}
		a.mu.Unlock()
	}
}

// currentLocked is the user's stored presence (nil: none), read again only
// when a change was published since it was last known (a.mu held).
func (s *Service) currentLocked(ctx context.Context, a *activity, user id.UserID) (*storage.Presence, error) {
	if a.known {
		var at int64
		if a.row != nil {
			at = a.row.StreamPos
		}
		if a.latest.Load() <= at {
			return a.row, nil
		}
	}
	p, err := s.store.GetPresence(ctx, user)
	if errors.Is(err, storage.ErrNotFound) {
		p, err = nil, nil
	}
	if err != nil {
		return nil, err
	}
	a.row, a.known = p, true
	if p != nil {
		a.lastActive.CompareAndSwap(0, p.LastActiveTS)
	}
	return p, nil
}

// writePresenceLocked stores a changed presence and publishes it to the
// user and everyone in a room with them (a.mu held).
func (s *Service) writePresenceLocked(ctx context.Context, a *activity, user id.UserID, presence, status string) error {
	active := a.lastActive.Load()
	if active == 0 {
		active = s.opts.Now().UnixMilli()
		a.lastActive.Store(active)
	}
	row := &storage.Presence{UserID: user, Presence: presence, StatusMsg: status, LastActiveTS: active}
	pos, err := s.store.SetPresence(ctx, row)
	if err != nil || pos == 0 {
		// Failed, or stored as such already (by another process): read
		// it again next time.
		a.known = false
		return err
	}
	a.row, a.known = row, true
	joined, err := s.rooms.JoinedRooms(ctx, user)
	if err != nil {
		// Published all the same: the user's own syncs see it, and so do
		// the others' the next time they wake.
		s.opts.Logger.Warn("presence: listing the rooms to notify", "user", user, "err", err)
	}
	s.presence.log.add(pos, user, row, joined)
	s.notifier.Publish(stream.Change{Stream: stream.Presence, Pos: pos, Users: []id.UserID{user}, Rooms: joined})
	return nil
}

// observePresence feeds the log and the users' latest positions with every
// presence change, this process's and others'.
func (s *Service) observePresence(c stream.Change) {
	if c.Stream != stream.Presence || len(c.Users) != 1 {
		return
	}
	user := id.UserID(c.Users[0])
	s.presence.log.add(c.Pos, user, nil, c.Rooms)
	if v, ok := s.presence.users.Load(user); ok {
		a := v.(*activity)
		for {
			old := a.latest.Load()
			if c.Pos <= old || a.latest.CompareAndSwap(old, c.Pos) {
				break
			}
		}
	}
}

// SetPresence stores a user's presence (PUT /presence/{userId}/status).
func (s *Service) SetPresence(ctx context.Context, caller, user id.UserID, presence, statusMsg string) error {
	if caller != user {
		return types.Forbidden("You can only set your own presence")
	}
	if !slices.Contains(presenceStates, presence) {
		return types.InvalidParam("presence must be online, offline or unavailable")
	}
	if len(statusMsg) > 1024 {
		return types.InvalidParam("status_msg is too long")
	}
	if !s.opts.PresenceEnabled {
		return nil
	}
	now := s.opts.Now()
	a := s.track(user)
	defer a.mu.Unlock()
	// A client is there: the sweeper leaves them as they are for a while.
	a.lastSync = now
	if presence == presenceOnline {
		a.lastActive.Store(now.UnixMilli())
	}
	cur, err := s.currentLocked(ctx, a, user)
	if err != nil {
		return err
	}
	if cur != nil && cur.Presence == presence && cur.StatusMsg == statusMsg {
		return nil
	}
	return s.writePresenceLocked(ctx, a, user, presence, statusMsg)
}

// MarkActive records that the user syncs with set_presence online or
// unavailable: their presence is written only if it differs. The caller
// calls done when the sync ends; from then on the user counts as gone
// after Options.OfflineAfter without another sync.
func (s *Service) MarkActive(ctx context.Context, user id.UserID, presence string) (done func(), err error) {
	if !s.opts.PresenceEnabled {
		return func() {}, nil
	}
	now := s.opts.Now()
	a := s.track(user)
	defer a.mu.Unlock()
	if presence == presenceOnline {
		// Connecting as online is a pro-active act (spec, "Last active ago").
		a.lastActive.Store(now.UnixMilli())
	}
	cur, err := s.currentLocked(ctx, a, user)
	if err == nil && (cur == nil || cur.Presence != presence) {
		status := ""
		if cur != nil {
			status = cur.StatusMsg
		}
		err = s.writePresenceLocked(ctx, a, user, presence, status)
	}
	if err != nil {
		return func() {}, err
	}
	a.syncing++
	a.lastSync = now
	return func() {
		a.mu.Lock()
		defer a.mu.Unlock()
		a.syncing--
		a.lastSync = s.opts.Now()
	}, nil
}

// startSweeper starts marking offline the users who stopped syncing. Users
// stored as not offline when the process starts get Options.OfflineAfter
// to come back.
func (s *Service) startSweeper(ctx context.Context) error {
	rows, err := s.store.PresenceNotOffline(ctx)
	if err != nil {
		return err
	}
	now := s.opts.Now()
	for _, p := range rows {
		if p.UserID.Homeserver() != s.opts.ServerName {
			// Other servers' users: their server says when they go, or
			// goes quiet (remote.go).
			s.remote.heard(p.UserID, p.Presence, now)
			continue
		}
		a := &activity{lastSync: now, row: p, known: true}
		a.lastActive.Store(p.LastActiveTS)
		s.presence.users.LoadOrStore(p.UserID, a)
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	s.mu.Lock()
	s.presence.stop, s.presence.done = cancel, done
	s.mu.Unlock()
	every := min(max(min(s.opts.OfflineAfter, s.opts.RemoteOfflineAfter)/4, 50*time.Millisecond), 15*time.Second)
	go func() {
		defer close(done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				s.sweep(ctx)
				s.sweepRemote(ctx)
			}
		}
	}()
	return nil
}

func (s *Service) stopSweeper() {
	s.mu.Lock()
	stop, done := s.presence.stop, s.presence.done
	s.presence.stop, s.presence.done = nil, nil
	s.mu.Unlock()
	if stop != nil {
		stop()
		<-done
	}
}

// sweep marks offline the users with no sync for Options.OfflineAfter and
// forgets them.
func (s *Service) sweep(ctx context.Context) {
	now := s.opts.Now()
	s.presence.users.Range(func(k, v any) bool {
		user, a := k.(id.UserID), v.(*activity)
		a.mu.Lock()
		defer a.mu.Unlock()
		if a.gone || a.syncing > 0 || now.Sub(a.lastSync) < s.opts.OfflineAfter {
			return ctx.Err() == nil
		}
		cur, err := s.currentLocked(ctx, a, user)
		if err == nil && cur != nil && cur.Presence != presenceOffline {
			err = s.writePresenceLocked(ctx, a, user, presenceOffline, cur.StatusMsg)
		}
		if err != nil {
			s.opts.Logger.Warn("presence: marking a user offline", "user", user, "err", err)
			return ctx.Err() == nil // again next time
		}
		a.gone = true
		s.presence.users.Delete(user)
		return ctx.Err() == nil
	})
}

// presenceEvent is the m.presence event of a stored presence, its last
// active time brought up to date from this process's activity.
func (s *Service) presenceEvent(p *storage.Presence, now int64) map[string]any {
	return map[string]any{"type": "m.presence", "sender": string(p.UserID), "content": s.presenceContent(p, now)}
}

func (s *Service) presenceContent(p *storage.Presence, now int64) map[string]any {
	return presenceContentAt(p, now, s.lastActive(p))
}

// lastActive is when p's user was last active: stored, or later here.
func (s *Service) lastActive(p *storage.Presence) int64 {
	active := p.LastActiveTS
	if v, ok := s.presence.users.Load(p.UserID); ok {
		active = max(active, v.(*activity).lastActive.Load())
	}
	return active
}

func presenceContentAt(p *storage.Presence, now, active int64) map[string]any {
	content := map[string]any{"presence": p.Presence, "last_active_ago": max(0, now-active),
		"currently_active": p.Presence == presenceOnline}
	if p.StatusMsg != "" {
		content["status_msg"] = p.StatusMsg
	}
	return content
}

// GetPresence returns a user's presence (GET /presence/{userId}/status).
func (s *Service) GetPresence(ctx context.Context, user id.UserID) (map[string]any, error) {
	if !s.opts.PresenceEnabled {
		return nil, types.Forbidden("Presence is disabled on this server")
	}
	p, err := s.store.GetPresence(ctx, user)
	if errors.Is(err, storage.ErrNotFound) {
		return map[string]any{"presence": presenceOffline}, nil
	} else if err != nil {
		return nil, err
	}
	return s.presenceContent(p, s.opts.Now().UnixMilli()), nil
}

// PresenceSince returns the m.presence events of viewer and of the users
// visible accepts (those sharing a room with viewer) whose presence changed
// in (since, upto]. Its cost follows the changes in the range. A change
// whose rooms were published with it is shown if one of them is in joined
// (viewer's joined rooms): its long-polls are the ones it woke, and a user
// who joined one of viewer's rooms since is shown by the join (see
// core/sync's newly shared users). Others are checked with visible, which
// may read (a user's rooms, cached by the caller): every woken sync checked
// every change, and when the crowd of a room is woken that was 2,000 syncs
// looking up the rooms of the same users.
func (s *Service) PresenceSince(ctx context.Context, viewer id.UserID, since, upto int64, joined map[id.RoomID]bool,
	visible func(ctx context.Context, user id.UserID) (bool, error)) ([]map[string]any, error) {
	if !s.opts.PresenceEnabled || upto <= since {
		return nil, nil
	}
	now := s.opts.Now().UnixMilli()
	changed, ok := s.presence.log.changed(since, upto)
	if !ok {
		rows, err := s.store.PresenceVisibleTo(ctx, viewer, since, upto)
		if err != nil {
			return nil, err
		}
		out := make([]map[string]any, len(rows))
		for i, p := range rows {
			out[i] = s.presenceEvent(p, now)
		}
		return out, nil
	}
	var out []map[string]any
	for _, e := range changed {
		if e.user != viewer && e.rooms != nil {
			if !slices.ContainsFunc(e.rooms, func(r id.RoomID) bool { return joined[r] }) {
				continue
			}
		} else if e.user != viewer {
			if ok, err := visible(ctx, e.user); err != nil {
				return nil, err
			} else if !ok {
				continue
			}
		}
		row := e.row
		if row == nil {
			var err error
			if row, err = s.presence.loads.Get(ctx, presenceKey{e.user, e.pos}, func(ctx context.Context) (*storage.Presence, error) {
				p, err := s.store.GetPresence(ctx, e.user)
				if errors.Is(err, storage.ErrNotFound) {
					return nil, nil
				}
				return p, err
			}); err != nil {
				return nil, err
			} else if row == nil {
				continue
			}
		}
		out = append(out, s.sharedEvent(e.event, row, now))
	}
	return out, nil
}

// sharedEvent keeps the m.presence event last given out for a log entry.
type sharedEvent struct {
	last atomic.Pointer[givenEvent]
}

type givenEvent struct {
	row         *storage.Presence
	now, active int64
	event       map[string]any
}

// sharedEvent is presenceEvent(row, now), shared with the other syncs
// that give out the same change at the same millisecond with the same
// last activity: a change wakes everyone in the changed user's rooms, and
// when a crowd connects each of thousands of syncs gives out the changes
// of thousands of others. Callers must not change the event.
func (s *Service) sharedEvent(se *sharedEvent, row *storage.Presence, now int64) map[string]any {
	active := s.lastActive(row)
	if g := se.last.Load(); g != nil && g.row == row && g.now == now && g.active == active {
		return g.event
	}
	ev := map[string]any{"type": "m.presence", "sender": string(row.UserID), "content": presenceContentAt(row, now, active)}
	se.last.Store(&givenEvent{row: row, now: now, active: active, event: ev})
	return ev
}

// PresenceOf returns the m.presence events of those of users with a stored
// presence (nothing when presence is disabled).
func (s *Service) PresenceOf(ctx context.Context, users []id.UserID) ([]map[string]any, error) {
	if !s.opts.PresenceEnabled || len(users) == 0 {
		return nil, nil
	}
	ps, err := s.store.PresenceOf(ctx, users)
	if err != nil {
		return nil, err
	}
	now := s.opts.Now().UnixMilli()
	out := make([]map[string]any, len(ps))
	for i, p := range ps {
		out[i] = s.presenceEvent(p, now)
	}
	return out, nil
}

// PresenceRange returns the m.presence events of users wanted accepts whose
// presence changed in (since, upto], reading at most limit changes
// (nothing when presence is disabled). The second result is the position
// reached. wanted may fail (it may read membership).
func (s *Service) PresenceRange(ctx context.Context, since, upto int64, limit int,
	wanted func(user id.UserID) (bool, error)) ([]map[string]any, int64, error) {
	if !s.opts.PresenceEnabled || upto <= since {
		return nil, upto, nil
	}
	ps, err := s.store.PresenceSince(ctx, since, upto, limit)
	if err != nil {
		return nil, 0, err
	}
	var out []map[string]any
	now := s.opts.Now().UnixMilli()
	for _, p := range ps {
		ok, err := wanted(p.UserID)
		if err != nil {
			return nil, 0, err
		}
		if ok {
			out = append(out, s.presenceEvent(p, now))
		}
	}
	return out, reached(ps, limit, upto, func(p *storage.Presence) int64 { return p.StreamPos }), nil
}
