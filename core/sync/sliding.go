package sync

// Simplified sliding sync (MSC4186), as Synapse serves it at
// POST /_matrix/client/unstable/org.matrix.simplified_msc3575/sync.
//
// A client opens a connection with a request without pos; each answer's pos
// names the connection's state after it: which rooms the client has been
// sent, whether they are up to date, and with which room config (timeline
// limit, required state). That state lives in memory (bounded) and is keyed
// by user, device and conn_id; a pos whose state is gone answers 400
// M_UNKNOWN_POS, after which clients start a new connection.
//
// Lists sort the user's rooms by their latest activity (the latest event of
// a joined room, the membership event otherwise), newest first, and send the
// rooms inside the requested ranges; room subscriptions send rooms by ID. A
// room is "initial" the first time a connection sees it (and when the user
// joins it): its timeline is the newest timeline_limit events and its
// required_state is taken from the current state. Afterwards only changes
// are sent: the events since the client's copy and the required state that
// changed. A room that falls out of every range while it changes is
// remembered as behind, and catches up from where the client's copy ended
// when it comes back into a range.

import (
	"context"
	"encoding/json/jsontext"
	"errors"
	"fmt"
	"runtime/debug"
	"slices"
	"sort"
	"strconv"
	"strings"
	gosync "sync"
	"sync/atomic"
	"time"

	"github.com/tidwall/gjson"
	"golang.org/x/sync/errgroup"
	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/core/rooms"
	"github.com/tributary-hs/tributary/core/stream"
	"github.com/tributary-hs/tributary/core/types"
	"github.com/tributary-hs/tributary/storage"
)

// CodeUnknownPos is Synapse's errcode for a pos the server no longer knows.
const CodeUnknownPos = "M_UNKNOWN_POS"

// Bounds of the in-memory connection state.
const (
	slidingMaxConnsPerUser = 16
	slidingMaxConns        = 4096
	slidingConnIdle        = 24 * time.Hour
	slidingMaxPositions    = 8
	slidingMaxTimeline     = 1000
	slidingMaxFacts        = 100000
)

// slidingBumpTypes are the event types that move a room's bump_stamp
// (Synapse's SLIDING_SYNC_DEFAULT_BUMP_EVENT_TYPES, and the unstable names
// of polls and live location).
var slidingBumpTypes = []string{"m.room.create", "m.room.message", "m.room.encrypted", "m.sticker", "m.call.invite",
	"m.poll.start", "org.matrix.msc3381.poll.start", "m.beacon_info", "org.matrix.msc3672.beacon_info"}

// SlidingRequest is a parsed sliding sync request.
type SlidingRequest struct {
	User     id.UserID
	DeviceID id.DeviceID
	Pos      string
	Timeout  time.Duration
	Body     SlidingBody
}

// SlidingBody is the request body.
type SlidingBody struct {
	ConnID            string                           `json:"conn_id,omitempty"`
	Lists             map[string]*SlidingList          `json:"lists,omitempty"`
	RoomSubscriptions map[id.RoomID]*SlidingRoomConfig `json:"room_subscriptions,omitempty"`
	Extensions        SlidingExtensions                `json:"extensions"`
}

// SlidingRoomConfig is what a list or subscription asks of each room.
type SlidingRoomConfig struct {
	RequiredState [][]string `json:"required_state,omitempty"`
	TimelineLimit int        `json:"timeline_limit"`
}

// SlidingList is one list of the sliding window API.
type SlidingList struct {
	SlidingRoomConfig
	Ranges  [][]int64       `json:"ranges,omitempty"`
	Filters *SlidingFilters `json:"filters,omitempty"`
}

// SlidingFilters narrow a list.
type SlidingFilters struct {
	IsDM        *bool `json:"is_dm,omitempty"`
	IsEncrypted *bool `json:"is_encrypted,omitempty"`
	IsInvite    *bool `json:"is_invite,omitempty"`
	// RoomTypes and NotRoomTypes may hold null: rooms without a type.
	RoomTypes    []*string `json:"room_types,omitempty"`
	NotRoomTypes []*string `json:"not_room_types,omitempty"`
	Tags         []string  `json:"tags,omitempty"`
	NotTags      []string  `json:"not_tags,omitempty"`
}

// SlidingExtensions are the extension requests.
type SlidingExtensions struct {
	ToDevice    *SlidingToDeviceExt `json:"to_device,omitempty"`
	E2EE        *SlidingEnabledExt  `json:"e2ee,omitempty"`
	AccountData *SlidingRoomsExt    `json:"account_data,omitempty"`
	Receipts    *SlidingRoomsExt    `json:"receipts,omitempty"`
	Typing      *SlidingRoomsExt    `json:"typing,omitempty"`
}

// SlidingEnabledExt is an extension with nothing but its switch.
type SlidingEnabledExt struct {
	Enabled *bool `json:"enabled,omitempty"`
}

// SlidingToDeviceExt asks for to-device messages after since.
type SlidingToDeviceExt struct {
	Enabled *bool  `json:"enabled,omitempty"`
	Since   string `json:"since,omitempty"`
	Limit   int    `json:"limit,omitempty"`
}

// SlidingRoomsExt is an extension about rooms: those of the named lists
// and room subscriptions ("*": all; both default to ["*"]).
type SlidingRoomsExt struct {
	Enabled *bool     `json:"enabled,omitempty"`
	Lists   *[]string `json:"lists,omitempty"`
	Rooms   *[]string `json:"rooms,omitempty"`
}

func on(b *bool) bool { return b != nil && *b }

// SlidingResponse is the answer.
type SlidingResponse struct {
	Pos        string                           `json:"pos"`
	Lists      map[string]SlidingListResult     `json:"lists"`
	Rooms      map[id.RoomID]*SlidingRoomResult `json:"rooms"`
	Extensions map[string]any                   `json:"extensions"`
}

// SlidingListResult is a list's answer: how many rooms match it.
type SlidingListResult struct {
	Count int `json:"count"`
}

// SlidingHero is a member shown for a room without a name.
type SlidingHero struct {
	UserID      id.UserID `json:"user_id"`
	DisplayName string    `json:"displayname,omitempty"`
	AvatarURL   string    `json:"avatar_url,omitempty"`
}

// SlidingRoomResult is one room of the answer.
type SlidingRoomResult struct {
	Name              string               `json:"name,omitempty"`
	Avatar            string               `json:"avatar,omitempty"`
	Heroes            []SlidingHero        `json:"heroes,omitempty"`
	Initial           bool                 `json:"initial,omitempty"`
	ExpandedTimeline  bool                 `json:"unstable_expanded_timeline,omitempty"`
	IsDM              bool                 `json:"is_dm,omitempty"`
	RequiredState     []*rooms.ClientEvent `json:"required_state,omitzero"`
	Timeline          []*rooms.ClientEvent `json:"timeline,omitzero"`
	PrevBatch         string               `json:"prev_batch,omitempty"`
	Limited           *bool                `json:"limited,omitempty"`
	NumLive           *int                 `json:"num_live,omitempty"`
	JoinedCount       *int                 `json:"joined_count,omitempty"`
	InvitedCount      *int                 `json:"invited_count,omitempty"`
	NotificationCount int64                `json:"notification_count"`
	HighlightCount    int64                `json:"highlight_count"`
	BumpStamp         *int64               `json:"bump_stamp,omitempty"`
	InviteState       []map[string]any     `json:"invite_state,omitzero"`
}

