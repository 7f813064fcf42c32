package outbound

// The federation sender: the Deliverer of the federation kind of
// core/queue's interest queues, one queue per destination server.
//
// A transaction (PUT /_matrix/federation/v1/send/{txnId}) carries up to
// 50 queued PDUs — the events core/rooms queued for the destination in
// the transactions that persisted them (Interest) — and up to 100 EDUs
// read from the ephemeral streams since the destination's cursor (edus.go).
// Its ID comes from the queue's persisted counter (never reused). A retry
// in this process is the same transaction, which the receiver
// deduplicates; after a restart the events go out again in a new one,
// which is harmless — the receiver knows PDUs by event ID and to-device
// messages by message_id — and spares two writes per transaction (as
// Synapse, which keeps transactions in memory too). The events are removed
// from the queue, and the cursor moved, when the destination answers 200; errors the destination reports for single
// PDUs are logged, not retried. A failed transaction is retried after an
// exponential backoff (core/queue; persisted in federation_destinations so
// that a restart goes on with it), at once when the destination contacts
// this server (Contacted) or an admin resets it.

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	"go.mau.fi/util/jsontime"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/federation"
	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/core/ephemeral"
	"github.com/tributary-hs/tributary/core/keys"
	"github.com/tributary-hs/tributary/core/queue"
	"github.com/tributary-hs/tributary/core/rooms"
	"github.com/tributary-hs/tributary/core/stream"
	"github.com/tributary-hs/tributary/storage"
)

// Limits of one transaction (server-server API, "Transactions").
const (
	maxPDUs = 50
	maxEDUs = 100
)

// Store is what the sender reads and writes.
type Store interface {
	storage.InterestQueues
	storage.Federation
	ReceiptsRange(ctx context.Context, since, upto int64, limit int) ([]*storage.Receipt, error)
	ListDevices(ctx context.Context, userID id.UserID) ([]*storage.Device, error)
	RoomMembers(ctx context.Context, roomID id.RoomID, memberships []string) ([]storage.CurrentMember, error)
	PresenceNotOffline(ctx context.Context) ([]*storage.Presence, error)
	AckToDevice(ctx context.Context, userID id.UserID, deviceID id.DeviceID, upto int64) error
	WithTx(ctx context.Context, fn func(ctx context.Context) error) error
}

// Ephemeral is where typing and presence come from (core/ephemeral).
type Ephemeral interface {
	TypingUpdates(since, upto int64) []ephemeral.TypingUpdate
	PresenceRange(ctx context.Context, since, upto int64, limit int,
		wanted func(user id.UserID) (bool, error)) ([]map[string]any, int64, error)
	PresenceOf(ctx context.Context, users []id.UserID) ([]map[string]any, error)
}

// LocalKeys gives local users' device and cross-signing keys (core/keys).
type LocalKeys interface {
	Query(ctx context.Context, caller id.UserID, want map[id.UserID][]id.DeviceID) (*keys.QueryResponse, error)
}

// SenderOptions configure the sender.
type SenderOptions struct {
	ServerName string
	// FederatesWith is the allow/deny list (nil: every server).
	FederatesWith func(serverName string) bool
	// FirstBackoff is the wait after a failed transaction (default 1s),
	// doubled after each further failure up to MaxBackoff (default 1h).
	FirstBackoff, MaxBackoff time.Duration
	// CatchUpAfter (0: never): a destination failing for this long keeps
	// only the latest queued event of each room (storage CatchUpQueue),
	// checked at each failed attempt, so that a dead server's queue stays
	// bounded; when it is back, it fetches what lies between
	// (get_missing_events, then the state), as Synapse's catch-up does.
	CatchUpAfter time.Duration
	// PresencePing (0: never): how often the presence of local users who
	// are online or unavailable goes again to the servers sharing a room
	// with them (presenceping.go).
	PresencePing time.Duration
	Logger       *slog.Logger
}

