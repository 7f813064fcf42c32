package rooms

import (
	"context"
	"encoding/json/jsontext"
	"encoding/json/v2"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tidwall/gjson"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/federation/pdu"
	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/core/events"
	"github.com/tributary-hs/tributary/core/push"
	"github.com/tributary-hs/tributary/core/state"
	"github.com/tributary-hs/tributary/core/types"
	"github.com/tributary-hs/tributary/storage"
)

// maxBatch bounds how many queued events one commit carries.
const maxBatch = 256

// snapshotEvery bounds state delta chains: a state event whose group would be
// this deep in its chain stores a full snapshot instead.
const snapshotEvery = 64

// roomState is what a room writer keeps in memory between commits.
type roomState struct {
	roomID      id.RoomID
	version     id.RoomVersion
	state       map[pdu.StateKey]id.EventID
	extremities []id.EventID
	depth       int64
	group       int64
	chainLen    int64
	// joined are the local users joined to the room (whose push rules run);
	// joinedList lists them, made when first asked for after a change (nil:
	// not made), for the push rules of each message.
	joined     map[id.UserID]bool
	joinedList []id.UserID
	// outcomes and kept are the push step's working slices, reused from
	// one event to the next (pushOutcomes).
	outcomes []push.Outcome
	kept     []id.UserID
	// memoKey is the buffer the key of authorized is built in.
	memoKey []byte
	// remote are the joined members of other servers, servers the number
	// of joined members of each server (this one's too): where the room's
	// events are sent (JoinedServers).
	remote  map[id.UserID]bool
	servers map[string]int
	// plCache is the parsed content of the power levels event plCacheID
	// ("" before the room has one).
	plCache   *event.PowerLevelsEventContent
	plCacheID id.EventID
	// authorized are the (type, sender, auth events) of message events
	// authorised so far (see batchState.authorized), up to
	// maxAuthorizedMemo of them.
	authorized map[string]bool
}

// maxAuthorizedMemo bounds roomState.authorized: past it, it starts over.
const maxAuthorizedMemo = 1024

// batchState is a roomState with the uncommitted changes of the batch on top.
type batchState struct {
	base        *roomState
	overlay     map[pdu.StateKey]id.EventID
	roomID      id.RoomID
	extremities []id.EventID
	depth       int64
	group       int64
	chainLen    int64
	pending     map[id.EventID]*pdu.PDU
	// pendingRaw is the wire JSON of pending events (for v1 references).
	pendingRaw map[id.EventID][]byte
	// joinedOverlay records membership changes of local users in the
	// batch, remoteOverlay those of other servers' users, serverDelta the
	// change of each server's count of joined members.
	joinedOverlay map[id.UserID]bool
	remoteOverlay map[id.UserID]bool
	serverDelta   map[string]int
	// interest resolves the batch's consumers, one per Options.Interest
	// (nil: not begun).
	interest []BatchInterest
	// noPush: the batch's events notify nobody.
	noPush bool
	// authorized are the (type, sender, auth events) of message events
	// authorised in this batch and those before it (the room state's): the
	// auth rules read nothing else of them (rules 6 and 8; redactions are
	// checked each), so a batch of thousands, or a sender's every message
	// until the room's power levels or their membership change, checks
	// each combination once.
	authorized map[string]bool
	// deferSign: events other than memberships are built unsigned and
	// signed together at the end (signAll); unsigned holds them.
	deferSign bool
	unsigned  []unsignedEvent
}

// unsignedEvent is an event of the batch to sign, and where its JSON goes.
type unsignedEvent struct {
	ev       *pdu.PDU
	se       *storage.Event
	redacted []byte
	index    int
}

func newBatch(rs *roomState) *batchState {
	if rs.joined == nil {
		rs.joined = map[id.UserID]bool{}
	}
	if rs.remote == nil {
		rs.remote, rs.servers = map[id.UserID]bool{}, map[string]int{}
		for u := range rs.joined {
			rs.servers[u.Homeserver()]++
		}
	}
	if rs.authorized == nil {
		rs.authorized = map[string]bool{}
	}
	return &batchState{base: rs, overlay: map[pdu.StateKey]id.EventID{}, roomID: rs.roomID,
		extremities: rs.extremities, depth: rs.depth, group: rs.group, chainLen: rs.chainLen,
		pending: map[id.EventID]*pdu.PDU{}, pendingRaw: map[id.EventID][]byte{}, joinedOverlay: map[id.UserID]bool{},
		remoteOverlay: map[id.UserID]bool{}, serverDelta: map[string]int{}, authorized: rs.authorized}
}