// ---- connection state ----

// haveSent is what a connection's client holds of one room (or of one
// room's receipts or account data): up to date as of the connection's token
// (live), or as of pos (behind).
type haveSent struct {
	behind bool
	pos    int64
}

// roomConfig is the config a room was last sent with.
type roomConfig struct {
	timelineLimit int
	required      *requiredState
}

// connState is a connection's state after one answer. It is never changed
// once stored: each answer copies it.
type connState struct {
	rooms       map[id.RoomID]haveSent
	configs     map[id.RoomID]roomConfig
	receipts    map[id.RoomID]haveSent
	accountData map[id.RoomID]haveSent
}

func newConnState() *connState {
	return &connState{rooms: map[id.RoomID]haveSent{}, configs: map[id.RoomID]roomConfig{},
		receipts: map[id.RoomID]haveSent{}, accountData: map[id.RoomID]haveSent{}}
}

func (c *connState) clone() *connState {
	n := newConnState()
	for k, v := range c.rooms {
		n.rooms[k] = v
	}
	for k, v := range c.configs {
		n.configs[k] = v
	}
	for k, v := range c.receipts {
		n.receipts[k] = v
	}
	for k, v := range c.accountData {
		n.accountData[k] = v
	}
	return n
}

func (c *connState) equal(o *connState) bool {
	if len(c.rooms) != len(o.rooms) || len(c.configs) != len(o.configs) || len(c.receipts) != len(o.receipts) ||
		len(c.accountData) != len(o.accountData) {
		return false
	}
	for k, v := range c.rooms {
		if w, ok := o.rooms[k]; !ok || w != v {
			return false
		}
	}
	for k, v := range c.receipts {
		if w, ok := o.receipts[k]; !ok || w != v {
			return false
		}
	}
	for k, v := range c.accountData {
		if w, ok := o.accountData[k]; !ok || w != v {
			return false
		}
	}
	for k, v := range c.configs {
		w, ok := o.configs[k]
		if !ok || w.timelineLimit != v.timelineLimit || w.required.key() != v.required.key() {
			return false
		}
	}
	return true
}

type connKey struct {
	user   id.UserID
	device id.DeviceID
	conn   string
}

type slidingConn struct {
	next   int64
	states map[int64]*connState
	used   time.Time
}

// connStore holds the connections of one Service, and caches of facts
// that do not change (membership events) or that it refreshes (the latest
// event of each room of a user).
type connStore struct {
	mu        gosync.Mutex
	conns     map[connKey]*slidingConn
	factCache map[id.EventID]rooms.MembershipFacts
	activity  map[id.UserID]*lastEventCache
}

// lastEventCache is the latest event position of a user's joined rooms as of
// the events position at.
type lastEventCache struct {
	at   int64
	last map[id.RoomID]int64
}

var (
	connStoresMu gosync.Mutex
	connStores   = map[*Service]*connStore{}
)

func (s *Service) slidingConns() *connStore {
	connStoresMu.Lock()
	defer connStoresMu.Unlock()
	cs := connStores[s]
	if cs == nil {
		cs = &connStore{conns: map[connKey]*slidingConn{}, activity: map[id.UserID]*lastEventCache{}}
		connStores[s] = cs
	}
	return cs
}

// start forgets any connection with this key.
func (cs *connStore) start(key connKey) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	delete(cs.conns, key)
}

// load returns the state at a position (position 0: a connection that
// never stored any), or false if it is unknown. Using a position proves the
// client received it, so every other position of the connection is dropped.
func (cs *connStore) load(key connKey, pos int64, now time.Time) (*connState, bool) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	c := cs.conns[key]
	if pos == 0 {
		if c != nil {
			c.used = now
		}
		return newConnState(), true
	}
	if c == nil {
		return nil, false
	}
	st := c.states[pos]
	if st == nil {
		return nil, false
	}
	for p := range c.states {
		if p != pos {
			delete(c.states, p)
		}
	}
	c.used = now
	return st, true
}

// save stores a new state and returns its position.
func (cs *connStore) save(key connKey, st *connState, now time.Time) int64 {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	c := cs.conns[key]
	if c == nil {
		cs.evictLocked(key.user, now)
		c = &slidingConn{states: map[int64]*connState{}}
		cs.conns[key] = c
	}
	c.next++
	c.states[c.next] = st
	c.used = now
	for len(c.states) > slidingMaxPositions {
		oldest := int64(-1)
		for p := range c.states {
			if oldest < 0 || p < oldest {
				oldest = p
			}
		}
		delete(c.states, oldest)
	}
	return c.next
}

// evictLocked makes room for a new connection of user: it drops idle
// connections, then the least recently used of the user's, then of all.
func (cs *connStore) evictLocked(user id.UserID, now time.Time) {
	var mine []connKey
	for k, c := range cs.conns {
		if now.Sub(c.used) > slidingConnIdle {
			delete(cs.conns, k)
			continue
		}
		if k.user == user {
			mine = append(mine, k)
		}
	}
	lru := func(keys []connKey) connKey {
		best := keys[0]
		for _, k := range keys[1:] {
			if cs.conns[k].used.Before(cs.conns[best].used) {
				best = k
			}
		}
		return best
	}
	if len(mine) >= slidingMaxConnsPerUser {
		delete(cs.conns, lru(mine))
	}
	if len(cs.conns) >= slidingMaxConns {
		all := make([]connKey, 0, len(cs.conns))
		for k := range cs.conns {
			all = append(all, k)
		}
		delete(cs.conns, lru(all))
	}
}

// ---- positions ----

// formatPos renders a connection position and stream positions as a pos:
// "ss<connection position>_<sync token>".
func formatPos(conn int64, p stream.Positions) string {
	return "ss" + strconv.FormatInt(conn, 10) + "_" + FormatToken(p)
}

func unknownPos() error {
	return types.NewError(400, CodeUnknownPos, "Unknown or expired pos; start a new connection")
}

func parsePos(pos string) (int64, stream.Positions, error) {
	rest, ok := strings.CutPrefix(pos, "ss")
	connStr, tok, ok2 := strings.Cut(rest, "_")
	if !ok || !ok2 {
		return 0, stream.Positions{}, unknownPos()
	}
	conn, ok := types.ParsePosition(connStr, false)
	if !ok {
		return 0, stream.Positions{}, unknownPos()
	}
	p, err := ParseToken(tok)
	if err != nil {
		return 0, stream.Positions{}, unknownPos()
	}
	return conn, p, nil
}

// ---- required state ----