// Sender sends each destination its queue.
type Sender struct {
	store    Store
	rooms    *rooms.Reader
	eph      Ephemeral
	keys     LocalKeys
	client   *federation.Client
	notifier stream.Notifier
	opts     SenderOptions
	log      *slog.Logger
	runner   *queue.Runner
	acks     *batchedAcks
	servers  *serverCache
	pdus     *pduCache
	dests    *destinations
	metrics  *metrics

	mu sync.Mutex
	// cursors caches each destination's cursor along the ephemeral streams
	// (written by its own loop only).
	cursors map[string]stream.Positions
	// cursorLoad serialises reading a cursor into cursors.
	cursorLoad sync.Mutex
	// pokes are the local users whose device lists wait to go to a server
	// newly sharing a room with them (devicepokes.go).
	pokes map[string]map[id.UserID]bool
	// pings are the local users whose presence waits to go again to a
	// server (presenceping.go).
	pings map[string]map[id.UserID]bool

	changes *pending[queuedChange]
	// memberships are the membership changes for pokeLoop.
	memberships *pending[stream.Change]
	// seenMu guards seen: the stream positions of the changes observed so
	// far (the notifier's present as the observer knows it; it cannot ask
	// the notifier from inside an observer).
	seenMu   sync.Mutex
	seen     stream.Positions
	overflow chan struct{}
	stop     context.CancelFunc
	wg       sync.WaitGroup
}

var _ queue.Deliverer = (*Sender)(nil)