// setJoined records in the batch whether a user (local or not) is joined
// after a membership event, and counts their server's members.
func (b *batchState) setJoined(u id.UserID, joined, local bool) {
	overlay, base := b.remoteOverlay, b.base.remote
	if local {
		overlay, base = b.joinedOverlay, b.base.joined
	}
	was, ok := overlay[u]
	if !ok {
		was = base[u]
	}
	switch {
	case joined && !was:
		b.serverDelta[u.Homeserver()]++
	case !joined && was:
		b.serverDelta[u.Homeserver()]--
	}
	overlay[u] = joined
}

// joinedServers lists the servers with members joined in the batch's state.
func (b *batchState) joinedServers() []string {
	out := make([]string, 0, len(b.base.servers)+len(b.serverDelta))
	for srv, n := range b.base.servers {
		if n+b.serverDelta[srv] > 0 {
			out = append(out, srv)
		}
	}
	for srv, d := range b.serverDelta {
		if _, ok := b.base.servers[srv]; !ok && d > 0 {
			out = append(out, srv)
		}
	}
	slices.Sort(out)
	return out
}

// joinedUsers lists the local users joined in the batch's state.
func (b *batchState) joinedUsers() []id.UserID {
	if len(b.joinedOverlay) == 0 {
		// Nobody joined or left in the batch: the room's list, made once
		// for all its messages until a membership changes (a list per
		// message was a tenth of the allocations of a send into a room of
		// 16). Clipped: a caller appending gets a slice of its own.
		rs := b.base
		if rs.joinedList == nil {
			rs.joinedList = make([]id.UserID, 0, len(rs.joined))
			for u := range rs.joined {
				rs.joinedList = append(rs.joinedList, u)
			}
		}
		return slices.Clip(rs.joinedList)
	}
	var out []id.UserID
	for u := range b.base.joined {
		if j, ok := b.joinedOverlay[u]; !ok || j {
			out = append(out, u)
		}
	}
	for u, j := range b.joinedOverlay {
		if j && !b.base.joined[u] {
			out = append(out, u)
		}
	}
	return out
}

// anyLocalJoined reports whether a local user is joined in the batch's
// state, without listing them (a room of thousands).
func (b *batchState) anyLocalJoined() bool {
	for _, j := range b.joinedOverlay {
		if j {
			return true
		}
	}
	for u := range b.base.joined {
		if j, ok := b.joinedOverlay[u]; !ok || j {
			return true
		}
	}
	return false
}

func (b *batchState) get(k pdu.StateKey) id.EventID {
	if v, ok := b.overlay[k]; ok {
		return v
	}
	return b.base.state[k]
}

// full is the whole state as entries (for snapshots).
func (b *batchState) full() []storage.StateEntry {
	out := make([]storage.StateEntry, 0, len(b.base.state)+len(b.overlay))
	for k, v := range b.base.state {
		if _, ok := b.overlay[k]; !ok {
			out = append(out, storage.StateEntry{Type: k.Type, StateKey: k.StateKey, EventID: v})
		}
	}
	for k, v := range b.overlay {
		if v != "" {
			out = append(out, storage.StateEntry{Type: k.Type, StateKey: k.StateKey, EventID: v})
		}
	}
	return out
}

func (b *batchState) commit() {
	rs := b.base
	for k, v := range b.overlay {
		if v == "" {
			delete(rs.state, k)
		} else {
			rs.state[k] = v
		}
	}
	rs.roomID, rs.extremities, rs.depth, rs.group, rs.chainLen = b.roomID, b.extremities, b.depth, b.group, b.chainLen
	if len(b.joinedOverlay) > 0 {
		rs.joinedList = nil
	}
	for u, j := range b.joinedOverlay {
		if j {
			rs.joined[u] = true
		} else {
			delete(rs.joined, u)
		}
	}
	for u, j := range b.remoteOverlay {
		if j {
			rs.remote[u] = true
		} else {
			delete(rs.remote, u)
		}
	}
	for srv, d := range b.serverDelta {
		if rs.servers[srv] += d; rs.servers[srv] <= 0 {
			delete(rs.servers, srv)
		}
	}
}