// requiredState is a room's required_state: which state to send.
type requiredState struct {
	all     bool                       // ["*", "*"]
	byType  map[string]map[string]bool // type → state keys ("*": all)
	anyType map[string]bool            // ["*", key]
	lazy    bool                       // ["m.room.member", "$LAZY"]
}

func newRequiredState(pairs [][]string, user id.UserID) *requiredState {
	r := &requiredState{byType: map[string]map[string]bool{}, anyType: map[string]bool{}}
	for _, p := range pairs {
		typ, key := p[0], p[1]
		if key == "$ME" {
			key = string(user)
		}
		switch {
		case typ == "*" && key == "*":
			r.all = true
		case typ == "*":
			r.anyType[key] = true
		case typ == "m.room.member" && key == "$LAZY":
			r.lazy = true
		default:
			if r.byType[typ] == nil {
				r.byType[typ] = map[string]bool{}
			}
			r.byType[typ][key] = true
		}
	}
	return r
}

func (r *requiredState) merge(o *requiredState) *requiredState {
	n := &requiredState{all: r.all || o.all, lazy: r.lazy || o.lazy, byType: map[string]map[string]bool{},
		anyType: map[string]bool{}}
	for _, src := range []*requiredState{r, o} {
		for t, keys := range src.byType {
			if n.byType[t] == nil {
				n.byType[t] = map[string]bool{}
			}
			for k := range keys {
				n.byType[t][k] = true
			}
		}
		for k := range src.anyType {
			n.anyType[k] = true
		}
	}
	return n
}

func (r *requiredState) match(k rooms.StateKey) bool {
	if r == nil {
		return false
	}
	if r.all || r.anyType[k.StateKey] {
		return true
	}
	keys := r.byType[k.Type]
	return keys["*"] || keys[k.StateKey]
}

// key is a canonical form, to compare configs.
func (r *requiredState) key() string {
	if r == nil {
		return ""
	}
	var parts []string
	for t, keys := range r.byType {
		for k := range keys {
			parts = append(parts, t+"\x00"+k)
		}
	}
	for k := range r.anyType {
		parts = append(parts, "*\x00"+k)
	}
	slices.Sort(parts)
	return strconv.FormatBool(r.all) + strconv.FormatBool(r.lazy) + "\x01" + strings.Join(parts, "\x01")
}

// ---- validation ----

// Validate checks the request body (400 M_INVALID_PARAM for bad ranges,
// timeline limits and required_state entries).
func (b *SlidingBody) Validate() error {
	check := func(where string, c *SlidingRoomConfig) error {
		if c == nil {
			return types.InvalidParam("%s must be an object", where)
		}
		if c.TimelineLimit < 0 {
			return types.InvalidParam("%s: timeline_limit must not be negative", where)
		}
		for _, p := range c.RequiredState {
			if len(p) != 2 {
				return types.InvalidParam("%s: required_state entries are [type, state_key] pairs", where)
			}
		}
		return nil
	}
	for name, l := range b.Lists {
		if l == nil {
			return types.InvalidParam("list %q must be an object", name)
		}
		if err := check("list "+strconv.Quote(name), &l.SlidingRoomConfig); err != nil {
			return err
		}
		for _, r := range l.Ranges {
			if len(r) != 2 || r[0] < 0 || r[1] < r[0] {
				return types.InvalidParam("list %q: ranges are [start, end] pairs with 0 <= start <= end", name)
			}
		}
	}
	for room, c := range b.RoomSubscriptions {
		if err := check("room subscription "+string(room), c); err != nil {
			return err
		}
	}
	if td := b.Extensions.ToDevice; td != nil && on(td.Enabled) && td.Since != "" {
		if _, ok := types.ParsePosition(td.Since, false); !ok {
			return types.InvalidParam("extensions.to_device.since must be a to-device next_batch")
		}
	}
	return nil
}

// ---- the request ----

// SlidingSync answers one sliding sync request: at once for a new
// connection or when anything changed since pos, else when something does
// or the timeout ends.
func (s *Service) SlidingSync(ctx context.Context, req *SlidingRequest) (*SlidingResponse, error) {
	if err := req.Body.Validate(); err != nil {
		return nil, err
	}
	cs := s.slidingConns()
	key := connKey{user: req.User, device: req.DeviceID, conn: req.Body.ConnID}
	prev := newConnState()
	var since stream.Positions
	var connPos int64
	hasSince := req.Pos != ""
	if hasSince {
		var err error
		if connPos, since, err = parsePos(req.Pos); err != nil {
			return nil, err
		}
		if since[stream.Events] > s.notifier.Current()[stream.Events] {
			return nil, unknownPos()
		}
		var ok bool
		if prev, ok = cs.load(key, connPos, time.Now()); !ok {
			return nil, unknownPos()
		}
	} else {
		cs.start(key)
	}
	timeout := min(req.Timeout, s.maxTimeout)
	deadline := time.Now().Add(timeout)
	for {
		upto := s.notifier.Current()
		b := &slidingBuilder{s: s, req: req, prev: prev, since: since, hasSince: hasSince, upto: upto}
		resp, next, err := b.build(ctx)
		if err != nil {
			return nil, err
		}
		done := !hasSince || !resp.empty() || timeout <= 0 || !time.Now().Before(deadline)
		if !done {
			waitCtx, cancel := context.WithDeadline(ctx, deadline)
			// Sliding sync has no presence extension.
			woke := s.notifier.Wait(waitCtx, stream.Interest{User: req.User, Rooms: b.joined,
				Ignore: stream.Streams(stream.Presence)}, upto)
			cancel()
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			if woke {
				continue // look again from the same pos
			}
		}
		pos := connPos
		if len(req.Body.Lists) > 0 || len(req.Body.RoomSubscriptions) > 0 || len(prev.rooms) > 0 {
			if !hasSince || !next.equal(prev) || connPos == 0 {
				pos = cs.save(key, next, time.Now())
			}
		}
		resp.Pos = formatPos(pos, upto)
		return resp, nil
	}
}

func (r *SlidingResponse) empty() bool {
	if len(r.Rooms) > 0 {
		return false
	}
	for _, v := range r.Extensions {
		if e, ok := v.(interface{ hasData() bool }); ok && e.hasData() {
			return false
		}
	}
	return true
}

// slidingBuilder computes one answer for (since, upto].
type slidingBuilder struct {
	s        *Service
	req      *SlidingRequest
	prev     *connState
	since    stream.Positions
	hasSince bool
	upto     stream.Positions

	next        *connState
	memberships map[id.RoomID]slidingMembership
	// joined are the rooms the user is joined to (for the long-poll).
	joined   map[id.RoomID]bool
	activity map[id.RoomID]int64
	// relevant are the rooms in a list range or subscribed, with their config.
	relevant  map[id.RoomID]roomConfig
	listRooms map[string][]id.RoomID
	results   map[id.RoomID]*SlidingRoomResult
	// timelines are the event IDs of each sent room's timeline (for receipts).
	timelines map[id.RoomID]map[id.EventID]bool

	accountData []*storage.AccountDataEntry
	adLoaded    bool
	dms         map[id.RoomID]bool
	summaries   map[id.RoomID]*rooms.Summary

	// mu guards what room writes (next's rooms and configs, timelines)
	// while several rooms are built at once.
	mu gosync.Mutex
}

