package storagetest

import (
	"context"
	"fmt"
	"testing"

	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/storage"
)

// BenchStateWrites measures the state a room's events write, in a room of
// 10,000 members: "snapshot" persists a state event whose group is a full
// snapshot (10,001 entries, what every 64th state event of the room
// writes), "joins16" a batch of 16 joins, each with a one-entry delta, a
// current state row and new extremities. s must be a fresh, empty store.
func BenchStateWrites(b *testing.B, s storage.Store) {
	c := context.Background()
	const members = 10_000
	full := make([]storage.StateEntry, 0, members+1)
	var writes []*storage.EventWrite
	for i := range members {
		e := memberEv(roomA, id.EventID(fmt.Sprintf("$m%d", i)), id.UserID(fmt.Sprintf("@u%05d:example.org", i)), "join")
		cs := storage.StateEntry{Type: e.Type, StateKey: *e.StateKey, EventID: e.EventID}
		full = append(full, cs)
		writes = append(writes, &storage.EventWrite{Event: e, CurrentState: []storage.StateEntry{cs}})
		if len(writes) == 500 || i == members-1 {
			if err := s.PersistEvents(c, writes); err != nil {
				b.Fatal(err)
			}
			writes = nil
		}
	}
	n := 0
	b.Run("snapshot", func(b *testing.B) {
		for b.Loop() {
			n++
			g, err := s.ReserveStateGroupIDs(c, 1)
			if err != nil {
				b.Fatal(err)
			}
			e := stateEv(roomA, id.EventID(fmt.Sprintf("$topic%d", n)), "m.room.topic", "")
			e.StateGroup = g
			cs := storage.StateEntry{Type: e.Type, EventID: e.EventID}
			if err := s.PersistEvents(c, []*storage.EventWrite{{Event: e, CurrentState: []storage.StateEntry{cs},
				Extremities: []id.EventID{e.EventID},
				NewGroup:    &storage.StateGroup{GroupID: g, RoomID: roomA, Entries: append(full[:members], cs)}}}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("joins16", func(b *testing.B) {
		for b.Loop() {
			g, err := s.ReserveStateGroupIDs(c, 16)
			if err != nil {
				b.Fatal(err)
			}
			ws := make([]*storage.EventWrite, 16)
			for j := range ws {
				n++
				e := memberEv(roomA, id.EventID(fmt.Sprintf("$join%d", n)), id.UserID(fmt.Sprintf("@j%07d:example.org", n)), "join")
				e.StateGroup = g + int64(j)
				cs := storage.StateEntry{Type: e.Type, StateKey: *e.StateKey, EventID: e.EventID}
				ws[j] = &storage.EventWrite{Event: e, CurrentState: []storage.StateEntry{cs}, Extremities: []id.EventID{e.EventID},
					NewGroup: &storage.StateGroup{GroupID: g + int64(j), RoomID: roomA, PrevGroup: g + int64(j) - 1, ChainLen: 1,
						Entries: []storage.StateEntry{cs}}}
			}
			if err := s.PersistEvents(c, ws); err != nil {
				b.Fatal(err)
			}
		}
	})
}