// sendReq is one event waiting for its room writer.
type sendReq struct {
	ctx   context.Context
	proto *events.Proto
	txn   *storage.EventTxn
	// check, when set, vets the event against the room state first.
	check func(b *batchState) error
	// redacts is the target of a redaction, marked with it.
	redacts id.EventID
	// protos, when set, is a batch committed all together or not at all.
	protos []*events.Proto
	// noPush skips push rules (batch send without send_notification).
	noPush bool
	// history stores the batch before the timeline (BatchOptions.History).
	history bool
	// aliases name the batch's events (BatchOptions.Aliases); refs resolves
	// the aliases stored before that its events refer to.
	aliases  []id.EventID
	messages []*storage.BridgeMessage
	refs     map[id.EventID]id.EventID
	// remote, when set, is an event from another server past the checks
	// made before the writer (Intake); processRemote does the rest.
	remote *received
	// remotes, when set, are events of one server past those checks
	// (IntakeBatch), taken in order; remoteErrs gets what failed of each.
	remotes    []*received
	remoteErrs []error
	// outlier, when set, is an invite to a room this server is not in,
	// stored without the room's state (processOutlier).
	outlier *storage.EventWrite
	version id.RoomVersion // of the outlier's room
	// join, when set, is a local user's join of a room this server was
	// not in, checked and ready to store (processJoin).
	join *joinedRemote
	// backfill, when set, is a checked page of history (processBackfill).
	backfill *backfillWrite
	// fetched, when set, are checked events of another server to keep as
	// outliers (processFetched).
	fetched *fetchedWrite
	// draft: proto is built and signed on the room's state but not
	// stored (an invite another server must sign first); the answer
	// carries its JSON.
	draft bool
	done  chan sendResult
}

// single reports whether the request is one plain send, which process
// batches with others.
func (r *sendReq) single() bool {
	return r.protos == nil && r.remote == nil && r.remotes == nil && r.outlier == nil && r.join == nil && !r.draft &&
		r.fetched == nil && r.backfill == nil
}

type sendResult struct {
	eventIDs []id.EventID // for batches
	eventID  id.EventID
	raw      []byte // a draft's JSON
	err      error
}

// roomWriter serialises a room's writes. It lives while the room is busy:
// after Options.WriterIdle without a request it retires, dropping the room
// state it cached, and the next request starts a new one that reloads it.
type roomWriter struct {
	svc    *Service
	roomID id.RoomID
	reqs   chan *sendReq
	// users counts submitters between finding this writer and handing it
	// their request; guarded by svc.mu. A writer retires only when it is
	// zero and reqs is empty, so no request is ever left behind.
	users int
	// kick wakes a stopping writer when a submitter let go (users fell).
	kick chan struct{}
	// stale is set when another process committed to the room: the state
	// cached in rs is reloaded before the next batch.
	stale atomic.Bool
	rs    *roomState // nil: load from storage before the next batch
	// recent maps the transaction IDs of recently committed events to them,
	// in two generations, so a retry that raced its original is answered
	// without a query.
	recent, older map[committedTxn]id.EventID
	// flight is the batch of sends being stored while the writer builds
	// the next one on top of it (nil: none); see process and settle.
	flight *flight
	// next is a request taken from reqs while a batch was being gathered
	// but not of it: the next one served.
	next *sendReq
	// active are the senders of the room's recent sends and when each
	// last sent; crowded, that the last batch carried several (see gather).
	active  map[id.UserID]time.Time
	crowded bool
}

// committedTxn is a client transaction: its user, device, endpoint and ID.
type committedTxn struct {
	user     id.UserID
	device   id.DeviceID
	endpoint string
	txn      string
}

func recentKey(t *storage.EventTxn) committedTxn {
	return committedTxn{t.UserID, t.DeviceID, t.Endpoint, t.TxnID}
}

func (w *roomWriter) recentTxn(key committedTxn) (id.EventID, bool) {
	if eid, ok := w.recent[key]; ok {
		return eid, true
	}
	eid, ok := w.older[key]
	return eid, ok
}

func (w *roomWriter) rememberTxn(key committedTxn, eid id.EventID) {
	if len(w.recent) >= 4096 {
		w.older, w.recent = w.recent, nil
	}
	if w.recent == nil {
		w.recent = map[committedTxn]id.EventID{}
	}
	w.recent[key] = eid
}

// acquire returns the room's writer, starting it if needed, and counts the
// caller as its user until release: the writer does not retire meanwhile.
// rs, when not nil, is the room's state for a new writer (a room just created).
func (s *Service) acquire(roomID id.RoomID, rs *roomState) (*roomWriter, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, types.NewError(http.StatusServiceUnavailable, types.CodeUnknown, "The server is shutting down")
	}
	w, ok := s.writers[roomID]
	if !ok {
		w = &roomWriter{svc: s, roomID: roomID, reqs: make(chan *sendReq, maxBatch), kick: make(chan struct{}, 1), rs: rs}
		s.writers[roomID] = w
		s.wg.Add(1)
		go w.run()
	}
	w.users++
	return w, nil
}

// release ends a use begun by acquire.
func (s *Service) release(w *roomWriter) {
	s.mu.Lock()
	w.users--
	closed := s.closed
	s.mu.Unlock()
	if closed {
		select {
		case w.kick <- struct{}{}:
		default:
		}
	}
}

