package state

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"maunium.net/go/mautrix/federation/pdu"
	"maunium.net/go/mautrix/id"
)

// Key is a state key: the (event type, state_key) pair.
type Key = pdu.StateKey

// Map is a room state: which event holds each key.
type Map map[Key]id.EventID

// Loader returns the events with the given IDs. Events it does not have may be
// absent from the result map. The returned events must not be modified while
// Resolve runs; Resolve never modifies them either. InternalMeta.Rejected
// marks events that were rejected.
type Loader func(ctx context.Context, ids []id.EventID) (map[id.EventID]*pdu.PDU, error)

var (
	// ErrUnsupportedRoomVersion is returned for room versions whose state
	// resolution algorithm is not implemented (v1) or that are unknown.
	ErrUnsupportedRoomVersion = errors.New("state: unsupported room version")
	// ErrMissingEvents is matched (errors.Is) by *MissingEventsError.
	ErrMissingEvents = errors.New("state: events missing")
	// ErrInvalidAuthGraph is returned when the auth events of the loaded events
	// form a cycle or belong to different rooms.
	ErrInvalidAuthGraph = errors.New("state: invalid auth graph")
)

// MissingEventsError lists the events the Loader did not return although
// resolution needs them: conflicted state events, events of their auth chains,
// state entries needed to authorise them, or power levels events of a
// mainline. The caller can fetch them (e.g. via /event_auth) and retry.
type MissingEventsError struct {
	IDs []id.EventID // sorted
}

func (e *MissingEventsError) Error() string {
	const show = 5
	ids := make([]string, 0, show)
	for i, evID := range e.IDs {
		if i == show {
			ids = append(ids, fmt.Sprintf("and %d more", len(e.IDs)-show))
			break
		}
		ids = append(ids, string(evID))
	}
	return fmt.Sprintf("state: %d events missing: %s", len(e.IDs), strings.Join(ids, ", "))
}

// Is makes errors.Is(err, ErrMissingEvents) true.
func (e *MissingEventsError) Is(target error) bool { return target == ErrMissingEvents }

// Resolve resolves the given state sets (the states after each prev event)
// with the state resolution algorithm of roomVersion and returns the resolved
// state as a new map.
//
// With no set it returns an empty map, with one set (or only equal sets) a
// copy of it, without loading anything. Otherwise it loads the conflicted
// events and their auth chains through load, plus the unconflicted state
// entries needed to authorise them; unconflicted events outside those auth
// chains are neither loaded nor authorised. getKey is only used to verify the
// join_authorised_via_users_server signature of restricted joins; nil rejects
// such joins.
//
// Errors: ErrUnsupportedRoomVersion, *MissingEventsError (errors.Is
// ErrMissingEvents), ErrInvalidAuthGraph, errors from load, and the context's
// error. Events failing authorisation are not errors: they are left out.
func Resolve(ctx context.Context, roomVersion id.RoomVersion, sets []Map, load Loader, getKey pdu.GetKeyFunc) (Map, error) {
	return resolve(ctx, roomVersion, sets, load, getKey, false)
}

// ResolveExact is Resolve with the auth difference computed over the full auth
// chains of every state set, as the spec defines it: it also loads every
// unconflicted state event and its auth chain (but authorises none of them).
// Resolve walks only the auth chains of the conflicted events and can put
// into the full conflicted set an event that is in the auth chain of an
// unconflicted event no conflicted auth chain reaches (see the package
// documentation); ResolveExact never does, at the cost of loading the whole
// auth chain of the room state.
func ResolveExact(ctx context.Context, roomVersion id.RoomVersion, sets []Map, load Loader, getKey pdu.GetKeyFunc) (Map, error) {
	return resolve(ctx, roomVersion, sets, load, getKey, true)
}

