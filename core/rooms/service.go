package rooms

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"maunium.net/go/mautrix/federation/pdu"
	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/core/events"
	"github.com/tributary-hs/tributary/core/stream"
	"github.com/tributary-hs/tributary/core/types"
	"github.com/tributary-hs/tributary/storage"
)

// Store is what the room service needs of storage.
type Store interface {
	storage.Rooms
	storage.StateReader
	storage.RoomExtras
	storage.RelationReader
	storage.TxnLookup
	storage.SyncReader
	storage.AppServiceRoomLists
	WithTx(ctx context.Context, fn func(ctx context.Context) error) error
}

// Options configure the service.
type Options struct {
	ServerName string
	Signer     *events.Signer
	Logger     *slog.Logger
	// Now is the clock; nil uses time.Now.
	Now func() time.Time
	// WriterIdle is how long a room's writer stays without requests before
	// it retires and forgets the room's state (0: two minutes).
	WriterIdle time.Duration
	// GatherFor bounds how long a room's batch of sends that finds no
	// commit in flight waits for the room's other active senders (see
	// gather; 0: 2 ms, negative: it never waits).
	GatherFor time.Duration
	// DefaultVersion is the version of rooms created without one
	// (events.DefaultRoomVersion when empty).
	DefaultVersion id.RoomVersion
	// Notifier is told of each commit (nil: nobody is): the room, its
	// highest stream position, the users whose membership it changed, the
	// senders of its events and the queues it wrote to. Consumers (sync,
	// appservice and push delivery) subscribe there.
	Notifier stream.Notifier
	// Profiles gives display names and avatars for membership events.
	Profiles Profiles
	// Pusher runs push rules on new events for the notification counts (nil: none).
	Pusher Pusher
	// Interest resolves the consumers each event is queued for (none: the
	// events are queued for nobody).
	Interest []InterestResolver
	// QueryAlias asks appservices about an unknown alias of their namespace;
	// true if one created it (nil: none).
	QueryAlias func(ctx context.Context, alias id.RoomAlias) bool
	// ReservedAlias reports an alias an appservice claims exclusively that
	// the user may not create (nil: none is).
	ReservedAlias func(alias id.RoomAlias, user id.UserID) bool
	// KeyRing finds other servers' signing keys, to check the signatures
	// of their events (nil: only this server's key is known).
	KeyRing KeyRing
	// Restrictions holds local senders to account moderation: locked
	// accounts do nothing, suspended ones only leave and redact their own
	// events (nil: no account is restricted).
	Restrictions AccountRestrictions
	// AccountData reads the invitee's invite settings, so that invites
	// they block are refused (nil: every invite is made).
	AccountData AccountDataGetter
	// Remote reaches other servers: rooms joined, knocked on and left
	// through them, invites of their users, missing events, state and
	// history fetched from them (nil: federation is off).
	Remote RemoteRooms
}

// Profiles looks up a local user's display name and avatar URL ("" when unset).
type Profiles interface {
	Profile(ctx context.Context, user id.UserID) (displayName, avatarURL string, err error)
	// Profiles reads many local users' profiles at once (the user
	// directory); a user without a field is missing from its map.
	Profiles(ctx context.Context, users []id.UserID) (names, avatars map[id.UserID]string, err error)
}

// Reader is the read side of rooms: timelines, state and members as each
// user may see them, sync and sliding sync, search, the directory and
// aliases, the hierarchy, the user directory, relations and
// notifications. It never persists an event: the pipeline (Service) does,
// and every commit reaches the Reader through core/stream (its observer),
// whichever process made it.
type Reader struct {
	store Store
	opts  Options
	log   *slog.Logger
	// cache keeps recently used PDUs by event ID (auth events above all).
	cache *lru[id.EventID, *pdu.PDU]
	// versions, visibilities and facts cache what never changes: room
	// versions, the history visibility a state group holds (the same for
	// every viewer) and a user's membership in one.
	versions     *lru[id.RoomID, id.RoomVersion]
	visibilities *lru[int64, string]
	facts        *lru[factsKey, string]
	// txns caches each event's client transaction (see cachedTxnIDs).
	txns *lru[id.EventID, txnOf]
	// groupStates caches whole states of state groups (see statesAt).
	groupStates *groupStates
	// summaries caches /sync room summaries, each true while its room
	// stays at the generation (gens) it was read at.
	summaries *lru[summaryKey, cachedSummary]
	gens      *roomGens
	// memberWrites counts commits with membership events in flight (the
	// pipeline's, until published), and lastMemberPos is the position of
	// the last published one (MaxInt64 until Start): see
	// MayHaveMemberEventsAfter.
	memberWrites  atomic.Int64
	lastMemberPos atomic.Int64
	// relWrites counts commits with relations in flight, lastRelPos is
	// each room's last published relation, relLoaded the rooms whose
	// stored relations were read into it; see mayHaveRelationsAfter.
	relWrites  atomic.Int64
	lastRelPos sync.Map // id.RoomID → int64
	relLoaded  sync.Map // id.RoomID → struct{}
	// pages shares /sync's timeline pages among concurrent long-polls.
	pages stream.Shared[pageKey, []*storage.Event]
	// ignores holds each user's m.ignored_user_list (nil: none), forgotten
	// when their account data changes.
	ignores stream.Cache[id.UserID, map[id.UserID]bool]
	// backfill fetches history from other servers when /messages pages
	// past the oldest event stored (the pipeline's FetchHistory; nil for a
	// Reader on its own, which pages through what is stored).
	backfill func(ctx context.Context, roomID id.RoomID, limit int) (int, error)
}