// NewSender builds the sender; it learns of queued events and ephemeral
// changes from the notifier.
func NewSender(store Store, r *rooms.Reader, eph Ephemeral, k LocalKeys, client *federation.Client, n stream.Notifier,
	opts SenderOptions) (*Sender, error) {
	if store == nil || r == nil || eph == nil || k == nil || client == nil || n == nil || opts.ServerName == "" {
		return nil, errors.New("outbound: store, rooms, ephemeral, keys, client, notifier and server name are required")
	}
	if opts.FirstBackoff <= 0 {
		opts.FirstBackoff = time.Second
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = time.Hour
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.FederatesWith == nil {
		opts.FederatesWith = func(string) bool { return true }
	}
	s := &Sender{store: store, rooms: r, eph: eph, keys: k, client: client, notifier: n, opts: opts, log: opts.Logger,
		servers: newServerCache(r), pdus: &pduCache{rooms: r, m: map[int64]cachedPDU{}},
		cursors: map[string]stream.Positions{}, pokes: map[string]map[id.UserID]bool{}, pings: map[string]map[id.UserID]bool{},
		metrics: newMetrics(),
		changes: newPending[queuedChange](4096), overflow: make(chan struct{}, 1),
		memberships: newPending[stream.Change](1024)}
	s.dests = newDestinations(store, n, s.log)
	s.acks = newBatchedAcks(store)
	var err error
	s.runner, err = queue.New(s.acks, stream.KindFederation, s, n, queue.Options{Limit: maxPDUs, Logger: s.log,
		FirstBackoff: opts.FirstBackoff, MaxBackoff: opts.MaxBackoff, Dynamic: true, InMemoryTxns: true,
		Resume: s.dests.resume, OnFailure: s.failed})
	return s, err
}

// Start resumes delivery to every destination with something queued, in
// flight or a cursor from before, and follows the notifier.
func (s *Sender) Start(ctx context.Context) error {
	ctx, s.stop = context.WithCancel(ctx)
	known, err := s.store.QueueConsumers(ctx, stream.KindFederation)
	if err != nil {
		return err
	}
	// What changes before the observer is in place is missed in seen until
	// its stream changes again: a cursor started from seen then starts a
	// little early, which costs nothing (the filters of edus.go apply).
	s.seen = s.notifier.Current()
	s.notifier.Observe(s.observe)
	s.wg.Add(4)
	go s.wakeLoop(ctx)
	go s.pokeLoop(ctx)
	go func() {
		defer s.wg.Done()
		s.acks.run(ctx)
	}()
	go func() {
		defer s.wg.Done()
		s.dests.flushLoop(ctx)
	}()
	if s.opts.PresencePing > 0 {
		s.wg.Add(1)
		go s.pingLoop(ctx)
	}
	s.runner.Start(ctx, known)
	return nil
}

// Stop ends delivery; what is queued stays queued.
func (s *Sender) Stop() {
	s.runner.Stop()
	if s.stop != nil {
		s.stop()
		s.wg.Wait()
	}
	s.dests.flush(context.Background())
}

// Contacted is told of each authenticated request from another server: a
// destination being backed off is retried at once (catch-up after an
// outage), here or in whichever process sends to it.
func (s *Sender) Contacted(origin string) {
	if s.dests.isFailing(origin) {
		s.notifier.Publish(stream.Change{Stream: stream.Reachable,
			Queued: []stream.Consumer{{Kind: stream.KindFederation, ID: origin}}})
	}
}

// failed is core/queue's OnFailure (which logs it): recorded for the
// admin view, metrics and Resume after a restart.
func (s *Sender) failed(dest string, _ error, retryIn time.Duration) {
	s.metrics.txnFailed()
	since := s.dests.failed(dest, retryIn)
	if s.opts.CatchUpAfter <= 0 || since.IsZero() || time.Since(since) < s.opts.CatchUpAfter {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	n, err := s.store.CatchUpQueue(ctx, consumer(dest))
	if err != nil {
		s.log.Warn("federation: shortening the queue of an unreachable destination", "destination", dest, "err", err)
		return
	}
	if n > 0 {
		s.metrics.skipped.Add(n)
		s.log.Info("federation: destination unreachable for long; its queue keeps the latest event of each room",
			"destination", dest, "failing_since", since, "skipped", n)
	}
}

// txnData is what a transaction carries besides its PDUs.
type txnData struct {
	edus []json.RawMessage
	// toDevice are the to-device messages sent (deleted once acknowledged).
	toDevice []*storage.ToDeviceMessage
	// dropped: the destination is not federated with; nothing is sent and
	// the queue is emptied.
	dropped bool
}

// Open implements queue.Deliverer.
func (s *Sender) Open(ctx context.Context, dest string, pending []int64) (*queue.Plan, bool, error) {
	if !s.opts.FederatesWith(dest) {
		if len(pending) == 0 {
			return nil, false, nil
		}
		return &queue.Plan{Data: &txnData{dropped: true}}, false, nil
	}
	from, err := s.cursor(ctx, dest)
	if err != nil {
		return nil, false, err
	}
	to := s.notifier.Current()
	eb, err := s.collectEDUs(ctx, dest, from, to)
	if err != nil {
		return nil, false, err
	}
	more := eb.more(to)
	poked, morePokes := s.takePokes(dest, min(maxDeviceListEDUs, maxEDUs-len(eb.edus)))
	if err := s.pokeEDUs(ctx, eb, poked); err != nil {
		s.repoke(dest, poked)
		return nil, false, err
	}
	more = more || morePokes
	pinged, morePings := s.takePings(dest)
	if err := s.pingEDU(ctx, eb, pinged); err != nil {
		return nil, false, err
	}
	more = more || morePings
	if len(pending) == 0 && len(eb.edus) == 0 {
		// Nothing for this destination: just move its cursor on.
		if eb.reached != from {
			if err := s.setCursor(ctx, dest, eb.reached); err != nil {
				return nil, false, err
			}
		}
		return nil, more, nil
	}
	var extra []int64
	if eb.reached != from {
		extra = eb.reached[:]
	}
	return &queue.Plan{Extra: extra, Data: &txnData{edus: eb.edus, toDevice: eb.toDevice}}, more, nil
}

// Deliver implements queue.Deliverer: PUT the transaction.
func (s *Sender) Deliver(ctx context.Context, dest string, t *queue.Txn) error {
	data, _ := t.Data.(*txnData)
	if (data != nil && data.dropped) || !s.opts.FederatesWith(dest) {
		t.Data = &txnData{dropped: true}
		return nil
	}
	if data == nil {
		// A retry carries the same stretch of the ephemeral streams.
		data = &txnData{}
		if t.Extra != nil {
			from, err := s.cursor(ctx, dest)
			if err != nil {
				return err
			}
			var to stream.Positions
			copy(to[:], t.Extra)
			eb, err := s.collectEDUs(ctx, dest, from, to)
			if err != nil {
				return err
			}
			data.edus, data.toDevice = eb.edus, eb.toDevice
		}
		t.Data = data
	}
	pdus, err := s.pdus.get(ctx, t.Positions)
	if err != nil {
		return err
	}
	if len(pdus) == 0 && len(data.edus) == 0 {
		return nil // nothing left to say (events gone): acknowledged as is
	}
	req := &federation.ReqSendTransaction{Destination: dest, TxnID: strconv.FormatInt(t.ID, 10),
		Origin: s.opts.ServerName, OriginServerTS: jsontime.UM(time.Now()), PDUs: make([]json.RawMessage, len(pdus)),
		EDUs: data.edus}
	for i, p := range pdus {
		req.PDUs[i] = json.RawMessage(p.JSON)
	}
	resp, err := s.client.SendTransaction(ctx, req)
	if err != nil {
		if permanent(err) {
			// The destination refuses this transaction for good (a bad
			// request): resending it would block its queue forever.
			s.log.Warn("federation transaction refused; dropped", "destination", dest, "txn", t.ID,
				"pdus", len(pdus), "edus", len(data.edus), "err", err)
			s.metrics.txnDropped()
			return nil
		}
		return err
	}
	if resp != nil {
		for eid, r := range resp.PDUs {
			if r.Error != "" {
				s.log.Info("destination did not take an event", "destination", dest, "event", eid, "error", r.Error)
			}
		}
	}
	s.log.Debug("federation transaction sent", "destination", dest, "txn", t.ID, "pdus", len(pdus), "edus", len(data.edus))
	var lastPos int64
	if len(pdus) > 0 {
		lastPos = pdus[len(pdus)-1].Pos
	}
	s.dests.sent(dest, lastPos)
	s.metrics.txnSent(len(pdus), len(data.edus))
	return nil
}

// permanent reports whether the destination refused the transaction in a
// way a retry cannot change: a 4xx other than an authentication failure
// (our key may not have reached it yet), a missing endpoint (a
// misconfigured server may be fixed) or rate limiting.
func permanent(err error) bool {
	var he mautrix.HTTPError
	if !errors.As(err, &he) || he.Response == nil {
		return false
	}
	switch code := he.Response.StatusCode; {
	case code == http.StatusUnauthorized, code == http.StatusForbidden, code == http.StatusNotFound,
		code == http.StatusRequestTimeout, code == http.StatusTooManyRequests:
		return false
	default:
		return code >= 400 && code < 500
	}
}

// Acked implements queue.Deliverer: to-device messages sent are deleted,
// and the cursor cache follows the acknowledged transaction.
func (s *Sender) Acked(ctx context.Context, dest string, t *queue.Txn) error {
	if t.Extra != nil {
		var p stream.Positions
		copy(p[:], t.Extra)
		s.mu.Lock()
		s.cursors[dest] = p
		s.mu.Unlock()
	}
	data, _ := t.Data.(*txnData)
	if data == nil || len(data.toDevice) == 0 {
		return nil
	}
	type target struct {
		user   id.UserID
		device id.DeviceID
	}
	upto := map[target]int64{}
	for _, m := range data.toDevice {
		k := target{m.UserID, m.DeviceID}
		upto[k] = max(upto[k], m.StreamPos)
	}
	for k, pos := range upto {
		if err := s.store.AckToDevice(ctx, k.user, k.device, pos); err != nil {
			return err
		}
	}
	return nil
}

// cursor is how far the destination has acknowledged the ephemeral
// streams. A destination seen for the first time starts at the present,
// but for to-device messages: those queued before it was first woken are
// its (a message to a server no room is shared with yet).
func (s *Sender) cursor(ctx context.Context, dest string) (stream.Positions, error) {
	return s.cursorFrom(ctx, dest, nil)
}

// cursorFrom is cursor, a new one starting at start (nil: the present).
func (s *Sender) cursorFrom(ctx context.Context, dest string, start *stream.Positions) (stream.Positions, error) {
	s.mu.Lock()
	p, ok := s.cursors[dest]
	s.mu.Unlock()
	if ok {
		return p, nil
	}
	// One reader at a time: wakeLoop (startCursors) and the destination's
	// loop may both find none, and only one may start it.
	s.cursorLoad.Lock()
	defer s.cursorLoad.Unlock()
	s.mu.Lock()
	p, ok = s.cursors[dest]
	s.mu.Unlock()
	if ok {
		return p, nil
	}
	cur := s.notifier.Current()
	stored, err := s.store.QueueCursor(ctx, consumer(dest))
	if errors.Is(err, storage.ErrNotFound) {
		p = cur
		if start != nil {
			p = *start
		}
		p[stream.ToDevice] = 0
		return p, s.setCursor(ctx, dest, p)
	} else if err != nil {
		return p, err
	}
	for i := range p {
		if i < len(stored) {
			p[i] = stored[i]
		} else {
			p[i] = cur[i] // a stream added since: start at the present
		}
	}
	s.mu.Lock()
	s.cursors[dest] = p
	s.mu.Unlock()
	return p, nil
}

func (s *Sender) setCursor(ctx context.Context, dest string, p stream.Positions) error {
	if err := s.store.SetQueueCursor(ctx, consumer(dest), p[:]); err != nil {
		return err
	}
	s.mu.Lock()
	s.cursors[dest] = p
	s.mu.Unlock()
	return nil
}

func consumer(dest string) storage.Consumer {
	return storage.Consumer{Kind: stream.KindFederation, ID: dest}
}

// queuedChange is a change for wakeLoop, with the stream positions when
// it was published.
type queuedChange struct {
	c  stream.Change
	at stream.Positions
}

// observe follows the notifier (quickly: it runs inside Publish).
func (s *Sender) observe(c stream.Change) {
	s.seenMu.Lock()
	if c.Stream >= 0 && int(c.Stream) < len(s.seen) && c.Pos > s.seen[c.Stream] {
		s.seen[c.Stream] = c.Pos
	}
	at := s.seen
	s.seenMu.Unlock()
	switch c.Stream {
	case stream.Events:
		if len(c.Users) > 0 && c.RoomID != "" {
			s.servers.forget(c.RoomID) // memberships changed
			// A server may be new to us (its cursor starts now), or new
			// to a local user (her device list goes to it).
			s.queueChange(c, at)
		}
	case stream.Unreachable, stream.Reachable:
		for _, q := range c.Queued {
			if q.Kind == stream.KindFederation {
				s.dests.setFailing(q.ID, c.Stream == stream.Unreachable)
			}
		}
	case stream.Typing, stream.Receipts, stream.Presence, stream.ToDevice, stream.DeviceLists:
		s.queueChange(c, at)
	}
}

// queueChange hands a change to wakeLoop without waiting.
func (s *Sender) queueChange(c stream.Change, at stream.Positions) {
	if !s.changes.push(queuedChange{c: c, at: at}) {
		select {
		case s.overflow <- struct{}{}:
		default:
		}
	}
}

// wakeLoop wakes the destinations an ephemeral change concerns: the
// servers in the rooms of a local user's typing, receipt, presence or
// device change, the servers of a to-device message's recipients.
func (s *Sender) wakeLoop(ctx context.Context) {
	defer s.wg.Done()
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.overflow:
			// Changes were missed: every running destination looks.
			s.runner.Wake(s.runner.Running()...)
		case <-s.changes.ready:
			for _, q := range s.changes.take() {
				if ctx.Err() != nil {
					return
				}
				s.wakeFor(ctx, q)
			}
		}
	}
}

