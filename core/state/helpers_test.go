package state

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

	"maunium.net/go/mautrix/federation/pdu"
	"maunium.net/go/mautrix/id"
)

// Test events are real PDUs: content-hashed, signed with a fixed ed25519 key
// for testServer, with IDs computed by GetEventID.

const (
	testServer = "example.org"
	testKeyID  = id.KeyID("ed25519:test")
)

var testPriv = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, ed25519.SeedSize))

func testGetKey(serverName string, _ id.KeyID, _ time.Time) (id.SigningKey, time.Time, error) {
	pub := testPriv.Public().(ed25519.PublicKey)
	return id.SigningKey(base64.RawStdEncoding.EncodeToString(pub)), time.Now().Add(time.Hour), nil
}

func user(name string) id.UserID { return id.UserID("@" + name + ":" + testServer) }

func sk(s string) *string { return &s }

var (
	keyPL     = Key{Type: "m.room.power_levels", StateKey: ""}
	keyJR     = Key{Type: "m.room.join_rules", StateKey: ""}
	keyTopic  = Key{Type: "m.room.topic", StateKey: ""}
	keyCreate = Key{Type: "m.room.create", StateKey: ""}
)

func memberKey(u id.UserID) Key { return Key{Type: "m.room.member", StateKey: u.String()} }

// room builds an event DAG for one room and remembers the state after every
// event.
type room struct {
	t        testing.TB
	rv       id.RoomVersion
	roomID   id.RoomID
	createID id.EventID
	events   map[id.EventID]*pdu.PDU
	after    map[id.EventID]Map
	depth    map[id.EventID]int64
	clock    int64
}

// newRoom creates a room of version rv: its create event (sender creator,
// extra create content merged in) and the creator's join.
func newRoom(t testing.TB, rv id.RoomVersion, creator id.UserID, extraCreate map[string]any) (*room, id.EventID) {
	t.Helper()
	rm := &room{
		t: t, rv: rv,
		events: map[id.EventID]*pdu.PDU{},
		after:  map[id.EventID]Map{},
		depth:  map[id.EventID]int64{},
		clock:  1_700_000_000_000,
	}
	content := map[string]any{"room_version": string(rv)}
	if rv.CreatorInContent() {
		content["creator"] = creator.String()
	}
	maps.Copy(content, extraCreate)
	if !rv.RoomIDIsCreateEventID() {
		rm.roomID = id.RoomID("!room:" + testServer)
	}
	create := rm.build(creator, "m.room.create", sk(""), content, nil, nil, 0)
	rm.createID = create.InternalMeta.EventID
	if rv.RoomIDIsCreateEventID() {
		rm.roomID = id.RoomID("!" + string(rm.createID[1:]))
	}
	rm.add(create, Map{})
	join := rm.send(rm.createID, creator, "m.room.member", sk(creator.String()), map[string]any{"membership": "join"})
	return rm, join
}

type sendOpt struct {
	ts           int64 // origin_server_ts; 0 picks the next tick
	expectReject bool  // the event must fail auth against its state
	prev         []id.EventID
	state        Map // explicit state before the event (for merges)
}

// send builds an event on top of prev (its only prev event) and returns its ID.
func (rm *room) send(prev id.EventID, sender id.UserID, typ string, stateKey *string, content any, opts ...sendOpt) id.EventID {
	rm.t.Helper()
	var o sendOpt
	if len(opts) > 0 {
		o = opts[0]
	}
	prevs := o.prev
	if prevs == nil {
		prevs = []id.EventID{prev}
	}
	before := o.state
	if before == nil {
		before = rm.after[prevs[0]]
	}
	if before == nil {
		rm.t.Fatalf("unknown prev event %s", prevs[0])
	}
	probe := &pdu.PDU{Type: typ, StateKey: stateKey, Sender: sender, Content: mustJSON(rm.t, content)}
	var auth []id.EventID
	for _, k := range probe.AuthEventSelection(rm.rv) {
		if v, ok := before[k]; ok {
			auth = append(auth, v)
		}
	}
	if via, _ := content.(map[string]any)["join_authorised_via_users_server"].(string); via != "" {
		if v, ok := before[memberKey(id.UserID(via))]; ok {
			auth = append(auth, v)
		}
	}
	var depth int64
	for _, p := range prevs {
		depth = max(depth, rm.depth[p]+1)
	}
	ev := rm.build(sender, typ, stateKey, content, prevs, auth, o.ts)
	rm.depth[ev.InternalMeta.EventID] = depth
	allowed := rm.allowed(ev, before)
	if allowed == o.expectReject {
		rm.t.Fatalf("%s %s by %s: allowed=%v, want %v", typ, ptrStr(stateKey), sender, allowed, !o.expectReject)
	}
	if !allowed {
		ev.InternalMeta.Rejected = true
	}
	rm.add(ev, before)
	return ev.InternalMeta.EventID
}