func resolve(ctx context.Context, roomVersion id.RoomVersion, sets []Map, load Loader, getKey pdu.GetKeyFunc, exact bool) (Map, error) {
	if !roomVersion.IsKnown() {
		return nil, fmt.Errorf("%w: %q", ErrUnsupportedRoomVersion, roomVersion)
	}
	var v21 bool
	switch roomVersion.StateResVersion() {
	case id.StateResV2:
	case id.StateResV2_1:
		v21 = true
	default:
		return nil, fmt.Errorf("%w: room version %q uses state resolution v1", ErrUnsupportedRoomVersion, roomVersion)
	}
	switch len(sets) {
	case 0:
		return Map{}, nil
	case 1:
		return cloneMap(sets[0]), nil
	}
	allEqual := true
	for _, s := range sets[1:] {
		if !maps.Equal(s, sets[0]) {
			allEqual = false
			break
		}
	}
	if allEqual {
		return cloneMap(sets[0]), nil
	}
	if load == nil {
		return nil, errors.New("state: nil Loader")
	}
	r := &resolver{
		ctx:     ctx,
		rv:      roomVersion,
		v21:     v21,
		exact:   exact,
		load:    load,
		getKey:  nilSafeGetKey(getKey),
		events:  make(map[id.EventID]*pdu.PDU),
		absent:  make(map[id.EventID]struct{}),
		plCache: make(map[id.EventID]*powerLevels),
	}
	return r.resolve(sets)
}

func cloneMap(m Map) Map {
	if m == nil {
		return Map{}
	}
	return maps.Clone(m)
}

type resolver struct {
	ctx    context.Context
	rv     id.RoomVersion
	v21    bool
	exact  bool // walk the auth chains of the unconflicted events too
	load   Loader
	getKey pdu.GetKeyFunc

	events   map[id.EventID]*pdu.PDU // everything loaded so far
	absent   map[id.EventID]struct{} // asked for, not returned
	roomID   id.RoomID               // of the conflicted events
	create   *pdu.PDU                // v12: the create event implied by the room ID
	createID id.EventID

	creators map[id.UserID]struct{} // v12: sender and additional_creators of create
	plCache  map[id.EventID]*powerLevels

	trace *trace // tests only: the intermediate results
}

// trace records the intermediate results of one resolution (for tests).
type trace struct {
	full     []id.EventID // the full conflicted set, sorted by ID
	powerSeq []id.EventID // X in reverse topological power order
	restSeq  []id.EventID // the other events in mainline order
}

// fetch loads the events of ids that were not asked for yet. Events the
// Loader does not return are remembered in r.absent.
func (r *resolver) fetch(ids []id.EventID) error {
	if err := r.ctx.Err(); err != nil {
		return err
	}
	var want []id.EventID
	seen := make(map[id.EventID]struct{}, len(ids))
	for _, evID := range ids {
		if _, ok := r.events[evID]; ok {
			continue
		}
		if _, ok := r.absent[evID]; ok {
			continue
		}
		if _, ok := seen[evID]; ok {
			continue
		}
		seen[evID] = struct{}{}
		want = append(want, evID)
	}
	if len(want) == 0 {
		return nil
	}
	slices.Sort(want)
	got, err := r.load(r.ctx, want)
	if err != nil {
		return fmt.Errorf("state: loading %d events: %w", len(want), err)
	}
	for _, evID := range want {
		// Only the requested IDs are taken, whatever else the Loader returns.
		if ev := got[evID]; ev != nil {
			r.events[evID] = ev
		} else {
			r.absent[evID] = struct{}{}
		}
	}
	return nil
}

// need loads ids and fails with *MissingEventsError if any stays missing.
func (r *resolver) need(ids ...id.EventID) error {
	if err := r.fetch(ids); err != nil {
		return err
	}
	var missing []id.EventID
	for _, evID := range ids {
		if r.events[evID] == nil {
			missing = append(missing, evID)
		}
	}
	if len(missing) > 0 {
		slices.Sort(missing)
		return &MissingEventsError{IDs: slices.Compact(missing)}
	}
	return nil
}

// conflict is the split of the state sets.
type conflict struct {
	unconflicted Map
	keys         map[Key][]id.EventID // conflicted key -> distinct events (sorted)
	events       []id.EventID         // the conflicted state set (sorted, distinct)
}