// holds records what the client now holds of room r: sent, and with
// cfg unless cfg is nil.
func (b *slidingBuilder) holds(r id.RoomID, sent *haveSent, cfg *roomConfig) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if sent != nil {
		b.next.rooms[r] = *sent
	}
	if cfg != nil {
		b.next.configs[r] = *cfg
	}
}

func (b *slidingBuilder) build(ctx context.Context) (*SlidingResponse, *connState, error) {
	b.next = b.prev.clone()
	b.relevant = map[id.RoomID]roomConfig{}
	b.listRooms = map[string][]id.RoomID{}
	b.results = map[id.RoomID]*SlidingRoomResult{}
	b.timelines = map[id.RoomID]map[id.EventID]bool{}
	b.summaries = map[id.RoomID]*rooms.Summary{}
	resp := &SlidingResponse{Lists: map[string]SlidingListResult{}, Rooms: map[id.RoomID]*SlidingRoomResult{},
		Extensions: map[string]any{}}
	universe, err := b.loadRooms(ctx)
	if err != nil {
		return nil, nil, err
	}
	if err := b.lists(ctx, universe, resp); err != nil {
		return nil, nil, err
	}
	b.subscriptions()
	ids := make([]id.RoomID, 0, len(b.relevant))
	for r := range b.relevant {
		ids = append(ids, r)
	}
	slices.Sort(ids)
	// Rooms are built several at a time (as /sync's are): a first sliding
	// sync shows each room of the list's range.
	if len(ids) > 1 {
		if _, err := b.isDM(ctx, slidingMembership{}); err != nil { // reads the account data rooms share
			return nil, nil, err
		}
	}
	results := make([]*SlidingRoomResult, len(ids))
	// syncRoomsAtOnce bounds how many rooms one sync builds at the same
	// time: enough to overlap the database's round trips (PostgreSQL) and
	// use every core (SQLite), few enough that one user's first sync
	// cannot take the whole connection pool from everyone else.
	const syncRoomsAtOnce = 6
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(syncRoomsAtOnce)
	var panicked atomic.Value
	for i, r := range ids {
		g.Go(func() (err error) {
			defer func() {
				if p := recover(); p != nil {
					panicked.CompareAndSwap(nil, fmt.Sprintf("%v\n%s", p, debug.Stack()))
					err = errors.New("panic while building a room")
				}
			}()
			results[i], err = b.room(gctx, r, b.relevant[r])
			return err
		})
	}
	err = g.Wait()
	if p := panicked.Load(); p != nil {
		panic(p)
	}
	if err != nil {
		return nil, nil, err
	}
	for i, r := range ids {
		if res := results[i]; res != nil {
			resp.Rooms[r] = res
			b.results[r] = res
		}
	}
	// Rooms the client holds that changed outside every range fall behind.
	for r, st := range b.prev.rooms {
		if _, ok := b.relevant[r]; ok || st.behind || !b.hasSince {
			continue
		}
		if b.activityOf(r) > b.since[stream.Events] {
			b.next.rooms[r] = haveSent{behind: true, pos: b.since[stream.Events]}
		}
	}
	if err := b.extensions(ctx, resp); err != nil {
		return nil, nil, err
	}
	return resp, b.next, nil
}

// slidingMembership is a user's membership in a room with the facts of its
// event that sliding sync reads (Sender and IsDirect are set for non-joins).
type slidingMembership struct {
	rooms.UserMembership
	rooms.MembershipFacts
}

// loadRooms reads the user's memberships and returns the rooms lists may
// show: joined, invited, knocked and banned rooms, rooms they were kicked
// from, and rooms they left that the client has not yet seen them leave.
func (b *slidingBuilder) loadRooms(ctx context.Context) ([]id.RoomID, error) {
	ms, err := b.s.userMemberships(ctx, b.req.User)
	if err != nil {
		return nil, err
	}
	cs := b.s.slidingConns()
	var need []id.EventID
	for _, m := range ms {
		if m.Membership != "join" && m.Pos <= b.upto[stream.Events] {
			need = append(need, m.EventID)
		}
	}
	facts, err := cs.facts(ctx, b.s.rooms, need)
	if err != nil {
		return nil, err
	}
	b.memberships = map[id.RoomID]slidingMembership{}
	b.joined = map[id.RoomID]bool{}
	b.activity = map[id.RoomID]int64{}
	var universe, joined []id.RoomID
	var invites *rooms.InvitePolicy // read at the first invite
	for _, um := range ms {
		if um.Pos > b.upto[stream.Events] {
			continue // after this answer's token; the next one shows it
		}
		m := slidingMembership{UserMembership: um, MembershipFacts: facts[um.EventID]}
		switch m.Membership {
		case "join":
			b.joined[m.RoomID] = true
			joined = append(joined, m.RoomID)
		case "knock":
		case "invite":
			if invites == nil {
				if invites, err = rooms.LoadInvitePolicy(ctx, b.s.store, b.req.User); err != nil {
					return nil, err
				}
			}
			if invites.Judge(m.Sender) != rooms.InviteAllowed {
				continue // hidden, as /sync hides it
			}
		case "leave", "ban":
			// A room the user left themselves is shown only to a client
			// whose copy predates the leave (and to subscriptions).
			unseen := false
			if m.Membership == "leave" && m.Sender == b.req.User {
				st, sent := b.prev.rooms[m.RoomID]
				unseen = !sent || !b.hasSince || m.Pos <= b.bound(st)
			}
			if _, sub := b.req.Body.RoomSubscriptions[m.RoomID]; unseen && !sub {
				continue
			}
			forgotten, err := b.s.rooms.IsForgotten(ctx, b.req.User, m.RoomID)
			if err != nil {
				return nil, err
			}
			if forgotten {
				continue
			}
			b.memberships[m.RoomID] = m
			if unseen {
				continue
			}
		default:
			continue
		}
		b.memberships[m.RoomID] = m
		universe = append(universe, m.RoomID)
	}
	last, err := cs.lastEvents(ctx, b.s, b.req.User, joined, b.upto[stream.Events])
	if err != nil {
		return nil, err
	}
	for _, r := range universe {
		b.activity[r] = max(b.memberships[r].Pos, last[r])
	}
	return universe, nil
}

// facts returns the facts of membership events, from the cache or storage.
func (cs *connStore) facts(ctx context.Context, rs *rooms.Reader, ids []id.EventID) (map[id.EventID]rooms.MembershipFacts, error) {
	out := make(map[id.EventID]rooms.MembershipFacts, len(ids))
	var missing []id.EventID
	cs.mu.Lock()
	for _, e := range ids {
		if f, ok := cs.factCache[e]; ok {
			out[e] = f
		} else {
			missing = append(missing, e)
		}
	}
	cs.mu.Unlock()
	if len(missing) == 0 {
		return out, nil
	}
	got, err := rs.MembershipFacts(ctx, missing)
	if err != nil {
		return nil, err
	}
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if cs.factCache == nil || len(cs.factCache)+len(got) > slidingMaxFacts {
		cs.factCache = map[id.EventID]rooms.MembershipFacts{}
	}
	for e, f := range got {
		out[e] = f
		cs.factCache[e] = f
	}
	return out, nil
}

