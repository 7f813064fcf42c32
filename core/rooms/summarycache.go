package rooms

import (
	"sync"
	"sync/atomic"

	"maunium.net/go/mautrix/id"
)

// roomGens gives each room a generation that moves at every commit to it
// (Reader.observe): a value read from the room's current state at one
// generation is still true while the room stays at it. Rooms it forgets
// (it holds at most max) come back at the current clock, past every
// generation they had.
type roomGens struct {
	mu    sync.Mutex
	clock atomic.Int64
	max   int
	gens  map[id.RoomID]int64
	order []id.RoomID
}

func newRoomGens(max int) *roomGens {
	return &roomGens{max: max, gens: map[id.RoomID]int64{}}
}

// of is the room's generation.
func (g *roomGens) of(room id.RoomID) int64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	if v, ok := g.gens[room]; ok {
		return v
	}
	v := g.clock.Load()
	g.add(room, v)
	return v
}

// moved starts a new generation of the room ("" : of every room).
func (g *roomGens) moved(room id.RoomID) {
	g.mu.Lock()
	defer g.mu.Unlock()
	v := g.clock.Add(1)
	if room == "" {
		clear(g.gens)
		g.order = g.order[:0]
		return
	}
	if _, ok := g.gens[room]; ok {
		g.gens[room] = v
		return
	}
	g.add(room, v)
}

func (g *roomGens) add(room id.RoomID, v int64) {
	if len(g.gens) >= g.max {
		drop := g.max / 4
		for _, old := range g.order[:drop] {
			delete(g.gens, old)
		}
		g.order = append(g.order[:0], g.order[drop:]...)
	}
	g.gens[room] = v
	g.order = append(g.order, room)
}

// summaryKey names a room's summary for one user (heroes leave them out).
type summaryKey struct {
	room id.RoomID
	user id.UserID
}

// cachedSummary is a summary read at a generation of its room.
type cachedSummary struct {
	gen int64
	sum map[string]any
}