// wakeFor wakes the destinations one change concerns.
func (s *Sender) wakeFor(ctx context.Context, q queuedChange) {
	c := q.c
	if c.Stream == stream.Events {
		s.startCursors(ctx, c.Users, q.at)
		s.queueMembership(c)
		return
	}
	dests, err := s.concerned(ctx, c)
	if err != nil {
		s.log.Warn("federation: which servers a change concerns", "stream", c.Stream, "err", err)
		s.runner.Wake(s.runner.Running()...)
		return
	}
	s.runner.Wake(dests...)
}

func (s *Sender) local(u id.UserID) bool { return u.Homeserver() == s.opts.ServerName }

// startCursors gives the servers of users who just joined (or left) a
// room a cursor if they have none, starting where the streams were when
// the membership change was published (at): what happens from their
// joining on is theirs (typing, receipts, presence), even before anything
// wakes their queue — also what happened while this loop was busy before
// getting to the change (a cursor started at the present then lost a
// typing notification sent right after a server joined).
func (s *Sender) startCursors(ctx context.Context, users []id.UserID, at stream.Positions) {
	for _, u := range users {
		if srv := u.Homeserver(); srv != "" && !s.local(u) && s.opts.FederatesWith(srv) {
			if _, err := s.cursorFrom(ctx, srv, &at); err != nil {
				s.log.Warn("federation: starting a destination's cursor", "destination", srv, "err", err)
			}
		}
	}
}