// lastEvents returns the position of the latest event at or before upto of
// each room. It keeps each user's answer and, the next time, asks storage
// again only about the rooms that had events since.
func (cs *connStore) lastEvents(ctx context.Context, s *Service, user id.UserID, roomIDs []id.RoomID, upto int64) (map[id.RoomID]int64, error) {
	cs.mu.Lock()
	cached := cs.activity[user]
	cs.mu.Unlock()
	out := make(map[id.RoomID]int64, len(roomIDs))
	var stale map[id.RoomID]bool
	usable := cached != nil && cached.at <= upto
	if usable && cached.at < upto {
		ids, err := s.changedRooms(ctx, cached.at, upto)
		if err != nil {
			return nil, err
		}
		stale = make(map[id.RoomID]bool, len(ids))
		for _, r := range ids {
			stale[r] = true
		}
	}
	for _, r := range roomIDs {
		if usable && !stale[r] {
			if p, ok := cached.last[r]; ok {
				out[r] = p
				continue
			}
		}
		p, err := s.rooms.LastEventPos(ctx, r, upto, nil)
		if err != nil {
			return nil, err
		}
		out[r] = p
	}
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if cur := cs.activity[user]; cur == nil || cur.at <= upto {
		if len(cs.activity) >= slidingMaxConns {
			cs.activity = map[id.UserID]*lastEventCache{}
		}
		cs.activity[user] = &lastEventCache{at: upto, last: out}
	}
	return out, nil
}

// bound is the events position a client's copy of a room is current to.
func (b *slidingBuilder) bound(st haveSent) int64 {
	if st.behind {
		return st.pos
	}
	return b.since[stream.Events]
}

func (b *slidingBuilder) activityOf(r id.RoomID) int64 {
	if a, ok := b.activity[r]; ok {
		return a
	}
	if m, ok := b.memberships[r]; ok {
		return m.Pos
	}
	return 0
}

func (b *slidingBuilder) config(c *SlidingRoomConfig) roomConfig {
	return roomConfig{timelineLimit: min(c.TimelineLimit, slidingMaxTimeline),
		required: newRequiredState(c.RequiredState, b.req.User)}
}

func (b *slidingBuilder) addRelevant(r id.RoomID, c roomConfig) {
	if old, ok := b.relevant[r]; ok {
		c = roomConfig{timelineLimit: max(old.timelineLimit, c.timelineLimit), required: old.required.merge(c.required)}
	}
	b.relevant[r] = c
}

func (b *slidingBuilder) lists(ctx context.Context, universe []id.RoomID, resp *SlidingResponse) error {
	names := make([]string, 0, len(b.req.Body.Lists))
	for name := range b.req.Body.Lists {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		l := b.req.Body.Lists[name]
		var matched []id.RoomID
		for _, r := range universe {
			ok, err := b.passes(ctx, l.Filters, r)
			if err != nil {
				return err
			}
			if ok {
				matched = append(matched, r)
			}
		}
		sort.Slice(matched, func(i, j int) bool {
			ai, aj := b.activity[matched[i]], b.activity[matched[j]]
			if ai != aj {
				return ai > aj
			}
			return matched[i] < matched[j]
		})
		resp.Lists[name] = SlidingListResult{Count: len(matched)}
		cfg := b.config(&l.SlidingRoomConfig)
		seen := map[id.RoomID]bool{}
		for _, rg := range l.Ranges {
			for i := rg[0]; i <= rg[1] && i < int64(len(matched)); i++ {
				r := matched[i]
				b.addRelevant(r, cfg)
				if !seen[r] {
					seen[r] = true
					b.listRooms[name] = append(b.listRooms[name], r)
				}
			}
		}
	}
	return nil
}

func (b *slidingBuilder) subscriptions() {
	for r, c := range b.req.Body.RoomSubscriptions {
		m, ok := b.memberships[r]
		if !ok {
			continue // not a room of the user's
		}
		if m.Membership == "leave" || m.Membership == "ban" {
			if _, seen := b.activity[r]; !seen {
				b.activity[r] = m.Pos
			}
		}
		b.addRelevant(r, b.config(c))
	}
}

// passes applies a list's filters to a room.
func (b *slidingBuilder) passes(ctx context.Context, f *SlidingFilters, r id.RoomID) (bool, error) {
	if f == nil {
		return true, nil
	}
	m := b.memberships[r]
	if f.IsInvite != nil && (m.Membership == "invite") != *f.IsInvite {
		return false, nil
	}
	if f.IsDM != nil {
		dm, err := b.isDM(ctx, m)
		if err != nil {
			return false, err
		}
		if dm != *f.IsDM {
			return false, nil
		}
	}
	if f.IsEncrypted != nil || len(f.RoomTypes) > 0 || len(f.NotRoomTypes) > 0 {
		sum, err := b.summary(ctx, r)
		if err != nil {
			return false, err
		}
		if f.IsEncrypted != nil && (sum.Encryption != "") != *f.IsEncrypted {
			return false, nil
		}
		typeIn := func(list []*string) bool {
			return slices.ContainsFunc(list, func(t *string) bool {
				if t == nil {
					return sum.RoomType == ""
				}
				return *t == sum.RoomType
			})
		}
		if len(f.NotRoomTypes) > 0 && typeIn(f.NotRoomTypes) {
			return false, nil
		}
		if len(f.RoomTypes) > 0 && !typeIn(f.RoomTypes) {
			return false, nil
		}
	}
	if len(f.Tags) > 0 || len(f.NotTags) > 0 {
		tags, err := b.tags(ctx, r)
		if err != nil {
			return false, err
		}
		if slices.ContainsFunc(f.NotTags, func(t string) bool { return tags[t] }) {
			return false, nil
		}
		if len(f.Tags) > 0 && !slices.ContainsFunc(f.Tags, func(t string) bool { return tags[t] }) {
			return false, nil
		}
	}
	return true, nil
}

func (b *slidingBuilder) summary(ctx context.Context, r id.RoomID) (*rooms.Summary, error) {
	if sum, ok := b.summaries[r]; ok {
		return sum, nil
	}
	sum, err := b.s.rooms.Summary(ctx, r)
	if err != nil {
		if _, ok := types.AsError(err); !ok {
			return nil, err
		}
		sum = &rooms.Summary{RoomID: r} // a room without local state
	}
	b.summaries[r] = sum
	return sum, nil
}

func (b *slidingBuilder) loadAccountData(ctx context.Context) error {
	if b.adLoaded {
		return nil
	}
	all, err := b.s.store.AccountDataSince(ctx, b.req.User, 0)
	if err != nil {
		return err
	}
	for _, e := range all {
		if e.StreamPos <= b.upto[stream.AccountData] {
			b.accountData = append(b.accountData, e)
		}
	}
	b.adLoaded = true
	return nil
}