func ptrStr(s *string) string {
	if s == nil {
		return "<nil>"
	}
	return *s
}

func mustJSON(t testing.TB, v any) json.RawMessage {
	t.Helper()
	raw, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func (rm *room) build(sender id.UserID, typ string, stateKey *string, content any, prev, auth []id.EventID, ts int64) *pdu.PDU {
	rm.t.Helper()
	if ts == 0 {
		rm.clock += 1000
		ts = rm.clock
	}
	if prev == nil {
		prev = []id.EventID{}
	}
	if auth == nil {
		auth = []id.EventID{}
	}
	ev := &pdu.PDU{
		AuthEvents: auth, Content: mustJSON(rm.t, content), OriginServerTS: ts, PrevEvents: prev,
		RoomID: rm.roomID, Sender: sender, StateKey: stateKey, Type: typ,
	}
	if typ == "m.room.create" && rm.rv.RoomIDIsCreateEventID() {
		ev.RoomID = ""
	}
	if err := ev.Sign(rm.rv, testServer, testKeyID, testPriv); err != nil {
		rm.t.Fatal(err)
	}
	evID, err := ev.GetEventID(rm.rv)
	if err != nil {
		rm.t.Fatal(err)
	}
	ev.InternalMeta.EventID = evID
	return ev
}

func (rm *room) add(ev *pdu.PDU, before Map) {
	evID := ev.InternalMeta.EventID
	rm.events[evID] = ev
	after := maps.Clone(before)
	if ev.StateKey != nil && !ev.InternalMeta.Rejected {
		after[Key{Type: ev.Type, StateKey: *ev.StateKey}] = evID
	}
	rm.after[evID] = after
}

// allowed authorises ev against the state before it with the package's own
// authorisation (the same code the iterative auth checks use).
func (rm *room) allowed(ev *pdu.PDU, before Map) bool {
	rm.t.Helper()
	r := rm.newResolver(context.Background(), rm.loader(nil))
	if err := r.need(ev.AuthEvents...); err != nil {
		rm.t.Fatal(err)
	}
	r.events[ev.InternalMeta.EventID] = ev
	ok, err := r.authorize(ev, &stateView{base: before, over: Map{}})
	if err != nil {
		rm.t.Fatal(err)
	}
	return ok
}

func (rm *room) newResolver(ctx context.Context, load Loader) *resolver {
	r := &resolver{
		ctx: ctx, rv: rm.rv, v21: rm.rv.StateResVersion() == id.StateResV2_1, load: load, getKey: testGetKey,
		events: map[id.EventID]*pdu.PDU{}, absent: map[id.EventID]struct{}{}, plCache: map[id.EventID]*powerLevels{},
		roomID: rm.roomID,
	}
	if rm.rv.RoomIDIsCreateEventID() && rm.createID != "" {
		r.createID = rm.createID
		r.create = rm.events[rm.createID]
		r.creators = creatorsOf(r.create)
	}
	return r
}

// loadStats records what a loader was asked for.
type loadStats struct {
	mu    sync.Mutex
	calls int
	asked map[id.EventID]int
}

func (s *loadStats) wasAsked(evID id.EventID) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.asked[evID] > 0
}

