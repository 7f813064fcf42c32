package state

import (
	"context"
	"maps"
	"sync"
	"testing"

	"maunium.net/go/mautrix/federation/pdu"
	"maunium.net/go/mautrix/id"
)

// bulkJoin joins the users one after the other on top of prev, without
// authorising each join (they are valid: the room is public) and recording
// only the state after the last one.
func (rm *room) bulkJoin(prev id.EventID, users []id.UserID) id.EventID {
	rm.t.Helper()
	state := maps.Clone(rm.after[prev])
	for _, u := range users {
		probe := &pdu.PDU{Type: "m.room.member", StateKey: sk(u.String()), Sender: u, Content: []byte(`{"membership":"join"}`)}
		var auth []id.EventID
		for _, k := range probe.AuthEventSelection(rm.rv) {
			if v, ok := state[k]; ok {
				auth = append(auth, v)
			}
		}
		ev := rm.build(u, "m.room.member", sk(u.String()), map[string]any{"membership": "join"}, []id.EventID{prev}, auth, 0)
		evID := ev.InternalMeta.EventID
		rm.events[evID] = ev
		rm.depth[evID] = rm.depth[prev] + 1
		state[memberKey(u)] = evID
		prev = evID
	}
	rm.after[prev] = state
	return prev
}

type bigRoom struct {
	rm       *room
	sets     []Map
	quiet    []id.EventID // joins of members no branch touches
	conflict int          // conflicted state events
}

var (
	bigRoomOnce sync.Once
	bigRoomVal  *bigRoom
)

// buildBigRoom: a v10 room with 10,000 joined members and two branches. A:
// Alice demotes Bob, kicks 150 members, sets the topic. B: Bob sets the topic,
// 150 other members leave, Bob bans 50 more, Carol changes the name.
func buildBigRoom(tb testing.TB) *bigRoom {
	const members, kicks, leaves, bans = 10_000, 150, 150, 50
	rm, head := baseRoom(tb, id.RoomV10, map[id.UserID]int{alice: 100, bob: 50, carol: 50}, nil, bob, carol)
	us := make([]id.UserID, members)
	for i := range us {
		us[i] = user("u" + itoa(i))
	}
	joinIDs := map[id.UserID]id.EventID{}
	for i := 0; i < members; i += 1000 {
		head = rm.bulkJoin(head, us[i:i+1000])
	}
	for _, u := range us {
		joinIDs[u] = rm.after[head][memberKey(u)]
	}
	touched := map[id.UserID]bool{}
	a := rm.powerLevels(head, alice, map[id.UserID]int{alice: 100, bob: 0, carol: 50}, nil)
	for _, u := range us[:kicks] {
		a = rm.member(a, alice, u, "leave")
		touched[u] = true
	}
	a = rm.topic(a, alice, "a")
	b := rm.topic(head, bob, "b")
	for _, u := range us[kicks : kicks+leaves] {
		b = rm.member(b, u, u, "leave")
		touched[u] = true
	}
	for _, u := range us[kicks+leaves : kicks+leaves+bans] {
		b = rm.member(b, bob, u, "ban")
		touched[u] = true
	}
	b = rm.send(b, carol, "m.room.name", sk(""), map[string]any{"name": "b"})
	br := &bigRoom{rm: rm, sets: rm.states(a, b)}
	for _, u := range us {
		if !touched[u] {
			br.quiet = append(br.quiet, joinIDs[u])
		}
	}
	br.conflict = len(split(br.sets).events)
	return br
}

func BenchmarkResolve10kMembers(b *testing.B) {
	bigRoomOnce.Do(func() { bigRoomVal = buildBigRoom(b) })
	br := bigRoomVal
	ctx := context.Background()
	for _, bc := range []struct {
		name    string
		resolve func(context.Context, id.RoomVersion, []Map, Loader, pdu.GetKeyFunc) (Map, error)
	}{{"Resolve", Resolve}, {"ResolveExact", ResolveExact}} {
		b.Run(bc.name, func(b *testing.B) {
			var stats loadStats
			got, err := bc.resolve(ctx, br.rm.rv, br.sets, br.rm.loader(&stats), testGetKey)
			if err != nil {
				b.Fatal(err)
			}
			if len(got) < 10_000 || got[keyPL] != br.sets[0][keyPL] {
				b.Fatalf("unexpected result: %d entries, power levels %s", len(got), got[keyPL])
			}
			quietLoaded := 0
			for _, q := range br.quiet {
				if stats.wasAsked(q) {
					quietLoaded++
				}
			}
			if bc.name == "Resolve" && quietLoaded > 0 {
				b.Fatalf("loaded %d untouched member events", quietLoaded)
			}
			load := br.rm.loader(nil)
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if _, err := bc.resolve(ctx, br.rm.rv, br.sets, load, testGetKey); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(br.conflict), "conflicted")
			b.ReportMetric(float64(len(stats.asked)), "loaded")
		})
	}
}
