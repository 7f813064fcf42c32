package state

import (
	"cmp"
	"container/heap"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/tidwall/gjson"
	"maunium.net/go/mautrix/federation/pdu"
	"maunium.net/go/mautrix/id"
)

// infinitePower is the power level of v12 room creators.
const infinitePower = math.MaxInt64

// reverseTopologicalPowerOrder sorts xs by the reverse topological power
// ordering: Kahn's algorithm over the auth_events edges between events of xs,
// taking at each step the smallest candidate by (greater sender power level,
// smaller origin_server_ts, smaller event ID).
func (r *resolver) reverseTopologicalPowerOrder(g *graph, xs []int32) ([]int32, error) {
	inSet := make(map[int32]struct{}, len(xs))
	for _, e := range xs {
		inSet[e] = struct{}{}
	}
	pending := make(map[int32]int, len(xs))     // auth events in xs not yet output
	parents := make(map[int32][]int32, len(xs)) // auth event -> events of xs citing it
	power := make(map[int32]int64, len(xs))
	for _, e := range xs {
		for _, a := range g.auth[e] {
			if _, ok := inSet[a]; ok {
				pending[e]++
				parents[a] = append(parents[a], e)
			}
		}
		power[e] = r.senderPower(g.evs[e])
	}
	h := &eventHeap{less: func(a, b int32) bool {
		if power[a] != power[b] {
			return power[a] > power[b]
		}
		if ta, tb := g.evs[a].OriginServerTS, g.evs[b].OriginServerTS; ta != tb {
			return ta < tb
		}
		return g.ids[a] < g.ids[b]
	}}
	for _, e := range xs {
		if pending[e] == 0 {
			h.items = append(h.items, e)
		}
	}
	heap.Init(h)
	out := make([]int32, 0, len(xs))
	for h.Len() > 0 {
		e := heap.Pop(h).(int32)
		out = append(out, e)
		for _, p := range parents[e] {
			pending[p]--
			if pending[p] == 0 {
				heap.Push(h, p)
			}
		}
	}
	if len(out) != len(xs) {
		// Cannot happen after computePostOrder; kept as a guard.
		return nil, fmt.Errorf("%w: cycle among power events", ErrInvalidAuthGraph)
	}
	return out, nil
}

type eventHeap struct {
	items []int32
	less  func(a, b int32) bool
}

func (h *eventHeap) Len() int           { return len(h.items) }
func (h *eventHeap) Less(i, j int) bool { return h.less(h.items[i], h.items[j]) }
func (h *eventHeap) Swap(i, j int)      { h.items[i], h.items[j] = h.items[j], h.items[i] }
func (h *eventHeap) Push(x any)         { h.items = append(h.items, x.(int32)) }
func (h *eventHeap) Pop() any {
	last := h.items[len(h.items)-1]
	h.items = h.items[:len(h.items)-1]
	return last
}

// senderPower is the power level of ev's sender "when looking at [its]
// auth_events" (see the package documentation).
func (r *resolver) senderPower(ev *pdu.PDU) int64 {
	var plID id.EventID
	var pl, create *pdu.PDU
	for _, aid := range ev.AuthEvents {
		aev := r.events[aid]
		if aev == nil || aev.StateKey == nil || *aev.StateKey != "" {
			continue
		}
		switch {
		case aev.Type == "m.room.power_levels" && pl == nil:
			pl, plID = aev, aid
		case aev.Type == "m.room.create" && create == nil:
			create = aev
		}
	}
	return r.levelOf(ev.Sender, plID, pl, create)
}

// creatorOf is the creator of a room up to v11: content.creator up to v10,
// the sender from v11.
func creatorOf(rv id.RoomVersion, create *pdu.PDU) id.UserID {
	if rv.CreatorInContent() {
		return id.UserID(gjson.GetBytes(create.Content, "creator").Str)
	}
	return create.Sender
}

// creatorsOf returns the v12 room creators: the sender of the create event and
// its content.additional_creators.
func creatorsOf(create *pdu.PDU) map[id.UserID]struct{} {
	out := map[id.UserID]struct{}{create.Sender: {}}
	for _, u := range gjson.GetBytes(create.Content, "additional_creators").Array() {
		if u.Type == gjson.String {
			out[id.UserID(u.Str)] = struct{}{}
		}
	}
	return out
}

// powerLevels is the part of an m.room.power_levels event state resolution
// reads.
type powerLevels struct {
	users        map[id.UserID]int64
	usersDefault int64
	invite       int64
}

func (p *powerLevels) userLevel(u id.UserID) int64 {
	if l, ok := p.users[u]; ok {
		return l
	}
	return p.usersDefault
}