func (s *Sender) concerned(ctx context.Context, c stream.Change) ([]string, error) {
	var out []string
	addRoom := func(room id.RoomID) error {
		srvs, err := s.servers.get(ctx, room)
		if err != nil {
			return err
		}
		out = append(out, srvs...)
		return nil
	}
	localUser := len(c.Users) > 0 && s.local(c.Users[0])
	switch c.Stream {
	case stream.Typing, stream.Receipts:
		if localUser && c.RoomID != "" {
			if err := addRoom(c.RoomID); err != nil {
				return nil, err
			}
		}
	case stream.Presence:
		if localUser {
			srvs, err := s.servers.getAll(ctx, c.Rooms)
			if err != nil {
				return nil, err
			}
			out = append(out, srvs...)
		}
	case stream.DeviceLists:
		if c.RoomID != "" {
			if err := addRoom(c.RoomID); err != nil {
				return nil, err
			}
		}
	case stream.ToDevice:
		for _, u := range c.Users {
			out = append(out, u.Homeserver())
		}
	}
	slices.Sort(out)
	out = slices.Compact(out)
	return slices.DeleteFunc(out, func(srv string) bool {
		return srv == s.opts.ServerName || srv == "" || !s.opts.FederatesWith(srv)
	}), nil
}

// serverCache remembers the servers joined to rooms, forgotten when a
// room's memberships change (and after a while, for what another process
// changed unseen).
type serverCache struct {
	rooms *rooms.Reader
	mu    sync.Mutex
	m     map[id.RoomID]cachedServers
	// gen counts forgets: a read that raced one is not kept.
	gen uint64
}