// isDM: the room is in the user's m.direct, or they are invited with is_direct.
func (b *slidingBuilder) isDM(ctx context.Context, m slidingMembership) (bool, error) {
	if b.dms == nil {
		if err := b.loadAccountData(ctx); err != nil {
			return false, err
		}
		b.dms = map[id.RoomID]bool{}
		for _, e := range b.accountData {
			if e.RoomID == "" && e.Type == "m.direct" {
				gjson.ParseBytes(e.Content).ForEach(func(_, rooms gjson.Result) bool {
					for _, r := range rooms.Array() {
						b.dms[id.RoomID(r.Str)] = true
					}
					return true
				})
			}
		}
	}
	return b.dms[m.RoomID] || (m.Membership == "invite" && m.IsDirect), nil
}

func (b *slidingBuilder) tags(ctx context.Context, r id.RoomID) (map[string]bool, error) {
	if err := b.loadAccountData(ctx); err != nil {
		return nil, err
	}
	out := map[string]bool{}
	for _, e := range b.accountData {
		if e.RoomID == r && e.Type == "m.tag" {
			gjson.GetBytes(e.Content, "tags").ForEach(func(k, _ gjson.Result) bool {
				out[k.Str] = true
				return true
			})
		}
	}
	return out, nil
}

// room computes one relevant room's answer (nil: nothing new) and records
// what the client now holds.
func (b *slidingBuilder) room(ctx context.Context, r id.RoomID, cfg roomConfig) (*SlidingRoomResult, error) {
	m := b.memberships[r]
	st, sent := b.prev.rooms[r]
	prevCfg, hadCfg := b.prev.configs[r]
	initial := !b.hasSince || !sent
	var from int64
	if !initial {
		from = b.bound(st)
		switch {
		case m.Pos <= from:
		case m.Membership == "invite" || m.Membership == "knock":
			initial = true // invited again, or knocked
		case m.Membership == "join":
			// Newly joined, unless the user was joined when the client's
			// copy was made and every change since only changed their
			// profile (an invite accepted and then a rename is new).
			stayed, err := b.s.rooms.JoinedThroughout(ctx, m.EventID, from)
			if err != nil {
				return nil, err
			}
			initial = !stayed
		}
	}
	expanded := !initial && hadCfg && prevCfg.timelineLimit < cfg.timelineLimit
	if !initial && !expanded && b.activityOf(r) <= from && (!hadCfg || prevCfg.required.key() == cfg.required.key()) {
		// Nothing happened in the room since the client's copy, which is
		// now current.
		if !hadCfg {
			b.holds(r, &haveSent{}, &cfg)
		} else {
			b.holds(r, &haveSent{}, nil)
		}
		return nil, nil
	}
	b.holds(r, &haveSent{}, nil)
	dm, err := b.isDM(ctx, m)
	if err != nil {
		return nil, err
	}
	if m.Membership == "invite" || m.Membership == "knock" {
		b.holds(r, nil, &cfg)
		if !initial {
			return nil, nil
		}
		return b.invite(ctx, m, dm)
	}

	res := &SlidingRoomResult{Initial: initial, ExpandedTimeline: expanded, IsDM: dm}
	upto := b.upto[stream.Events]
	if m.Membership == "leave" || m.Membership == "ban" {
		upto = min(upto, m.Pos)
	}
	tl := &rooms.SlidingTimeline{Users: map[id.UserID]bool{}}
	if cfg.timelineLimit > 0 {
		after := from
		if initial || expanded {
			after = 0
		}
		if tl, err = b.s.rooms.SlidingTimeline(ctx, &rooms.SlidingTimelineRequest{User: b.req.User, Device: b.req.DeviceID, RoomID: r,
			After: after, Upto: upto, Limit: cfg.timelineLimit, Membership: m.Membership}); err != nil {
			return nil, err
		}
		res.Timeline = tl.Events
		if res.Timeline == nil {
			res.Timeline = []*rooms.ClientEvent{}
		}
		res.Limited = &tl.Limited
		res.PrevBatch = tl.PrevBatch
		live := 0
		if b.hasSince {
			for _, p := range tl.Positions {
				if p > b.since[stream.Events] {
					live++
				}
			}
		}
		res.NumLive = &live
		ids := map[id.EventID]bool{}
		for _, e := range tl.Events {
			ids[e.EventID] = true
		}
		b.mu.Lock()
		b.timelines[r] = ids
		b.mu.Unlock()
	}

	state, err := b.s.rooms.SlidingStateIDs(ctx, r, m.Membership, m.EventID)
	if err != nil {
		return nil, err
	}
	var changed map[rooms.StateKey]bool
	if !initial {
		if changed, err = b.s.rooms.ChangedStateKeys(ctx, r, from, upto); err != nil {
			return nil, err
		}
	}
	nameKey, avatarKey := rooms.StateKey{Type: "m.room.name"}, rooms.StateKey{Type: "m.room.avatar"}
	membersChanged := false
	for k := range changed {
		if k.Type == "m.room.member" {
			membersChanged = true
		}
	}
	lazyMember := func(k rooms.StateKey, onlyTimeline bool) bool {
		return cfg.required.lazy && k.Type == "m.room.member" && (!onlyTimeline || tl.Users[id.UserID(k.StateKey)])
	}
	pick := map[rooms.StateKey]bool{}
	if initial {
		for k := range state {
			if cfg.required.match(k) || lazyMember(k, true) {
				pick[k] = true
			}
		}
	} else {
		for k := range changed {
			if _, ok := state[k]; ok && (cfg.required.match(k) || lazyMember(k, tl.Limited)) {
				pick[k] = true
			}
		}
		for u := range tl.Users {
			if k := (rooms.StateKey{Type: "m.room.member", StateKey: u.String()}); cfg.required.lazy && state[k] != "" {
				pick[k] = true
			}
		}
		if hadCfg && prevCfg.required.key() != cfg.required.key() {
			for k := range state {
				if cfg.required.match(k) && !prevCfg.required.match(k) {
					pick[k] = true
				}
			}
		}
	}
	// The events to read: the picked state, the name and avatar, the heroes.
	want := map[id.EventID]bool{}
	for k := range pick {
		want[state[k]] = true
	}
	if eid := state[nameKey]; eid != "" {
		want[eid] = true
	}
	if eid := state[avatarKey]; eid != "" {
		want[eid] = true
	}
	var heroes []id.UserID
	needMembers := m.Membership == "join" && (initial || membersChanged)
	var joinedN, invitedN int
	if needMembers {
		if joinedN, invitedN, heroes, err = b.s.rooms.MemberCounts(ctx, r, b.req.User); err != nil {
			return nil, err
		}
		for _, h := range heroes {
			if eid := state[rooms.StateKey{Type: "m.room.member", StateKey: string(h)}]; eid != "" {
				want[eid] = true
			}
		}
	}
	idList := make([]id.EventID, 0, len(want))
	for x := range want {
		idList = append(idList, x)
	}
	evs, err := b.s.rooms.FormatStateEvents(ctx, r, b.req.User, idList)
	if err != nil {
		return nil, err
	}
	byKey := map[rooms.StateKey]*rooms.ClientEvent{}
	res.RequiredState = []*rooms.ClientEvent{}
	for _, e := range evs {
		if e.StateKey == nil {
			continue
		}
		k := rooms.StateKey{Type: e.Type, StateKey: *e.StateKey}
		byKey[k] = e
		if pick[k] {
			res.RequiredState = append(res.RequiredState, e)
		}
	}
	name := ""
	if e := byKey[nameKey]; e != nil {
		name = gjson.GetBytes(e.Content, "name").Str
	}
	if initial || changed[nameKey] {
		res.Name = name
	}
	if e := byKey[avatarKey]; e != nil && (initial || changed[avatarKey]) {
		res.Avatar = gjson.GetBytes(e.Content, "url").Str
	}
	if needMembers {
		res.JoinedCount, res.InvitedCount = &joinedN, &invitedN
		if name == "" {
			for _, h := range heroes {
				hero := SlidingHero{UserID: h}
				if e := byKey[rooms.StateKey{Type: "m.room.member", StateKey: string(h)}]; e != nil {
					hero.DisplayName = gjson.GetBytes(e.Content, "displayname").Str
					hero.AvatarURL = gjson.GetBytes(e.Content, "avatar_url").Str
				}
				res.Heroes = append(res.Heroes, hero)
			}
		}
	}
	bump := m.Pos
	if m.Membership == "join" {
		p, err := b.s.rooms.LastEventPos(ctx, r, b.upto[stream.Events], slidingBumpTypes)
		if err != nil {
			return nil, err
		}
		if p > 0 {
			bump = p
		}
	}
	bump = max(bump, 0)
	res.BumpStamp = &bump
	if m.Membership == "join" {
		counts, err := b.s.unread.counts(ctx, r, b.req.User, b.upto[stream.Events], nil)
		if err != nil {
			return nil, err
		}
		for _, c := range counts {
			res.NotificationCount += c.Notifications
			res.HighlightCount += c.Highlights
		}
	}

	// What the client now holds of the room's config (as Synapse records it).
	switch {
	case initial || expanded || !hadCfg:
		b.holds(r, nil, &cfg)
	case (tl.Limited && prevCfg.timelineLimit > cfg.timelineLimit) || prevCfg.required.key() != cfg.required.key():
		b.holds(r, nil, &cfg)
	}
	if initial || expanded || len(tl.Events) > 0 || len(res.RequiredState) > 0 || needMembers ||
		(!initial && (changed[nameKey] || changed[avatarKey])) {
		return res, nil
	}
	return nil, nil
}