// loader serves the room's events (including rejected ones, flagged).
func (rm *room) loader(stats *loadStats) Loader {
	events := maps.Clone(rm.events)
	return func(_ context.Context, ids []id.EventID) (map[id.EventID]*pdu.PDU, error) {
		if stats != nil {
			stats.mu.Lock()
			stats.calls++
			if stats.asked == nil {
				stats.asked = map[id.EventID]int{}
			}
			for _, evID := range ids {
				stats.asked[evID]++
			}
			stats.mu.Unlock()
		}
		out := make(map[id.EventID]*pdu.PDU, len(ids))
		for _, evID := range ids {
			if ev, ok := events[evID]; ok {
				out[evID] = ev
			}
		}
		return out, nil
	}
}

// resolve resolves the states after the given events.
func (rm *room) resolve(at ...id.EventID) Map {
	rm.t.Helper()
	sets := make([]Map, len(at))
	for i, evID := range at {
		sets[i] = rm.after[evID]
	}
	return rm.resolveSets(sets...)
}

func (rm *room) resolveSets(sets ...Map) Map {
	rm.t.Helper()
	got, err := Resolve(context.Background(), rm.rv, sets, rm.loader(nil), testGetKey)
	if err != nil {
		rm.t.Fatalf("Resolve: %v", err)
	}
	// Whatever the order of the sets, the result is the same.
	rev := slices.Clone(sets)
	slices.Reverse(rev)
	again, err := Resolve(context.Background(), rm.rv, rev, rm.loader(nil), testGetKey)
	if err != nil {
		rm.t.Fatalf("Resolve (reversed): %v", err)
	}
	if !maps.Equal(got, again) {
		rm.t.Fatalf("result depends on the order of the state sets:\n%v\n%v", got, again)
	}
	return got
}

// Shorthands for common events.

func (rm *room) member(prev id.EventID, sender, target id.UserID, membership string, opts ...sendOpt) id.EventID {
	rm.t.Helper()
	return rm.send(prev, sender, "m.room.member", sk(target.String()), map[string]any{"membership": membership}, opts...)
}

func (rm *room) join(prev id.EventID, u id.UserID, opts ...sendOpt) id.EventID {
	rm.t.Helper()
	return rm.member(prev, u, u, "join", opts...)
}

// powerLevels sends m.room.power_levels with the given users and extra fields.
func (rm *room) powerLevels(prev id.EventID, sender id.UserID, users map[id.UserID]int, extra map[string]any, opts ...sendOpt) id.EventID {
	rm.t.Helper()
	content := map[string]any{"users": users}
	maps.Copy(content, extra)
	return rm.send(prev, sender, "m.room.power_levels", sk(""), content, opts...)
}

func (rm *room) joinRule(prev id.EventID, sender id.UserID, rule string, opts ...sendOpt) id.EventID {
	rm.t.Helper()
	return rm.send(prev, sender, "m.room.join_rules", sk(""), map[string]any{"join_rule": rule}, opts...)
}

func (rm *room) topic(prev id.EventID, sender id.UserID, topic string, opts ...sendOpt) id.EventID {
	rm.t.Helper()
	return rm.send(prev, sender, "m.room.topic", sk(""), map[string]any{"topic": topic}, opts...)
}

// expect compares the resolved state with the expected entries.
func expectEntries(t testing.TB, got Map, want map[Key]id.EventID) {
	t.Helper()
	for k, v := range want {
		if v == "" {
			if g, ok := got[k]; ok {
				t.Errorf("%v: got %s, want absent", k, g)
			}
			continue
		}
		if got[k] != v {
			t.Errorf("%v: got %q, want %q", k, got[k], v)
		}
	}
}

// traced resolves the states after the given events and returns the
// intermediate orders too.
func (rm *room) traced(sets ...Map) (Map, *trace) {
	rm.t.Helper()
	r := rm.newResolver(context.Background(), rm.loader(nil))
	r.trace = &trace{}
	got, err := r.resolve(sets)
	if err != nil {
		rm.t.Fatalf("resolve: %v", err)
	}
	return got, r.trace
}

func (rm *room) states(at ...id.EventID) []Map {
	sets := make([]Map, len(at))
	for i, evID := range at {
		sets[i] = rm.after[evID]
	}
	return sets
}