// retire removes the writer if nobody is about to hand it a request and
// none is queued; false means it must keep serving.
func (w *roomWriter) retire() bool {
	s := w.svc
	s.mu.Lock()
	defer s.mu.Unlock()
	if w.users > 0 || len(w.reqs) > 0 {
		return false
	}
	delete(s.writers, w.roomID)
	return true
}

// adopt hands a new room's state to its writer, so the first send needs no
// reload; a stopping service keeps nothing (the room is loaded on demand).
func (s *Service) adopt(roomID id.RoomID, rs *roomState) {
	if w, err := s.acquire(roomID, rs); err == nil {
		s.release(w)
	}
}

// submit queues an event for its room and waits for the commit.
// A repeated client transaction is answered by the writer: from memory
// when it is recent, else when the commit refuses it (see fail).
func (s *Service) submit(ctx context.Context, roomID id.RoomID, req *sendReq) (id.EventID, error) {
	res := s.queue(ctx, roomID, req)
	return res.eventID, res.err
}

// queue hands a request to its room's writer and waits for the commit.
func (s *Service) queue(ctx context.Context, roomID id.RoomID, req *sendReq) sendResult {
	w, err := s.acquire(roomID, nil)
	if err != nil {
		return sendResult{err: err}
	}
	req.ctx = ctx
	req.done = make(chan sendResult, 1)
	select {
	case w.reqs <- req:
		s.release(w)
	case <-ctx.Done():
		s.release(w)
		return sendResult{err: ctx.Err()}
	}
	// Once queued, the request is committed or refused; wait for which, so
	// that a client told "failed" never finds the events later.
	return <-req.done
}

// run serves the room's requests until the writer has been idle for
// Options.WriterIdle, or the service stops and nothing is left to write.
func (w *roomWriter) run() {
	s := w.svc
	defer s.wg.Done()
	idle := time.NewTimer(s.opts.WriterIdle)
	defer idle.Stop()
	stopping := false
	for {
		var first *sendReq
		if w.next != nil {
			first, w.next = w.next, nil
			w.serve(first)
			continue
		}
		if stopping {
			// Serve what is queued and what submitters already holding the
			// writer hand over, then go.
			w.settle()
			if w.retire() {
				return
			}
			select {
			case first = <-w.reqs:
			case <-w.kick:
				continue
			}
		} else {
			select {
			case first = <-w.reqs:
			case <-w.flight.landed():
				w.settle()
				continue
			case <-idle.C:
				w.settle()
				if w.retire() {
					return
				}
				idle.Reset(s.opts.WriterIdle)
				continue
			case <-s.quit:
				stopping = true
				continue
			}
		}
		w.serve(first)
		if !stopping {
			if !idle.Stop() {
				select {
				case <-idle.C:
				default:
				}
			}
			idle.Reset(s.opts.WriterIdle)
		}
	}
}

// serve commits first and whatever else is queued, up to maxBatch.
func (w *roomWriter) serve(first *sendReq) {
	batch := []*sendReq{first}
drain:
	for len(batch) < maxBatch {
		select {
		case r := <-w.reqs:
			batch = append(batch, r)
		default:
			break drain
		}
	}
	var singles []*sendReq
	for _, r := range batch {
		if r.single() {
			singles = append(singles, r)
			continue
		}
		if len(singles) > 0 {
			w.process(singles)
			singles = nil
		}
		// The other requests are served on the room's stored state.
		w.settle()
		if r.remote != nil {
			w.processRemote(r)
			continue
		}
		if r.remotes != nil {
			w.processRemoteBatch(r)
			continue
		}
		if r.outlier != nil {
			w.processOutlier(r)
			continue
		}
		if r.join != nil {
			w.processJoin(r)
			continue
		}
		if r.draft {
			w.processDraft(r)
			continue
		}
		if r.fetched != nil {
			w.processFetched(r)
			continue
		}
		if r.backfill != nil {
			w.processBackfill(r)
			continue
		}
		w.processAtomic(r)
	}
	if len(singles) > 0 {
		w.process(singles)
	}
}

// loadState reads the room's state unless the writer holds it.
func (w *roomWriter) loadState(ctx context.Context) error {
	if w.stale.Swap(false) {
		w.rs = nil // another process wrote to the room
	}
	if w.rs != nil {
		return nil
	}
	rs, err := w.svc.loadRoomState(ctx, w.roomID)
	if err != nil {
		return err
	}
	w.rs = rs
	return nil
}