// split divides the state sets into the unconflicted state map and the
// conflicted state set: "If a given key K is present in every S_i with the
// same value V in each state map, then the pair (K, V) belongs to the
// unconflicted state map. Otherwise, V belongs to the conflicted state set."
func split(sets []Map) conflict {
	c := conflict{unconflicted: make(Map, len(sets[0])), keys: make(map[Key][]id.EventID)}
	addConflicted := func(k Key) {
		if _, done := c.keys[k]; done {
			return
		}
		var vals []id.EventID
		for _, s := range sets {
			if v, ok := s[k]; ok {
				vals = append(vals, v)
			}
		}
		slices.Sort(vals)
		c.keys[k] = slices.Compact(vals)
	}
	for k, v := range sets[0] {
		same := true
		for _, s := range sets[1:] {
			if w, ok := s[k]; !ok || w != v {
				same = false
				break
			}
		}
		if same {
			c.unconflicted[k] = v
		} else {
			addConflicted(k)
		}
	}
	for _, s := range sets[1:] {
		for k := range s {
			if _, ok := sets[0][k]; !ok {
				addConflicted(k)
			}
		}
	}
	seen := make(map[id.EventID]struct{})
	for _, vals := range c.keys {
		for _, v := range vals {
			if _, ok := seen[v]; !ok {
				seen[v] = struct{}{}
				c.events = append(c.events, v)
			}
		}
	}
	slices.Sort(c.events)
	return c
}

func (r *resolver) resolve(sets []Map) (Map, error) {
	c := split(sets)
	if len(c.events) == 0 {
		return c.unconflicted, nil
	}

	start := c.events
	if r.exact {
		start = slices.Clone(c.events)
		for _, v := range c.unconflicted {
			start = append(start, v)
		}
		slices.Sort(start)
		start = slices.Compact(start)
	}
	g, err := r.loadAuthGraph(start)
	if err != nil {
		return nil, err
	}
	if err := r.checkRoom(g, c.events); err != nil {
		return nil, err
	}
	if r.rv.RoomIDIsCreateEventID() {
		r.createID = id.EventID("$" + strings.TrimPrefix(string(r.roomID), "!"))
		if err := r.need(r.createID); err != nil {
			return nil, err
		}
		r.create = r.events[r.createID]
		r.creators = creatorsOf(r.create)
	}

	full := g.fullConflictedSet(sets, c, r.v21)

	// Step 1: X = power events of the full conflicted set and the events of
	// their auth chains that are in the full conflicted set.
	inX := g.powerClosure(full)
	var xs, rest []int32
	for i := range g.ids {
		if !full[i] || g.evs[i].StateKey == nil {
			// Only state events can be applied to a state.
			continue
		}
		if inX[i] {
			xs = append(xs, int32(i))
		} else {
			rest = append(rest, int32(i))
		}
	}
	sortedX, err := r.reverseTopologicalPowerOrder(g, xs)
	if err != nil {
		return nil, err
	}

	// Step 2: iterative auth checks from the unconflicted state map (v2) or
	// from an empty state map (v2.1).
	partial := &stateView{over: make(Map)}
	if !r.v21 {
		partial.base = c.unconflicted
		if err := r.prefetchBase(g, append(slices.Clone(xs), rest...), c.unconflicted); err != nil {
			return nil, err
		}
	}
	if err := r.iterativeAuthChecks(g, sortedX, partial); err != nil {
		return nil, err
	}

	// Step 3: the remaining events in mainline order of the partial state's
	// power levels event.
	plKey := Key{Type: "m.room.power_levels", StateKey: ""}
	plID, _ := partial.get(plKey)
	sortedRest, err := r.mainlineOrder(g, rest, plID)
	if err != nil {
		return nil, err
	}

	if r.trace != nil {
		for i, in := range full {
			if in {
				r.trace.full = append(r.trace.full, g.ids[i])
			}
		}
		for _, e := range sortedX {
			r.trace.powerSeq = append(r.trace.powerSeq, g.ids[e])
		}
		for _, e := range sortedRest {
			r.trace.restSeq = append(r.trace.restSeq, g.ids[e])
		}
	}

	// Step 4: iterative auth checks from the partial state.
	if err := r.iterativeAuthChecks(g, sortedRest, partial); err != nil {
		return nil, err
	}

	// Step 5: the unconflicted state map wins.
	out := make(Map, len(c.unconflicted)+len(partial.over))
	maps.Copy(out, partial.over)
	maps.Copy(out, c.unconflicted)
	return out, nil
}

// graph is the auth graph of the conflicted events: the conflicted events and
// their auth chains, densely indexed in event ID order.
type graph struct {
	ids   []id.EventID
	index map[id.EventID]int32
	evs   []*pdu.PDU
	auth  [][]int32 // distinct auth events, by index
	post  []int32   // post-order: every event after all its auth events
}