// invite is an invited or knocked room: its stripped state.
func (b *slidingBuilder) invite(ctx context.Context, m slidingMembership, dm bool) (*SlidingRoomResult, error) {
	stripped, err := b.s.rooms.StrippedState(ctx, m.RoomID, m.EventID)
	if err != nil {
		return nil, err
	}
	bump := max(m.Pos, 0)
	res := &SlidingRoomResult{Initial: true, IsDM: dm, InviteState: stripped, BumpStamp: &bump,
		RequiredState: []*rooms.ClientEvent{}}
	if res.InviteState == nil {
		res.InviteState = []map[string]any{}
	}
	for _, e := range stripped {
		c, _ := e["content"].(map[string]any)
		if c == nil {
			if raw, ok := e["content"].(jsontext.Value); ok {
				switch e["type"] {
				case "m.room.name":
					res.Name = gjson.GetBytes(raw, "name").Str
				case "m.room.avatar":
					res.Avatar = gjson.GetBytes(raw, "url").Str
				}
			}
			continue
		}
		switch e["type"] {
		case "m.room.name":
			res.Name, _ = c["name"].(string)
		case "m.room.avatar":
			res.Avatar, _ = c["url"].(string)
		}
	}
	return res, nil
}

// ---- extensions ----

type toDeviceResult struct {
	NextBatch string           `json:"next_batch"`
	Events    []map[string]any `json:"events"`
}

func (r *toDeviceResult) hasData() bool { return len(r.Events) > 0 }

type e2eeResult struct {
	DeviceLists struct {
		Changed []id.UserID `json:"changed"`
		Left    []id.UserID `json:"left"`
	} `json:"device_lists"`
	OneTimeKeysCount       map[string]int `json:"device_one_time_keys_count"`
	UnusedFallbackKeyTypes []string       `json:"device_unused_fallback_key_types"`
}

func (r *e2eeResult) hasData() bool {
	return len(r.DeviceLists.Changed) > 0 || len(r.DeviceLists.Left) > 0
}

type accountDataResult struct {
	Global []any               `json:"global"`
	Rooms  map[id.RoomID][]any `json:"rooms"`
}

func (r *accountDataResult) hasData() bool { return len(r.Global) > 0 || len(r.Rooms) > 0 }

type roomsEventResult struct {
	Rooms map[id.RoomID]any `json:"rooms"`
}

func (r *roomsEventResult) hasData() bool { return len(r.Rooms) > 0 }

// extRooms are the rooms an extension covers: those of the requested
// lists' ranges and the requested rooms among the answer's rooms.
func (b *slidingBuilder) extRooms(e *SlidingRoomsExt) []id.RoomID {
	lists, roomSel := []string{"*"}, []string{"*"}
	if e.Lists != nil {
		lists = *e.Lists
	}
	if e.Rooms != nil {
		roomSel = *e.Rooms
	}
	set := map[id.RoomID]bool{}
	for _, l := range lists {
		if l == "*" {
			for _, rs := range b.listRooms {
				for _, r := range rs {
					set[r] = true
				}
			}
			continue
		}
		for _, r := range b.listRooms[l] {
			set[r] = true
		}
	}
	for _, r := range roomSel {
		if r == "*" {
			for rr := range b.relevant {
				set[rr] = true
			}
			continue
		}
		if _, ok := b.relevant[id.RoomID(r)]; ok {
			set[id.RoomID(r)] = true
		}
	}
	out := make([]id.RoomID, 0, len(set))
	for r := range set {
		out = append(out, r)
	}
	slices.Sort(out)
	return out
}

// resent: the room's data starts afresh in this answer.
func (b *slidingBuilder) resent(r id.RoomID) bool {
	res := b.results[r]
	return res != nil && (res.Initial || res.ExpandedTimeline)
}

