package state

import (
	"context"
	"maps"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"

	"maunium.net/go/mautrix/federation/pdu"
	"maunium.net/go/mautrix/id"
)

// fuzzPool is a room with several concurrent branches of conflicting state
// events (power levels, kicks, bans, joins, join rules, topics).
type fuzzPool struct {
	rm     *room
	states []id.EventID // events whose "state after" can be a state set
	pool   []id.EventID // state events that can be mixed into state sets
}

var (
	fuzzPoolsOnce sync.Once
	fuzzPools     [2]*fuzzPool
)

func buildFuzzPool(t testing.TB, rv id.RoomVersion) *fuzzPool {
	frank := user("frank")
	users := map[id.UserID]int{alice: 100, bob: 50, carol: 50}
	if rv.PrivilegedRoomCreators() {
		delete(users, alice)
	}
	rm, head := baseRoom(t, rv, users, nil, bob, carol, dave)
	head = rm.topic(head, alice, "t0")
	fork := head
	p := &fuzzPool{rm: rm}
	branch := func(steps ...func(prev id.EventID) id.EventID) {
		prev := fork
		for _, step := range steps {
			prev = step(prev)
			p.states = append(p.states, prev)
		}
	}
	withUsers := func(change map[id.UserID]int) map[id.UserID]int {
		out := maps.Clone(users)
		maps.Copy(out, change)
		return out
	}
	branch(
		func(prev id.EventID) id.EventID {
			return rm.powerLevels(prev, alice, withUsers(map[id.UserID]int{bob: 0}), nil)
		},
		func(prev id.EventID) id.EventID { return rm.topic(prev, alice, "alice") },
		func(prev id.EventID) id.EventID { return rm.member(prev, alice, dave, "leave") },
	)
	branch(
		func(prev id.EventID) id.EventID { return rm.topic(prev, bob, "bob") },
		func(prev id.EventID) id.EventID { return rm.member(prev, bob, eve, "ban") },
		func(prev id.EventID) id.EventID {
			return rm.send(prev, carol, "m.room.name", sk(""), map[string]any{"name": "carol's"})
		},
	)
	branch(
		func(prev id.EventID) id.EventID { return rm.join(prev, eve) },
		func(prev id.EventID) id.EventID { return rm.joinRule(prev, carol, "invite") },
		func(prev id.EventID) id.EventID {
			return rm.powerLevels(prev, carol, withUsers(map[id.UserID]int{dave: 50}), nil)
		},
		func(prev id.EventID) id.EventID { return rm.topic(prev, dave, "dave") },
	)
	branch(
		func(prev id.EventID) id.EventID {
			return rm.powerLevels(prev, alice, users, map[string]any{"events": map[string]int{"m.room.topic": 100}})
		},
		func(prev id.EventID) id.EventID { return rm.member(prev, bob, frank, "invite") },
		func(prev id.EventID) id.EventID { return rm.join(prev, frank) },
		func(prev id.EventID) id.EventID { return rm.member(prev, dave, dave, "leave") },
		func(prev id.EventID) id.EventID { return rm.topic(prev, alice, "alice again") },
	)
	for evID, ev := range rm.events {
		if ev.StateKey != nil && !ev.InternalMeta.Rejected {
			p.pool = append(p.pool, evID)
		}
	}
	slices.Sort(p.pool)
	return p
}

// FuzzResolveDeterminism resolves state sets built from the pool (states after
// branch events, with pool events mixed in to make them inconsistent) and
// checks that the result depends neither on the order of the sets nor on how
// the Loader answers.
func FuzzResolveDeterminism(f *testing.F) {
	fuzzPoolsOnce.Do(func() {
		fuzzPools[0] = buildFuzzPool(f, id.RoomV10)
		fuzzPools[1] = buildFuzzPool(f, id.RoomV12)
	})
	for _, seed := range [][]byte{
		{0, 0, 2, 0, 5, 0, 1, 2, 3},
		{1, 0, 2, 0, 5, 0, 1, 2, 3},
		{0, 1, 3, 6, 11, 0, 1, 2, 3, 4, 5},
		{1, 1, 3, 6, 11, 0, 1, 2, 3, 4, 5},
		{0, 2, 2, 8, 14, 2, 7, 40, 9, 1},
		{1, 2, 14, 3, 8, 2, 17, 1, 33, 0, 9, 9},
		{2, 3, 0, 4, 8, 13, 1, 1, 5, 2, 9, 3, 12, 4, 2, 200},
		{3, 3, 1, 5, 9, 12, 3, 4, 1, 7, 2, 8, 0, 99, 50, 2},
		{4, 0, 13, 13, 0, 0, 0},
		{5, 1, 2, 7, 9, 255, 3, 4, 0, 1, 60, 2},
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		next := func() int {
			if len(data) == 0 {
				return 0
			}
			b := data[0]
			data = data[1:]
			return int(b)
		}
		mode := next()
		p := fuzzPools[mode%2]
		exact := mode&2 != 0
		rm := p.rm
		n := 2 + next()%4
		sets := make([]Map, n)
		for i := range sets {
			sets[i] = maps.Clone(rm.after[p.states[next()%len(p.states)]])
		}
		// Mix pool events into the sets: "stale" or inconsistent states.
		for range next() % 6 {
			ev := rm.events[p.pool[next()%len(p.pool)]]
			sets[next()%n][Key{Type: ev.Type, StateKey: *ev.StateKey}] = ev.InternalMeta.EventID
		}
		seed := uint64(next())<<8 | uint64(next())

		resolve := Resolve
		if exact {
			resolve = ResolveExact
		}
		ctx := context.Background()
		want, err := resolve(ctx, rm.rv, sets, rm.loader(nil), testGetKey)
		if err != nil {
			t.Fatalf("Resolve: %v", err)
		}
		for k, v := range want {
			ev := rm.events[v]
			if ev == nil || ev.StateKey == nil || (Key{Type: ev.Type, StateKey: *ev.StateKey}) != k {
				t.Fatalf("result maps %v to %s, which is not an event for that key", k, v)
			}
		}

		rng := rand.New(rand.NewPCG(seed, uint64(len(sets))))
		perm := slices.Clone(sets)
		rng.Shuffle(len(perm), func(i, j int) { perm[i], perm[j] = perm[j], perm[i] })
		got, err := resolve(ctx, rm.rv, perm, shuffledLoader(rm.events, p.pool, rng), testGetKey)
		if err != nil {
			t.Fatalf("Resolve (permuted): %v", err)
		}
		if !maps.Equal(got, want) {
			for k := range want {
				if got[k] != want[k] {
					t.Errorf("%v: %s vs %s", k, got[k], want[k])
				}
			}
			t.Fatalf("result depends on the order of the state sets or of load results")
		}
	})
}

// shuffledLoader answers in a shuffled insertion order, in a fresh map every
// time, and adds events that were not asked for.
func shuffledLoader(events map[id.EventID]*pdu.PDU, pool []id.EventID, rng *rand.Rand) Loader {
	var mu sync.Mutex
	return func(_ context.Context, ids []id.EventID) (map[id.EventID]*pdu.PDU, error) {
		mu.Lock()
		defer mu.Unlock()
		order := slices.Clone(ids)
		rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
		out := make(map[id.EventID]*pdu.PDU, len(ids)+2)
		for range 2 {
			extra := pool[rng.IntN(len(pool))]
			out[extra] = events[extra]
		}
		for _, evID := range order {
			if ev, ok := events[evID]; ok {
				out[evID] = ev
			}
		}
		return out, nil
	}
}