// loadAuthGraph loads the given events and their auth chains breadth first,
// one Loader call per level.
func (r *resolver) loadAuthGraph(start []id.EventID) (*graph, error) {
	seen := make(map[id.EventID]struct{}, len(start)*4)
	var missing []id.EventID
	frontier := slices.Clone(start)
	for _, evID := range frontier {
		seen[evID] = struct{}{}
	}
	var order []id.EventID
	for len(frontier) > 0 {
		if err := r.fetch(frontier); err != nil {
			return nil, err
		}
		var next []id.EventID
		for _, evID := range frontier {
			ev := r.events[evID]
			if ev == nil {
				missing = append(missing, evID)
				continue
			}
			order = append(order, evID)
			for _, aid := range ev.AuthEvents {
				if _, ok := seen[aid]; !ok {
					seen[aid] = struct{}{}
					next = append(next, aid)
				}
			}
		}
		frontier = next
	}
	if len(missing) > 0 {
		slices.Sort(missing)
		return nil, &MissingEventsError{IDs: missing}
	}
	slices.Sort(order)
	g := &graph{
		ids:   order,
		index: make(map[id.EventID]int32, len(order)),
		evs:   make([]*pdu.PDU, len(order)),
		auth:  make([][]int32, len(order)),
	}
	for i, evID := range order {
		g.index[evID] = int32(i)
		g.evs[i] = r.events[evID]
	}
	for i, ev := range g.evs {
		var edges []int32
		for _, aid := range ev.AuthEvents {
			j := g.index[aid]
			if !slices.Contains(edges, j) {
				edges = append(edges, j)
			}
		}
		g.auth[i] = edges
	}
	if err := g.computePostOrder(); err != nil {
		return nil, err
	}
	return g, nil
}

// computePostOrder orders the graph so that every event comes after its auth
// events (iterative DFS), failing on cycles.
func (g *graph) computePostOrder() error {
	const (
		white = iota
		grey
		black
	)
	color := make([]uint8, len(g.ids))
	g.post = make([]int32, 0, len(g.ids))
	type frame struct {
		node int32
		next int
	}
	var stack []frame
	for root := range g.ids {
		if color[root] != white {
			continue
		}
		stack = append(stack[:0], frame{node: int32(root)})
		color[root] = grey
		for len(stack) > 0 {
			top := &stack[len(stack)-1]
			if top.next < len(g.auth[top.node]) {
				child := g.auth[top.node][top.next]
				top.next++
				switch color[child] {
				case white:
					color[child] = grey
					stack = append(stack, frame{node: child})
				case grey:
					return fmt.Errorf("%w: auth events of %s form a cycle", ErrInvalidAuthGraph, g.ids[child])
				}
				continue
			}
			color[top.node] = black
			g.post = append(g.post, top.node)
			stack = stack[:len(stack)-1]
		}
	}
	return nil
}

// checkRoom makes sure every loaded event is in the same room and remembers
// it. In v12 a create event has no room_id; its room ID is its event ID.
func (r *resolver) checkRoom(g *graph, conflicted []id.EventID) error {
	roomOf := func(evID id.EventID, ev *pdu.PDU) id.RoomID {
		if ev.RoomID == "" && ev.Type == "m.room.create" && r.rv.RoomIDIsCreateEventID() {
			return id.RoomID("!" + strings.TrimPrefix(string(evID), "$"))
		}
		return ev.RoomID
	}
	first := conflicted[0]
	r.roomID = roomOf(first, r.events[first])
	for i, ev := range g.evs {
		if room := roomOf(g.ids[i], ev); room != r.roomID {
			return fmt.Errorf("%w: event %s is in room %q, %s in %q", ErrInvalidAuthGraph, g.ids[i], room, first, r.roomID)
		}
	}
	return nil
}