// Service is the event pipeline: it builds, authorises and persists events
// (one writer per room, commits batched; Intake for events of other
// servers), creates rooms, changes memberships and batch sends. It embeds
// the Reader, whose checks and caches it shares.
type Service struct {
	*Reader
	// groupIDs is locked on its own, never while holding mu.
	groupIDs idBlock
	// lastCreateTS keeps v12 create events (and so room IDs) apart.
	lastCreateTS atomic.Int64
	// origin names this service instance in the changes it publishes.
	origin string
	// remoteLocks serialises membership changes made over federation in
	// rooms this server is not in, one *sync.Mutex per room (never held
	// while holding mu).
	remoteLocks sync.Map

	// mu guards writers, closed and each writer's users; never hold it
	// while waiting on a writer.
	mu      sync.Mutex
	writers map[id.RoomID]*roomWriter
	closed  bool
	quit    chan struct{} // closed by Stop
	wg      sync.WaitGroup
}

// NewReader builds the read side on its own (New builds one for the
// pipeline); it follows commits through opts.Notifier.
func NewReader(store Store, opts Options) (*Reader, error) {
	if store == nil || opts.ServerName == "" {
		return nil, errors.New("rooms: store and server name are required")
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Notifier == nil {
		opts.Notifier = stream.NewLocal(stream.Positions{}) // nobody listens but the service itself
	}
	r := &Reader{store: store, opts: opts, log: opts.Logger, cache: newSizedLRU[id.EventID](4096, pduCacheBytes, pduSize),
		versions: newLRU[id.RoomID, id.RoomVersion](16384), facts: newLRU[factsKey, string](65536),
		visibilities: newLRU[int64, string](65536), txns: newLRU[id.EventID, txnOf](8192),
		groupStates: newGroupStates(16384), summaries: newLRU[summaryKey, cachedSummary](4096),
		gens: newRoomGens(16384)}
	r.lastMemberPos.Store(math.MaxInt64)
	r.pages.Max = 256
	r.opts.Notifier.Observe(r.observe)
	return r, nil
}

// New builds the pipeline and its Reader.
func New(store Store, opts Options) (*Service, error) {
	if store == nil || opts.Signer == nil || opts.ServerName == "" {
		return nil, errors.New("rooms: store, signer and server name are required")
	}
	if opts.WriterIdle <= 0 {
		opts.WriterIdle = 2 * time.Minute
	}
	if opts.GatherFor == 0 {
		opts.GatherFor = 2 * time.Millisecond
	}
	if opts.DefaultVersion == "" {
		opts.DefaultVersion = events.DefaultRoomVersion
	} else if !events.IsSupported(opts.DefaultVersion) {
		return nil, fmt.Errorf("rooms: default room version %s is not supported", opts.DefaultVersion)
	}
	r, err := NewReader(store, opts)
	if err != nil {
		return nil, err
	}
	s := &Service{Reader: r, writers: map[id.RoomID]*roomWriter{}, quit: make(chan struct{}),
		origin: randomLocal(16)}
	if opts.Remote != nil {
		r.backfill = s.FetchHistory
	}
	r.opts.Notifier.Observe(s.observe)
	return s, nil
}

// observe records, for every commit published — this process's or
// another's (a worker's, through the Redis notifier) — what the read
// side's shortcuts trust. It runs before the commit's waiters wake and
// before a reader can see its position as current.
func (s *Reader) observe(c stream.Change) {
	if c.Stream == stream.AccountData {
		s.ignores.Forget(c.Users...)
		return
	}
	if c.Stream != stream.Events {
		return
	}
	// Any commit may change the room's members (a state resolution
	// too, without a member event of its own).
	s.gens.moved(c.RoomID)
	if len(c.Users) > 0 {
		for cur := s.lastMemberPos.Load(); c.Pos > cur && !s.lastMemberPos.CompareAndSwap(cur, c.Pos); {
			cur = s.lastMemberPos.Load()
		}
	}
	if c.Relations {
		s.relationCommitted(c.RoomID, c.Pos)
	}
}

// observe marks the writer of a room another process wrote to stale, so
// that it reloads the room's state before its next batch.
func (s *Service) observe(c stream.Change) {
	if c.Stream != stream.Events || c.Origin == s.origin || c.RoomID == "" {
		return
	}
	s.mu.Lock()
	if w := s.writers[c.RoomID]; w != nil {
		w.stale.Store(true)
	}
	s.mu.Unlock()
}

// Start learns where the timeline stands (room writers start on demand).
func (s *Reader) Start(ctx context.Context) {
	if pos, err := s.store.MaxStreamPos(ctx); err == nil {
		s.lastMemberPos.Store(pos) // everything before may hold memberships
	}
}

// Prefetch reads, in a few statements for all of rooms, what reading each
// of them (as /sync does for every room of an account) would otherwise ask
// once per room: their versions and where their relations lie. Rooms
// already known are skipped; a room that does not exist is left for the
// per-room read to report.
func (s *Reader) Prefetch(ctx context.Context, rooms []id.RoomID) error {
	var versions, spans []id.RoomID
	for _, r := range rooms {
		if _, ok := s.versions.get(r); !ok {
			versions = append(versions, r)
		}
		if _, ok := s.relLoaded.Load(r); !ok {
			spans = append(spans, r)
		}
	}
	if len(versions) > 0 {
		got, err := s.store.GetRooms(ctx, versions)
		if err != nil {
			return err
		}
		for _, r := range got {
			s.versions.put(r.RoomID, id.RoomVersion(r.RoomVersion))
		}
	}
	if len(spans) > 0 && s.relWrites.Load() == 0 {
		got, err := s.store.RelationSpans(ctx, spans)
		if err != nil {
			return err
		}
		for _, r := range spans {
			if span, ok := got[r]; ok {
				s.noteRelationSpan(r, span[0], span[1])
			}
			s.relLoaded.Store(r, struct{}{})
		}
	}
	return nil
}

// noteRelationSpan records what the store holds of a room's relations.
func (s *Reader) noteRelationSpan(roomID id.RoomID, lowest, highest int64) {
	if lowest < 0 {
		highest = -1 // relationCommitted makes it MaxInt64
	}
	s.relationCommitted(roomID, highest)
}

// mayHaveRelationsAfter reports whether a relation (thread reply, edit,
// reaction…) may have been committed in the room after pos: if not, no
// event at pos or later has any (relations come after what they relate to).
// What the room stored before this process saw it is read once per room
// (its thread replies and edits, the relations the aggregations show); a
// relation stored as history (a negative position) says nothing of order,
// so then every event may have some.
func (s *Reader) mayHaveRelationsAfter(ctx context.Context, roomID id.RoomID, pos int64) (bool, error) {
	if s.relWrites.Load() > 0 {
		return true, nil
	}
	if _, loaded := s.relLoaded.Load(roomID); !loaded {
		lowest, highest, ok, err := s.store.RelationSpan(ctx, roomID)
		if err != nil {
			return false, err
		}
		if ok {
			s.noteRelationSpan(roomID, lowest, highest)
		}
		s.relLoaded.Store(roomID, struct{}{})
	}
	v, ok := s.lastRelPos.Load(roomID)
	return ok && v.(int64) >= pos, nil
}

// relationCommitted records a committed relation at pos in the room.
func (s *Reader) relationCommitted(roomID id.RoomID, pos int64) {
	if pos < 0 {
		pos = math.MaxInt64 // history: positions say nothing of order any more
	}
	for {
		v, loaded := s.lastRelPos.LoadOrStore(roomID, pos)
		if !loaded || v.(int64) >= pos || s.lastRelPos.CompareAndSwap(roomID, v, pos) {
			return
		}
	}
}

// MayHaveMemberEventsAfter reports whether an m.room.member event may
// have been committed after pos. Call it after reading the upper end of the
// range from the notifier: a commit in flight then counts as "may".
func (s *Reader) MayHaveMemberEventsAfter(pos int64) bool {
	return s.memberWrites.Load() > 0 || s.lastMemberPos.Load() > pos
}

// Stop refuses new writes and waits for the room writers to commit (or
// refuse) every request already handed to them. It may be called more than once.
func (s *Service) Stop() {
	s.mu.Lock()
	if !s.closed {
		s.closed = true
		close(s.quit)
	}
	s.mu.Unlock()
	s.wg.Wait()
}

func (s *Reader) nowMS() int64 { return s.opts.Now().UnixMilli() }

// ServerName is the local server name.
func (s *Reader) ServerName() string { return s.opts.ServerName }

// parsePDU decodes a stored event.
func parsePDU(e *storage.Event) (*pdu.PDU, error) {
	p, err := events.ParsePDU(e.JSON, e.EventID)
	if err != nil {
		return nil, fmt.Errorf("decode event %s: %w", e.EventID, err)
	}
	p.InternalMeta.Rejected = e.Rejected
	return p, nil
}

// pduCacheBytes bounds the parsed events the Reader keeps: 4,096 events of
// a few hundred bytes take a few MiB, but as many of 64 KiB took 256.
const pduCacheBytes = 16 << 20

// pduSize is about the memory a parsed PDU holds: its JSON values, its
// event IDs, and some 600 bytes of fields, signatures and hashes.
func pduSize(p *pdu.PDU) int {
	return 600 + len(p.Content) + len(p.Unsigned) + len(p.Unknown) + len(p.Sticky) +
		64*(len(p.AuthEvents)+len(p.PrevEvents))
}

// cachedPDU is the PDU of a stored event, parsed once for all who read it
// (a message that wakes 2,000 long-polls is formatted 2,000 times). The
// PDU is shared: callers change only a Clone.
func (s *Reader) cachedPDU(e *storage.Event) (*pdu.PDU, error) {
	if p, ok := s.cache.get(e.EventID); ok && p.InternalMeta.Rejected == e.Rejected {
		return p, nil
	}
	p, err := parsePDU(e)
	if err != nil {
		return nil, err
	}
	s.cache.put(e.EventID, p)
	return p, nil
}

// loadPDUs returns the PDUs with the given IDs, from the cache or storage;
// missing events are nil entries.
func (s *Reader) loadPDUs(ctx context.Context, ids []id.EventID) ([]*pdu.PDU, error) {
	out := make([]*pdu.PDU, len(ids))
	var missing []id.EventID
	for i, eid := range ids {
		if p, ok := s.cache.get(eid); ok {
			out[i] = p
		} else {
			missing = append(missing, eid)
		}
	}
	if len(missing) == 0 {
		return out, nil
	}
	evs, err := s.store.GetEvents(ctx, missing)
	if err != nil {
		return nil, err
	}
	byID := make(map[id.EventID]*pdu.PDU, len(evs))
	for _, e := range evs {
		p, err := parsePDU(e)
		if err != nil {
			return nil, err
		}
		byID[p.InternalMeta.EventID] = p
		s.cache.put(p.InternalMeta.EventID, p)
	}
	for i, eid := range ids {
		if out[i] == nil {
			out[i] = byID[eid]
		}
	}
	return out, nil
}

// getRoom returns the room record, M_NOT_FOUND if this server does not know it.
func (s *Reader) getRoom(ctx context.Context, roomID id.RoomID) (*storage.Room, error) {
	r, err := s.store.GetRoom(ctx, roomID)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, types.NotFound("Unknown room")
	} else if err != nil {
		return nil, err
	}
	return r, nil
}

// persisted publishes a committed batch on the notifier: who it concerns,
// who spoke and which queues it wrote to.
func (s *Service) persisted(roomID id.RoomID, writes []*storage.EventWrite) {
	var members, senders []id.UserID
	var queued []stream.Consumer
	relations := false
	for _, w := range writes {
		relations = relations || w.Event.RelatesTo != ""
		if !slices.Contains(senders, w.Event.Sender) {
			senders = append(senders, w.Event.Sender)
		}
		if w.Event.Type == "m.room.member" && w.Event.StateKey != nil {
			members = append(members, id.UserID(*w.Event.StateKey))
		}
		for _, q := range w.Queued {
			if c := (stream.Consumer{Kind: q.Kind, ID: q.ID}); !slices.Contains(queued, c) {
				queued = append(queued, c)
			}
		}
		if c := (stream.Consumer{Kind: stream.KindPushGateway}); len(w.PushQueue) > 0 && !slices.Contains(queued, c) {
			queued = append(queued, c)
		}
	}
	s.opts.Notifier.Publish(stream.Change{Stream: stream.Events, Pos: writes[len(writes)-1].Event.StreamPos,
		RoomID: roomID, Users: members, Senders: senders, Queued: queued, Relations: relations,
		Origin: s.origin})
}