// parsePowerLevels reads (and caches) users, users_default and invite. Values
// that are not integers are skipped (defaults apply); up to v9 they may also
// be strings and floats, which are truncated (rooms/fragments/v1-*-power-levels).
func (r *resolver) parsePowerLevels(evID id.EventID, ev *pdu.PDU) *powerLevels {
	if p, ok := r.plCache[evID]; ok {
		return p
	}
	p := &powerLevels{users: map[id.UserID]int64{}}
	strict := r.rv.ValidatePowerLevelInts()
	content := gjson.ParseBytes(ev.Content)
	if v, ok := plInt(content.Get("users_default"), strict); ok {
		p.usersDefault = v
	}
	if v, ok := plInt(content.Get("invite"), strict); ok {
		p.invite = v
	}
	content.Get("users").ForEach(func(k, v gjson.Result) bool {
		if l, ok := plInt(v, strict); ok {
			p.users[id.UserID(k.Str)] = l
		}
		return true
	})
	r.plCache[evID] = p
	return p
}

func plInt(v gjson.Result, strict bool) (int64, bool) {
	switch v.Type {
	case gjson.Number:
		f := v.Float()
		if math.IsNaN(f) || math.IsInf(f, 0) || f >= math.MaxInt64 || f <= math.MinInt64 {
			return 0, false
		}
		if strict {
			return v.Int(), true
		}
		return int64(f), true
	case gjson.String:
		if strict {
			return 0, false
		}
		n, err := strconv.ParseInt(strings.TrimSpace(v.Str), 10, 64)
		return n, err == nil
	}
	return 0, false
}

// mainlineOrder sorts rest by the mainline ordering based on the power levels
// event plID (possibly empty): greater mainline position first, then smaller
// origin_server_ts, then smaller event ID.
func (r *resolver) mainlineOrder(g *graph, rest []int32, plID id.EventID) ([]int32, error) {
	if len(rest) == 0 {
		return nil, nil
	}
	// The mainline of P_0: P_{i+1} is the power levels event in the
	// auth_events of P_i.
	mainline := map[id.EventID]int{}
	for i, p := 0, plID; p != ""; i++ {
		if _, loop := mainline[p]; loop {
			return nil, fmt.Errorf("%w: power levels events %s form a cycle", ErrInvalidAuthGraph, p)
		}
		if err := r.need(p); err != nil {
			return nil, err
		}
		mainline[p] = i
		next, err := r.powerLevelsAuthEvent(r.events[p])
		if err != nil {
			return nil, err
		}
		p = next
	}
	// Mainline position of e: the smallest j ≥ 1 for which e_j is on the
	// mainline gives P_i, i; none gives ∞. Memoised per power levels event
	// (e_1, e_2, … of different events share their tails).
	memo := map[id.EventID]int{}
	positionFrom := func(p id.EventID) (int, error) {
		var chain []id.EventID
		inChain := map[id.EventID]struct{}{}
		pos := math.MaxInt
		for p != "" {
			if i, ok := mainline[p]; ok {
				pos = i
				break
			}
			if m, ok := memo[p]; ok {
				pos = m
				break
			}
			if _, loop := inChain[p]; loop {
				return 0, fmt.Errorf("%w: power levels events %s form a cycle", ErrInvalidAuthGraph, p)
			}
			inChain[p] = struct{}{}
			chain = append(chain, p)
			if err := r.need(p); err != nil {
				return 0, err
			}
			next, err := r.powerLevelsAuthEvent(r.events[p])
			if err != nil {
				return 0, err
			}
			p = next
		}
		for _, c := range chain {
			memo[c] = pos
		}
		return pos, nil
	}
	pos := make(map[int32]int, len(rest))
	for _, e := range rest {
		first, err := r.powerLevelsAuthEvent(g.evs[e])
		if err != nil {
			return nil, err
		}
		if pos[e], err = positionFrom(first); err != nil {
			return nil, err
		}
	}
	out := slices.Clone(rest)
	slices.SortFunc(out, func(a, b int32) int {
		if c := cmp.Compare(pos[b], pos[a]); c != 0 { // greater position first
			return c
		}
		if c := cmp.Compare(g.evs[a].OriginServerTS, g.evs[b].OriginServerTS); c != 0 {
			return c
		}
		return strings.Compare(string(g.ids[a]), string(g.ids[b]))
	})
	return out, nil
}

// powerLevelsAuthEvent returns the m.room.power_levels event among ev's
// auth_events (the first one), or "" if there is none.
func (r *resolver) powerLevelsAuthEvent(ev *pdu.PDU) (id.EventID, error) {
	if err := r.fetch(ev.AuthEvents); err != nil {
		return "", err
	}
	for _, aid := range ev.AuthEvents {
		aev := r.events[aid]
		if aev == nil {
			return "", &MissingEventsError{IDs: []id.EventID{aid}}
		}
		if aev.Type == "m.room.power_levels" && aev.StateKey != nil && *aev.StateKey == "" {
			return aid, nil
		}
	}
	return "", nil
}