// fullConflictedSet marks the full conflicted set: the conflicted state set,
// the auth difference and, in v2.1, the conflicted state subgraph.
func (g *graph) fullConflictedSet(sets []Map, c conflict, v21 bool) []bool {
	n := len(g.ids)
	words := (len(sets) + 63) / 64
	reach := make([]uint64, n*words) // which state sets' full auth chains hold each event
	all := make([]uint64, words)
	for i := range sets {
		all[i/64] |= 1 << (i % 64)
	}
	full := make([]bool, n)
	isConflicted := make([]bool, n)
	for i, s := range sets {
		for k := range c.keys {
			if v, ok := s[k]; ok {
				j := g.index[v]
				reach[int(j)*words+i/64] |= 1 << (i % 64)
				isConflicted[j] = true
			}
		}
	}
	for j, ev := range g.evs {
		// Unconflicted events are in every state set, so in every full auth
		// chain, and so is their own auth chain.
		if ev.StateKey != nil && c.unconflicted[Key{Type: ev.Type, StateKey: *ev.StateKey}] == g.ids[j] {
			copy(reach[j*words:(j+1)*words], all)
		}
	}
	// Propagate from events to their auth events: reverse post-order visits
	// every event before its auth events.
	for p := len(g.post) - 1; p >= 0; p-- {
		e := int(g.post[p])
		src := reach[e*words : (e+1)*words]
		for _, a := range g.auth[e] {
			dst := reach[int(a)*words : (int(a)+1)*words]
			for w := range dst {
				dst[w] |= src[w]
			}
		}
	}
	for j := range n {
		if isConflicted[j] || !slices.Equal(reach[j*words:(j+1)*words], all) {
			full[j] = true
		}
	}
	if v21 {
		// Conflicted state subgraph: the events that are both in the auth
		// chain of a conflicted event (up) and have a conflicted event in their
		// own auth chain (down) lie on a path between two conflicted events.
		// Post-order visits auth events first, its reverse events first.
		up := make([]bool, n)
		for p := len(g.post) - 1; p >= 0; p-- {
			e := g.post[p]
			if isConflicted[e] || up[e] {
				for _, a := range g.auth[e] {
					up[a] = true
				}
			}
		}
		down := make([]bool, n)
		for _, e := range g.post {
			for _, a := range g.auth[e] {
				if isConflicted[a] || down[a] {
					down[e] = true
					break
				}
			}
			if down[e] && up[e] {
				full[e] = true
			}
		}
	}
	return full
}

// powerClosure returns X of step 1: the power events of the full conflicted
// set, plus every event of the full conflicted set in their auth chains.
func (g *graph) powerClosure(full []bool) []bool {
	inX := make([]bool, len(g.ids))
	visited := make([]bool, len(g.ids))
	var stack []int32
	for i, ev := range g.evs {
		if full[i] && isPowerEvent(ev) {
			inX[i] = true
			visited[i] = true
			stack = append(stack, int32(i))
		}
	}
	for len(stack) > 0 {
		e := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		for _, a := range g.auth[e] {
			if !visited[a] {
				visited[a] = true
				if full[a] {
					inX[a] = true
				}
				stack = append(stack, a)
			}
		}
	}
	return inX
}

// isPowerEvent: "a state event with type m.room.power_levels or
// m.room.join_rules, or a state event with type m.room.member where the
// membership is leave or ban and the sender does not match the state_key".
func isPowerEvent(ev *pdu.PDU) bool {
	if ev.StateKey == nil {
		return false
	}
	switch ev.Type {
	case "m.room.power_levels", "m.room.join_rules":
		return true
	case "m.room.member":
		m := membershipOf(ev)
		return (m == "leave" || m == "ban") && ev.Sender.String() != *ev.StateKey
	}
	return false
}

// prefetchBase loads, in one Loader call, the unconflicted state entries that
// authorising the given events may read (v2 only, where the iterative auth
// checks start from the unconflicted state map), plus the power levels event.
func (r *resolver) prefetchBase(g *graph, events []int32, unconflicted Map) error {
	want := map[id.EventID]struct{}{}
	add := func(k Key) {
		if v, ok := unconflicted[k]; ok {
			want[v] = struct{}{}
		}
	}
	add(Key{Type: "m.room.power_levels", StateKey: ""})
	for _, e := range events {
		ev := g.evs[e]
		for _, k := range ev.AuthEventSelection(r.rv) {
			add(k)
		}
		if via := joinAuthorisedVia(ev); via != "" {
			add(Key{Type: "m.room.member", StateKey: via})
		}
	}
	ids := make([]id.EventID, 0, len(want))
	for v := range want {
		ids = append(ids, v)
	}
	slices.Sort(ids)
	return r.need(ids...)
}

// stateView is a state being built: over on top of a read-only base.
type stateView struct {
	base Map
	over Map
}

func (s *stateView) get(k Key) (id.EventID, bool) {
	if v, ok := s.over[k]; ok {
		return v, true
	}
	v, ok := s.base[k]
	return v, ok
}

func (s *stateView) set(k Key, v id.EventID) { s.over[k] = v }