// processAtomic commits a batch request's events together, or none of them.
func (w *roomWriter) processAtomic(r *sendReq) {
	s := w.svc
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := w.loadState(ctx); err != nil {
		r.done <- sendResult{err: err}
		return
	}
	b := newBatch(w.rs)
	b.noPush = r.noPush
	b.deferSign = len(r.protos) > 1
	if r.history {
		// History hangs off the room's beginning, never off its live end: its
		// events chain among themselves from the create event, so that no
		// live event ever has one as a prev event and none becomes a forward
		// extremity (DESIGN decision 7).
		create := w.rs.state[pdu.StateKey{Type: "m.room.create"}]
		ps, err := s.loadPDUs(ctx, []id.EventID{create})
		if err != nil || ps[0] == nil {
			r.done <- sendResult{err: fmt.Errorf("history: load the create event of %s: %w", w.roomID, err)}
			return
		}
		b.extremities, b.depth = []id.EventID{create}, ps[0].Depth
	}
	writes := make([]*storage.EventWrite, 0, len(r.protos))
	built := make([]*pdu.PDU, 0, len(r.protos))
	refs := maps.Clone(r.refs)
	signer := &batchSigner{s: s}
	signed := false
	defer func() {
		if !signed {
			_ = signer.wait(nil) // a failed batch: let its signers finish
		}
	}()
	for i, p := range r.protos {
		if raw, ok := p.Content.(jsontext.Value); ok && len(refs) > 0 {
			q := *p
			q.Content = jsontext.Value(rewriteRefs(raw, refs))
			p = &q
		}
		ev, wr, err := s.prepare(ctx, b, p)
		if err != nil {
			if me, ok := types.AsError(err); ok {
				err = me.With("index", i)
			}
			r.done <- sendResult{err: err} // nothing of the batch is kept
			return
		}
		if n := len(b.unsigned); n > 0 && b.unsigned[n-1].ev == ev {
			b.unsigned[n-1].index = i
			signer.flush(b.unsigned, false)
		}
		if i < len(r.aliases) && r.aliases[i] != "" {
			wr.Alias = r.aliases[i]
			if i < len(r.messages) {
				wr.Message = r.messages[i]
			}
			if refs == nil {
				refs = map[id.EventID]id.EventID{}
			}
			refs[wr.Alias] = ev.InternalMeta.EventID // later events may point at it
		}
		if r.history {
			// The past concerns no appservice's queue (the one that sent it
			// knows it).
			wr.History, wr.Queued = true, nil
		}
		writes = append(writes, wr)
		built = append(built, ev)
	}
	signed = true
	if err := signer.wait(b.unsigned); err != nil {
		r.done <- sendResult{err: err}
		return
	}
	if r.history {
		// The live end of the room stays where it was.
		b.extremities, b.depth = w.rs.extremities, w.rs.depth
		writes[len(writes)-1].Extremities = nil
	}
	if err := w.persist(ctx, b, writes, built, nil); err != nil {
		r.done <- sendResult{err: s.takenAlias(ctx, r.aliases, err)}
		return
	}
	ids := make([]id.EventID, len(built))
	for i, ev := range built {
		ids[i] = ev.InternalMeta.EventID
	}
	r.done <- sendResult{eventIDs: ids}
}

// persist stores prepared events in one transaction, makes the batch the
// room's state, caches the events and publishes them. Only the last event
// becomes a forward extremity.
func (w *roomWriter) persist(ctx context.Context, b *batchState, writes []*storage.EventWrite, built []*pdu.PDU,
	txns map[committedTxn]id.EventID) error {
	if err := w.store(ctx, writes); err != nil {
		w.rs = nil // storage and memory may disagree now: reload next time
		return err
	}
	b.commit()
	for key, eid := range txns {
		w.rememberTxn(key, eid)
	}
	w.publish(writes, built)
	return nil
}

// store writes prepared events in one transaction; only the last becomes
// a forward extremity. It touches nothing of the writer's memory, so a
// batch in flight is stored by it off the writer's goroutine.
func (w *roomWriter) store(ctx context.Context, writes []*storage.EventWrite) error {
	s := w.svc
	for _, wr := range writes[:len(writes)-1] {
		wr.Extremities = nil
	}
	// In flight from before positions are taken until the commit is
	// published (whose observer records it): see MayHaveMemberEventsAfter
	// and mayHaveRelationsAfter.
	if slices.ContainsFunc(writes, func(wr *storage.EventWrite) bool { return wr.Event.Type == "m.room.member" }) {
		s.memberWrites.Add(1)
		defer s.memberWrites.Add(-1)
	}
	if slices.ContainsFunc(writes, func(wr *storage.EventWrite) bool { return wr.Event.RelatesTo != "" }) {
		s.relWrites.Add(1)
		defer s.relWrites.Add(-1)
	}
	if err := s.store.PersistEvents(ctx, writes); err != nil {
		return fmt.Errorf("persist events: %w", err)
	}
	return nil
}