func (b *slidingBuilder) extensions(ctx context.Context, resp *SlidingResponse) error {
	ext := b.req.Body.Extensions
	if td := ext.ToDevice; td != nil && on(td.Enabled) {
		var since int64
		if td.Since != "" {
			since, _ = types.ParsePosition(td.Since, false) // checked with the request
		}
		res := &toDeviceResult{Events: []map[string]any{}}
		if since > b.upto[stream.ToDevice] {
			res.NextBatch = td.Since
		} else {
			msgs, reached, err := b.s.eph.ToDeviceFor(ctx, b.req.User, b.req.DeviceID, since, b.upto[stream.ToDevice])
			if err != nil {
				return err
			}
			if msgs != nil {
				res.Events = msgs
			}
			res.NextBatch = strconv.FormatInt(reached, 10)
		}
		resp.Extensions["to_device"] = res
	}
	if e := ext.E2EE; e != nil && on(e.Enabled) {
		res := &e2eeResult{OneTimeKeysCount: map[string]int{}, UnusedFallbackKeyTypes: []string{}}
		res.DeviceLists.Changed, res.DeviceLists.Left = []id.UserID{}, []id.UserID{}
		if err := b.s.slidingE2EE(ctx, b.req.User, b.req.DeviceID, b.since, b.upto, !b.hasSince, res); err != nil {
			return err
		}
		resp.Extensions["e2ee"] = res
	}
	if e := ext.AccountData; e != nil && on(e.Enabled) {
		res, err := b.accountDataExt(ctx, e)
		if err != nil {
			return err
		}
		resp.Extensions["account_data"] = res
	}
	if e := ext.Receipts; e != nil && on(e.Enabled) {
		res, err := b.receiptsExt(ctx, e)
		if err != nil {
			return err
		}
		resp.Extensions["receipts"] = res
	}
	if e := ext.Typing; e != nil && on(e.Enabled) {
		res := &roomsEventResult{Rooms: map[id.RoomID]any{}}
		var fresh, live []id.RoomID
		for _, r := range b.extRooms(e) {
			if b.memberships[r].Membership != "join" {
				continue
			}
			if !b.hasSince || b.resent(r) {
				fresh = append(fresh, r)
			} else {
				live = append(live, r)
			}
		}
		for _, part := range []struct {
			rooms []id.RoomID
			since int64
		}{{fresh, 0}, {live, b.since[stream.Typing]}} {
			for r, users := range b.s.eph.TypingSince(part.rooms, part.since) {
				if users == nil {
					users = []id.UserID{}
				}
				res.Rooms[r] = map[string]any{"type": "m.typing", "content": map[string]any{"user_ids": users}}
			}
		}
		resp.Extensions["typing"] = res
	}
	return nil
}

func (b *slidingBuilder) accountDataExt(ctx context.Context, e *SlidingRoomsExt) (*accountDataResult, error) {
	if err := b.loadAccountData(ctx); err != nil {
		return nil, err
	}
	res := &accountDataResult{Global: []any{}, Rooms: map[id.RoomID][]any{}}
	adSince := b.since[stream.AccountData]
	event := func(en *storage.AccountDataEntry) any {
		return map[string]any{"type": en.Type, "content": en.Content}
	}
	for _, en := range b.accountData {
		if en.RoomID == "" && (!b.hasSince || en.StreamPos > adSince) {
			res.Global = append(res.Global, event(en))
		}
	}
	if !b.hasSince {
		// Push rules the user never changed are the server's defaults, not stored.
		stored, err := b.s.push.HasStored(ctx, b.req.User)
		if err != nil {
			return nil, err
		}
		if !stored {
			content, err := b.s.push.AccountDataContent(ctx, b.req.User)
			if err != nil {
				return nil, err
			}
			res.Global = append(res.Global, map[string]any{"type": "m.push_rules", "content": content})
		}
	}
	covered := map[id.RoomID]bool{}
	for _, r := range b.extRooms(e) {
		covered[r] = true
		lower := adSince
		st, sent := b.prev.accountData[r]
		switch {
		case !b.hasSince || !sent || b.resent(r):
			lower = -1
		case st.behind:
			lower = st.pos
		}
		for _, en := range b.accountData {
			if en.RoomID == r && en.StreamPos > lower {
				res.Rooms[r] = append(res.Rooms[r], event(en))
			}
		}
		b.next.accountData[r] = haveSent{}
	}
	if b.hasSince {
		for r, st := range b.prev.accountData {
			if covered[r] || st.behind {
				continue
			}
			for _, en := range b.accountData {
				if en.RoomID == r && en.StreamPos > adSince {
					b.next.accountData[r] = haveSent{behind: true, pos: adSince}
					break
				}
			}
		}
	}
	return res, nil
}

func (b *slidingBuilder) receiptsExt(ctx context.Context, e *SlidingRoomsExt) (*roomsEventResult, error) {
	res := &roomsEventResult{Rooms: map[id.RoomID]any{}}
	rSince, rUpto := b.since[stream.Receipts], b.upto[stream.Receipts]
	var fresh, live []id.RoomID
	behind := map[int64][]id.RoomID{}
	covered := map[id.RoomID]bool{}
	for _, r := range b.extRooms(e) {
		if b.memberships[r].Membership != "join" {
			continue
		}
		covered[r] = true
		st, sent := b.prev.receipts[r]
		switch {
		case !b.hasSince || !sent || b.resent(r):
			fresh = append(fresh, r)
		case st.behind:
			behind[st.pos] = append(behind[st.pos], r)
		default:
			live = append(live, r)
		}
		b.next.receipts[r] = haveSent{}
	}
	put := func(got map[id.RoomID]map[string]any) {
		for r, content := range got {
			if len(content) > 0 {
				res.Rooms[r] = map[string]any{"type": "m.receipt", "content": content}
			}
		}
	}
	if len(live) > 0 {
		got, err := b.s.eph.ReceiptsSince(ctx, b.req.User, live, rSince, rUpto)
		if err != nil {
			return nil, err
		}
		put(got)
	}
	for pos, rs := range behind {
		got, err := b.s.eph.ReceiptsSince(ctx, b.req.User, rs, pos, rUpto)
		if err != nil {
			return nil, err
		}
		put(got)
	}
	if len(fresh) > 0 {
		got, err := b.s.eph.ReceiptsSince(ctx, b.req.User, fresh, 0, rUpto)
		if err != nil {
			return nil, err
		}
		// A room sent afresh gets the receipts of its timeline's events and
		// the user's own, not every receipt the room ever had.
		for r, content := range got {
			tl := b.timelines[r]
			for ev, byType := range content {
				if tl[id.EventID(ev)] {
					continue
				}
				byT, _ := byType.(map[string]any)
				for t, byUser := range byT {
					users, _ := byUser.(map[string]any)
					for u := range users {
						if u != string(b.req.User) {
							delete(users, u)
						}
					}
					if len(users) == 0 {
						delete(byT, t)
					}
				}
				if len(byT) == 0 {
					delete(content, ev)
				}
			}
		}
		put(got)
	}
	if b.hasSince {
		var check []id.RoomID
		for r, st := range b.prev.receipts {
			if !covered[r] && !st.behind {
				check = append(check, r)
			}
		}
		if len(check) > 0 {
			got, err := b.s.eph.ReceiptsSince(ctx, b.req.User, check, rSince, rUpto)
			if err != nil {
				return nil, err
			}
			for r := range got {
				b.next.receipts[r] = haveSent{behind: true, pos: rSince}
			}
		}
	}
	return res, nil
}