type cachedServers struct {
	servers []string
	at      time.Time
}

const (
	serverCacheTTL  = time.Minute
	serverCacheSize = 10_000
)

func newServerCache(r *rooms.Reader) *serverCache {
	return &serverCache{rooms: r, m: map[id.RoomID]cachedServers{}}
}

func (c *serverCache) get(ctx context.Context, room id.RoomID) ([]string, error) {
	c.mu.Lock()
	e, ok := c.m[room]
	gen := c.gen
	c.mu.Unlock()
	if ok && time.Since(e.at) < serverCacheTTL {
		return e.servers, nil
	}
	srvs, err := c.rooms.JoinedServers(ctx, room)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	if c.gen == gen {
		if len(c.m) >= serverCacheSize {
			clear(c.m)
		}
		c.m[room] = cachedServers{servers: srvs, at: time.Now()}
	}
	c.mu.Unlock()
	return srvs, nil
}

// getAll is the servers joined to any of rooms. The rooms it does not hold
// are first narrowed, in one read, to those with members of other servers
// (a user's presence names all their rooms: one read each would be
// hundreds for one change).
func (c *serverCache) getAll(ctx context.Context, rooms []id.RoomID) ([]string, error) {
	var out []string
	var unknown []id.RoomID
	c.mu.Lock()
	for _, r := range rooms {
		if e, ok := c.m[r]; ok && time.Since(e.at) < serverCacheTTL {
			out = append(out, e.servers...)
		} else {
			unknown = append(unknown, r)
		}
	}
	gen := c.gen
	c.mu.Unlock()
	if len(unknown) > 0 {
		remote, err := c.rooms.RoomsWithRemoteMembers(ctx, unknown)
		if err != nil {
			return nil, err
		}
		// The others have only this server's users: none to send to.
		isRemote := make(map[id.RoomID]bool, len(remote))
		for _, r := range remote {
			isRemote[r] = true
		}
		c.mu.Lock()
		if c.gen == gen {
			now := time.Now()
			for _, r := range unknown {
				if !isRemote[r] {
					if len(c.m) >= serverCacheSize {
						clear(c.m)
					}
					c.m[r] = cachedServers{at: now}
				}
			}
		}
		c.mu.Unlock()
		unknown = remote
	}
	for _, r := range unknown {
		srvs, err := c.get(ctx, r)
		if err != nil {
			return nil, err
		}
		out = append(out, srvs...)
	}
	return out, nil
}