// publish caches committed events and tells the process's observers.
func (w *roomWriter) publish(writes []*storage.EventWrite, built []*pdu.PDU) {
	for _, ev := range built {
		w.svc.cache.put(ev.InternalMeta.EventID, ev)
	}
	// Publish before answering the senders, so that a sync made after the
	// answer sees the events (read your writes).
	w.svc.persisted(w.roomID, writes)
}

// loadRoomState reads a room's current state, extremities and position.
func (s *Reader) loadRoomState(ctx context.Context, roomID id.RoomID) (*roomState, error) {
	room, err := s.getRoom(ctx, roomID)
	if err != nil {
		return nil, err
	}
	entries, err := s.store.CurrentState(ctx, roomID)
	if err != nil {
		return nil, err
	}
	rs := &roomState{roomID: roomID, version: id.RoomVersion(room.RoomVersion),
		state: make(map[pdu.StateKey]id.EventID, len(entries))}
	for _, e := range entries {
		rs.state[pdu.StateKey{Type: e.Type, StateKey: e.StateKey}] = e.EventID
	}
	members, err := s.store.RoomMembers(ctx, roomID, []string{"join"})
	if err != nil {
		return nil, err
	}
	rs.joined, rs.remote, rs.servers = map[id.UserID]bool{}, map[id.UserID]bool{}, map[string]int{}
	for _, m := range members {
		u := m.UserID
		if u.Homeserver() == s.opts.ServerName {
			rs.joined[u] = true
		} else {
			rs.remote[u] = true
		}
		rs.servers[u.Homeserver()]++
	}
	ext, err := s.store.GetForwardExtremities(ctx, roomID)
	if err != nil {
		return nil, err
	}
	evs, err := s.store.GetEvents(ctx, ext)
	if err != nil {
		return nil, err
	}
	if len(evs) == 0 {
		// A room this server only holds an invite to (ReceiveInvite): it
		// has none of its state, so nothing can be done in it here.
		return nil, types.NotFound("This server is not in room %s", roomID)
	}
	var latest *storage.Event
	for _, e := range evs {
		rs.extremities = append(rs.extremities, e.EventID)
		rs.depth = max(rs.depth, e.Depth)
		if latest == nil || e.StreamPos > latest.StreamPos {
			latest = e
		}
	}
	if len(evs) > 1 {
		// Several forward extremities (from federation): the room's state is
		// the resolution of the states after each of them. The next event
		// stores it as a fresh snapshot (group 0 below).
		resolved, err := s.resolveExtremities(ctx, rs.version, evs)
		if err != nil {
			return nil, err
		}
		rs.state = resolved
		return rs, nil
	}
	rs.group = latest.StateGroup
	g, err := s.store.GetStateGroup(ctx, latest.StateGroup)
	if err != nil {
		return nil, err
	}
	rs.chainLen = g.ChainLen
	return rs, nil
}

// resolveExtremities runs state resolution over the states after events.
func (s *Reader) resolveExtremities(ctx context.Context, rv id.RoomVersion, evs []*storage.Event) (state.Map, error) {
	sets := make([]state.Map, 0, len(evs))
	for _, e := range evs {
		entries, err := s.store.StateAt(ctx, e.StateGroup)
		if err != nil {
			return nil, err
		}
		m := make(state.Map, len(entries))
		for _, en := range entries {
			m[pdu.StateKey{Type: en.Type, StateKey: en.StateKey}] = en.EventID
		}
		sets = append(sets, m)
	}
	load := func(ctx context.Context, ids []id.EventID) (map[id.EventID]*pdu.PDU, error) {
		ps, err := s.loadPDUs(ctx, ids)
		if err != nil {
			return nil, err
		}
		out := make(map[id.EventID]*pdu.PDU, len(ps))
		for _, p := range ps {
			if p != nil {
				out[p.InternalMeta.EventID] = p
			}
		}
		return out, nil
	}
	// The exact variant: agreeing with other servers matters more than the
	// few milliseconds the shortcut saves (core/state benchmarks).
	return state.ResolveExact(ctx, rv, sets, load, s.getKey)
}

// idBlock hands out state group IDs reserved from storage in blocks.
type idBlock struct {
	mu         sync.Mutex
	next, last int64
}

func (s *Service) nextGroupID(ctx context.Context) (int64, error) {
	g := &s.groupIDs
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.next == 0 || g.next > g.last {
		first, err := s.store.ReserveStateGroupIDs(ctx, 256)
		if err != nil {
			return 0, err
		}
		g.next, g.last = first, first+255
	}
	n := g.next
	g.next++
	return n, nil
}

// marshalContent turns proto content into JSON once, so that auth event
// selection and the built event see the same bytes.
func marshalContent(c any) (jsontext.Value, error) {
	switch v := c.(type) {
	case jsontext.Value:
		return v, nil
	case nil:
		return jsontext.Value("{}"), nil
	default:
		raw, err := json.Marshal(v)
		if err != nil {
			return nil, err
		}
		return raw, nil
	}
}

// prepare builds, authorises and lays out one event on top of the batch.
func (s *Service) prepare(ctx context.Context, b *batchState, p *events.Proto) (*pdu.PDU, *storage.EventWrite, error) {
	rv := b.base.version
	content, err := marshalContent(p.Content)
	if err != nil {
		return nil, nil, err
	}
	p.Content = content
	if p.OriginServerTS == 0 {
		p.OriginServerTS = s.nowMS()
	}
	probe := &pdu.PDU{Type: p.Type, StateKey: p.StateKey, Sender: p.Sender, Content: content}
	var auth []id.EventID
	for _, k := range probe.AuthEventSelection(rv) {
		if eid := b.get(k); eid != "" {
			auth = append(auth, eid)
		}
	}
	var ev *pdu.PDU
	var raw, redacted []byte
	if b.deferSign && p.Type != "m.room.member" && rv.EventIDFormat() != id.EventIDFormatCustom {
		// Memberships are signed at once: a restricted join's
		// authorisation checks this server's signature.
		ev, redacted, err = s.opts.Signer.BuildUnsigned(rv, b.roomID, p, b.extremities, auth, b.depth+1)
	} else {
		ev, raw, err = s.opts.Signer.Build(rv, b.roomID, p, b.extremities, auth, b.depth+1,
			func(ids []id.EventID) ([]pdu.V1EventReference, error) { return s.references(ctx, b, ids) })
	}
	if err != nil {
		return nil, nil, err
	}
	eventID := ev.InternalMeta.EventID
	roomID := b.roomID
	if ev.Type == "m.room.create" && rv.RoomIDIsCreateEventID() {
		roomID = events.RoomIDFromCreate(eventID)
	}
	// The memo's key is built in the writer's buffer and made a string only
	// when stored: looking a []byte up converts it without a copy.
	memo := b.base.memoKey[:0]
	if ev.StateKey == nil && ev.Type != "m.room.redaction" {
		memo = append(append(append(append(append(memo, ev.Type...), 0), ev.Sender...), 0), ev.RoomID...)
		for _, a := range ev.AuthEvents {
			memo = append(append(memo, 0), a...)
		}
		b.base.memoKey = memo
	}
	if len(memo) == 0 || !b.authorized[string(memo)] {
		getEvents := s.batchEvents(ctx, b)
		if err := events.Authorize(rv, ev, getEvents, s.getKey); err != nil {
			return nil, nil, events.Forbidden(&events.AuthError{Err: err})
		}
		if len(memo) > 0 {
			if len(b.authorized) >= maxAuthorizedMemo {
				clear(b.authorized)
			}
			b.authorized[string(memo)] = true
		}
	}
	se := &storage.Event{EventID: eventID, RoomID: roomID, Type: ev.Type, StateKey: ev.StateKey,
		Sender: ev.Sender, OriginServerTS: ev.OriginServerTS, Depth: ev.Depth, JSON: raw}
	if redacted != nil {
		b.unsigned = append(b.unsigned, unsignedEvent{ev: ev, se: se, redacted: redacted})
	}
	if ev.Type == "m.room.member" {
		se.Membership = gjson.GetBytes(content, "membership").Str
		u := id.UserID(*ev.StateKey)
		b.setJoined(u, se.Membership == "join", u.Homeserver() == s.opts.ServerName)
	}
	se.RelType, se.RelatesTo = relationOf(content)
	wr := &storage.EventWrite{Event: se, Extremities: []id.EventID{eventID}}
	if err = s.pushActions(ctx, b, ev, se, wr); err != nil {
		return nil, nil, err
	}
	if wr.Queued, err = s.interestedIn(ctx, b, ev, roomID); err != nil {
		return nil, nil, err
	}
	b.roomID = roomID
	if ev.StateKey != nil || b.group == 0 {
		// A state event starts a group; so does any event after state
		// resolution, which left the room without one (group 0).
		gid, err := s.nextGroupID(ctx)
		if err != nil {
			return nil, nil, err
		}
		g := &storage.StateGroup{GroupID: gid, RoomID: roomID, PrevGroup: b.group, ChainLen: b.chainLen + 1}
		if ev.StateKey != nil {
			key := pdu.StateKey{Type: ev.Type, StateKey: *ev.StateKey}
			se.ReplacesState = b.get(key)
			b.overlay[key] = eventID
			entry := storage.StateEntry{Type: key.Type, StateKey: key.StateKey, EventID: eventID}
			g.Entries = []storage.StateEntry{entry}
			wr.CurrentState = []storage.StateEntry{entry}
		}
		if b.group == 0 || g.ChainLen >= snapshotEvery {
			g.PrevGroup, g.ChainLen, g.Entries = 0, 0, b.full()
			if b.base.group == 0 && b.group == 0 && ev.Type != "m.room.create" {
				// After state resolution the current_state rows must follow too.
				wr.CurrentState = g.Entries
			}
		}
		wr.NewGroup = g
		b.group, b.chainLen = gid, g.ChainLen
	}
	se.StateGroup = b.group
	b.extremities = []id.EventID{eventID}
	b.depth = ev.Depth
	b.pending[eventID] = ev
	if raw != nil {
		b.pendingRaw[eventID] = raw
	}
	return ev, wr, nil
}