func (c *serverCache) forget(room id.RoomID) {
	c.mu.Lock()
	delete(c.m, room)
	c.gen++
	c.mu.Unlock()
}

// pduCache keeps the events just sent for a while: an event goes to every
// server in its room, mostly within moments, and is read once for all.
// Briefly (pduCacheTTL), so that one redacted since goes out redacted to
// a server that was down.
type pduCache struct {
	rooms *rooms.Reader
	mu    sync.Mutex
	m     map[int64]cachedPDU
}

type cachedPDU struct {
	pdu rooms.OutboundPDU
	at  time.Time
}

const (
	pduCacheTTL  = 10 * time.Second
	pduCacheSize = 10_000
)

func (c *pduCache) get(ctx context.Context, positions []int64) ([]rooms.OutboundPDU, error) {
	out := make([]rooms.OutboundPDU, 0, len(positions))
	var missing []int64
	now := time.Now()
	c.mu.Lock()
	for _, pos := range positions {
		if e, ok := c.m[pos]; ok && now.Sub(e.at) < pduCacheTTL {
			out = append(out, e.pdu)
		} else {
			missing = append(missing, pos)
		}
	}
	c.mu.Unlock()
	if len(missing) == 0 {
		return out, nil
	}
	loaded, err := c.rooms.FederationPDUs(ctx, missing)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	if len(c.m)+len(loaded) > pduCacheSize {
		for pos, e := range c.m {
			if now.Sub(e.at) >= pduCacheTTL || len(c.m)+len(loaded) > pduCacheSize {
				delete(c.m, pos)
			}
		}
	}
	for _, p := range loaded {
		c.m[p.Pos] = cachedPDU{pdu: p, at: now}
	}
	c.mu.Unlock()
	out = append(out, loaded...)
	slices.SortFunc(out, func(a, b rooms.OutboundPDU) int { return cmp.Compare(a.Pos, b.Pos) })
	return out, nil
}