// signChunk is how many unsigned events one signing goroutine takes.
const signChunk = 64

// batchSigner signs a batch's unsigned events on the other cores while the
// writer goes on building the rest, and gives them their JSON: signing is
// the dearest step of building, and waiting for it all at the end of a
// batch left the writer idle meanwhile.
type batchSigner struct {
	s    *Service
	wg   sync.WaitGroup
	sent int // how many of the batch's unsigned events are being signed
	mu   sync.Mutex
	err  error
}

// flush hands the unsigned events not yet handed out to signing goroutines
// in chunks: whole chunks only, unless all.
func (bs *batchSigner) flush(evs []unsignedEvent, all bool) {
	for len(evs)-bs.sent >= signChunk || all && len(evs) > bs.sent {
		chunk := evs[bs.sent:min(len(evs), bs.sent+signChunk)]
		bs.sent += len(chunk)
		bs.wg.Add(1)
		go func() {
			defer bs.wg.Done()
			for _, u := range chunk {
				raw, err := bs.s.opts.Signer.Complete(u.ev, u.redacted)
				if err != nil {
					if me, ok := types.AsError(err); ok {
						err = me.With("index", u.index)
					}
					bs.mu.Lock()
					if bs.err == nil {
						bs.err = err
					}
					bs.mu.Unlock()
					return
				}
				u.se.JSON = raw
			}
		}()
	}
}

// wait signs what is left and waits for all; the first error, if any.
func (bs *batchSigner) wait(evs []unsignedEvent) error {
	bs.flush(evs, true)
	bs.wg.Wait()
	return bs.err
}

// references gives the (ID, reference hash) pairs of legacy-format events
// (rooms v1 and v2), from the batch or storage.
func (s *Reader) references(ctx context.Context, b *batchState, ids []id.EventID) ([]pdu.V1EventReference, error) {
	rv := b.base.version
	out := make([]pdu.V1EventReference, len(ids))
	var missing []id.EventID
	for _, eid := range ids {
		if _, ok := b.pendingRaw[eid]; !ok {
			missing = append(missing, eid)
		}
	}
	stored, err := s.store.GetEvents(ctx, missing)
	if err != nil {
		return nil, err
	}
	raws := map[id.EventID][]byte{}
	for _, e := range stored {
		raws[e.EventID] = e.JSON
	}
	for i, eid := range ids {
		raw, ok := b.pendingRaw[eid]
		if !ok {
			if raw, ok = raws[eid]; !ok {
				return nil, fmt.Errorf("event %s not found for a reference", eid)
			}
		}
		if out[i], err = events.ReferenceOf(rv, raw); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// getKey answers eventauth's signature checks (restricted joins): this
// server's own key, other servers' from Options.KeyRing.
func (s *Reader) getKey(serverName string, keyID id.KeyID, minValidUntil time.Time) (id.SigningKey, time.Time, error) {
	sg := s.opts.Signer
	if serverName == sg.ServerName && keyID == sg.KeyID {
		return sg.Public(), time.Now().Add(24 * time.Hour), nil
	}
	return s.remoteKey(serverName, keyID, minValidUntil) // Options.KeyRing
}

// batchEvents loads events for eventauth: those of the batch from memory,
// the rest from the cache or storage.
func (s *Reader) batchEvents(ctx context.Context, b *batchState) func(ids []id.EventID) ([]*pdu.PDU, error) {
	return func(ids []id.EventID) ([]*pdu.PDU, error) {
		out := make([]*pdu.PDU, len(ids))
		var rest []id.EventID
		for i, eid := range ids {
			if p, ok := b.pending[eid]; ok {
				out[i] = p
			} else {
				rest = append(rest, eid)
			}
		}
		if len(rest) == 0 {
			return out, nil
		}
		loaded, err := s.loadPDUs(ctx, rest)
		if err != nil {
			return nil, err
		}
		j := 0
		for i := range out {
			if out[i] == nil {
				out[i] = loaded[j]
				j++
			}
		}
		return out, nil
	}
}
