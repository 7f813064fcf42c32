package storagetest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/storage"
	"github.com/tributary-hs/tributary/storage/sqldb"
)

// FillRooms adds rooms rooms of members members each to s, written the
// way core/rooms writes them: a create event, then one join after the
// other, each with its state group (a snapshot of the whole state every
// 64th state event, else a one-entry delta on the previous group), then
// members messages (every tenth a reply in a thread). A room of 1,000
// members holds ~8,700 state group entries: 60 of them make a server of
// ~520,000. Room i is "!<name><i>:<server>", user j "@u<j>:<server>"
// (a member of every room that has more than j members). It returns the
// rooms' last state groups.
func FillRooms(ctx context.Context, s storage.Store, server, name string, rooms, members int) ([]int64, error) {
	const snapshotEvery = 64 // as core/rooms
	var last []int64
	for r := range rooms {
		// One transaction a room: thousands of small rooms commit quickly.
		err := s.WithTx(ctx, func(ctx context.Context) error {
			room := id.RoomID(fmt.Sprintf("!%s%d:%s", name, r, server))
			if err := s.CreateRoomRecord(ctx, &storage.Room{RoomID: room, RoomVersion: "11", Creator: fillUser(0, server), CreatedAt: 1}); err != nil {
				return err
			}
			first, err := s.ReserveStateGroupIDs(ctx, int64(members+1))
			if err != nil {
				return err
			}
			var (
				writes []*storage.EventWrite
				full   []storage.StateEntry
				prev   int64
				chain  int64
			)
			flush := func() error {
				err := s.PersistEvents(ctx, writes)
				writes = nil
				return err
			}
			for i := 0; i <= members; i++ {
				g := first + int64(i)
				var e *storage.Event
				if i == 0 {
					e = fillEvent(room, fmt.Sprintf("$%s%d-create", name, r), "m.room.create", strPtr(""), fillUser(0, server), i)
				} else {
					u := fillUser(i-1, server)
					e = fillEvent(room, fmt.Sprintf("$%s%d-m%d", name, r, i), "m.room.member", strPtr(string(u)), u, i)
					e.Membership = "join"
				}
				e.StateGroup = g
				entry := storage.StateEntry{Type: e.Type, StateKey: *e.StateKey, EventID: e.EventID}
				full = append(full, entry)
				group := &storage.StateGroup{GroupID: g, RoomID: room, PrevGroup: prev, ChainLen: chain + 1,
					Entries: []storage.StateEntry{entry}}
				if prev == 0 || group.ChainLen >= snapshotEvery {
					group.PrevGroup, group.ChainLen, group.Entries = 0, 0, append([]storage.StateEntry(nil), full...)
				}
				prev, chain = g, group.ChainLen
				writes = append(writes, &storage.EventWrite{Event: e, NewGroup: group, CurrentState: []storage.StateEntry{entry},
					Extremities: []id.EventID{e.EventID}})
				if len(writes) == 500 {
					if err := flush(); err != nil {
						return err
					}
				}
			}
			for i := range members {
				e := fillEvent(room, fmt.Sprintf("$%s%d-msg%d", name, r, i), "m.room.message", nil, fillUser(i, server), members+1+i)
				e.StateGroup = prev
				if i%10 == 9 {
					e.RelType, e.RelatesTo = "m.thread", id.EventID(fmt.Sprintf("$%s%d-msg%d", name, r, i-9))
				}
				writes = append(writes, &storage.EventWrite{Event: e, Extremities: []id.EventID{e.EventID}})
				if len(writes) == 500 {
					if err := flush(); err != nil {
						return err
					}
				}
			}
			if err := flush(); err != nil {
				return err
			}
			last = append(last, prev)
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return last, nil
}

func fillUser(i int, server string) id.UserID { return id.UserID(fmt.Sprintf("@u%d:%s", i, server)) }

func fillEvent(room id.RoomID, eventID, evType string, stateKey *string, sender id.UserID, depth int) *storage.Event {
	content := `{"body":"message ` + eventID + ` of the fill"}`
	if evType == "m.room.member" {
		content = `{"membership":"join"}`
	}
	sk := ""
	if stateKey != nil {
		sk = `"state_key":"` + *stateKey + `",`
	}
	return &storage.Event{EventID: id.EventID(eventID), RoomID: room, Type: evType, StateKey: stateKey, Sender: sender,
		OriginServerTS: int64(1_700_000_000_000 + depth), Depth: int64(depth + 1),
		JSON: []byte(`{"type":"` + evType + `","room_id":"` + string(room) + `","sender":"` + string(sender) + `",` + sk +
			`"origin_server_ts":` + fmt.Sprint(1_700_000_000_000+depth) + `,"content":` + content + `}`)}
}

// largeTable is the row count from which a full scan fails the test: the
// fill puts many times more in the tables that grow with the server.
const largeTable = 2000

// QueryPlans fills s with rooms (their state groups, current state and
// events at several times largeTable rows) and fails if a statement that
// the storage methods behind /sync, /messages, /context and search run
// would read a large table whole. Each statement is planned twice: without
// statistics (as SQLite runs; PostgreSQL before autovacuum has looked at the
// tables) and after ANALYZE, which must not mislead the planner either.
func QueryPlans(t *testing.T, s *sqldb.DB) {
	c := context.Background()
	const server = "example.org"
	// ~17,000 state group entries, ~6,000 events: enough for the planners
	// to see big tables, little enough for the race detector's pace.
	groups, err := FillRooms(c, s, server, "big", 4, 700)
	must(t, err)
	// Most rooms are small: a query of one of them must not read the rows
	// of the others.
	_, err = FillRooms(c, s, server, "small", 150, 4)
	must(t, err)
	room, small := id.RoomID("!big3:"+server), id.RoomID("!small7:"+server)
	user := fillUser(500, server)
	msg := id.EventID("$big3-msg500")
	group := groups[3]
	// A group in the middle of a delta chain.
	midChain := group - 300 + 40

	log := &sqldb.QueryLog{}
	lc := sqldb.WithQueryLog(c, log)
	call := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	max, err := s.MaxStreamPos(lc)
	call("MaxStreamPos", err)
	_, err = s.StateAt(lc, midChain)
	call("StateAt", err)
	_, err = s.StateEntryAt(lc, midChain, "m.room.member", string(user))
	call("StateEntryAt", err)
	_, err = s.StateEntryAt(lc, group, "m.room.history_visibility", "")
	call("StateEntryAt", err)
	_, err = s.StateEventAt(lc, midChain, "m.room.member", string(fillUser(10, server)))
	call("StateEventAt", err)
	_, err = s.GetStateGroup(lc, midChain)
	call("GetStateGroup", err)
	_, err = s.CurrentState(lc, small)
	call("CurrentState", err)
	_, err = s.CurrentStateEvent(lc, small, "m.room.member", string(fillUser(2, server)))
	call("CurrentStateEvent", err)
	_, err = s.RoomsOfUser(lc, user, []string{"join"})
	call("RoomsOfUser", err)
	_, err = s.RoomsOfUser(lc, user, nil)
	call("RoomsOfUser", err)
	_, err = s.RoomMembers(lc, small, []string{"join"})
	call("RoomMembers", err)
	_, err = s.RoomMembers(lc, small, nil)
	call("RoomMembers", err)
	_, err = s.GetForwardExtremities(lc, room)
	call("GetForwardExtremities", err)
	e, err := s.GetEvent(lc, msg)
	call("GetEvent", err)
	_, err = s.GetEvents(lc, []id.EventID{msg, "$big3-msg501"})
	call("GetEvents", err)
	_, err = s.GetEventsByPos(lc, []int64{e.StreamPos, e.StreamPos + 1})
	call("GetEventsByPos", err)
	_, err = s.RoomEvents(lc, room, max+1, 0, true, 20)
	call("RoomEvents backwards", err)
	_, err = s.RoomEvents(lc, room, e.StreamPos, max+1, false, 20)
	call("RoomEvents forwards", err)
	_, err = s.LastEventBefore(lc, room, max+1)
	call("LastEventBefore", err)
	_, err = s.StateEventsBetween(lc, room, e.StreamPos, max+1)
	call("StateEventsBetween", err)
	_, err = s.CountRoomEvents(lc, room, e.StreamPos, max)
	call("CountRoomEvents", err)
	_, err = s.RoomsWithEventsBetween(lc, max-10, max)
	call("RoomsWithEventsBetween", err)
	_, err = s.MemberEventsBetween(lc, max-10, max)
	call("MemberEventsBetween", err)
	_, err = s.HasMessages(lc, small)
	call("HasMessages", err)
	_, err = s.LastEventPos(lc, room, max, []string{"m.room.message", "m.room.encrypted"})
	call("LastEventPos", err)
	_, err = s.EventByTimestamp(lc, room, e.OriginServerTS, true)
	call("EventByTimestamp", err)
	_, err = s.Relations(lc, "$big3-msg490", "m.thread", "", max+1, true, 20)
	call("Relations", err)
	_, err = s.RelationAggregates(lc, []id.EventID{"$big3-msg490", msg})
	call("RelationAggregates", err)
	_, _, _, err = s.RelationSpan(lc, room)
	call("RelationSpan", err)
	_, err = s.ThreadRoots(lc, room, max+1, 20)
	call("ThreadRoots", err)
	search := &storage.EventSearch{Terms: []string{"message"}, Rooms: []storage.SearchRoom{{RoomID: room, Before: max + 1}},
		Limit: 10}
	_, err = s.SearchEvents(lc, search)
	call("SearchEvents", err)
	_, err = s.CountSearchEvents(lc, search)
	call("CountSearchEvents", err)
	_, err = s.UnreadCounts(lc, room, user)
	call("UnreadCounts", err)
	_, _, err = s.ReadPositions(lc, room, user)
	call("ReadPositions", err)
	// The first /sync of an account reads these for all its rooms at once.
	all := []id.RoomID{room, small, "!big0:" + server, "!big1:" + server, "!big2:" + server}
	_, err = s.ReadPositionsIn(lc, all, user)
	call("ReadPositionsIn", err)
	_, err = s.GetRooms(lc, all)
	call("GetRooms", err)
	_, err = s.RelationSpans(lc, all)
	call("RelationSpans", err)
	_, err = s.PushActionCountsIn(lc, user, map[id.RoomID]int64{room: e.StreamPos, small: 0, "!big0:" + server: 0}, max)
	call("PushActionCountsIn", err)
	_, err = s.RoomSummaries(lc, all, user)
	call("RoomSummaries", err)
	_, err = s.RemoteJoinedRooms(lc, all, server)
	call("RemoteJoinedRooms", err)
	var spans []storage.RoomSpan
	for _, r := range all {
		spans = append(spans, storage.RoomSpan{RoomID: r, Before: max + 1})
	}
	spans[0].After = e.StreamPos
	_, err = s.LatestRoomEvents(lc, spans, 11)
	call("LatestRoomEvents", err)
	for i := range spans {
		spans[i].After = e.StreamPos
	}
	_, err = s.StateEventsIn(lc, spans)
	call("StateEventsIn", err)
	_, err = s.StatesAt(lc, []int64{midChain, group, groups[0], groups[1] - 5})
	call("StatesAt", err)
	_, err = s.StateEntriesAt(lc, []int64{midChain, group, groups[0]}, "m.room.history_visibility", "")
	call("StateEntriesAt", err)
	_, err = s.PushActionCounts(lc, room, user, "", e.StreamPos, max)
	call("PushActionCounts", err)
	_, _, err = s.PushActionsBetween(lc, room, e.StreamPos, max)
	call("PushActionsBetween", err)
	_, err = s.ReceiptsSince(lc, []id.RoomID{room}, 0, 10)
	call("ReceiptsSince", err)
	// Asked for each device list update from another server and each
	// /keys/query about a remote user.
	_, err = s.RemoteUsersSharedSince(lc, []id.UserID{user})
	call("RemoteUsersSharedSince", err)
	_, err = s.RemoteDeviceLists(lc, []id.UserID{user})
	call("RemoteDeviceLists", err)
	// An import's aliases: a bridge asks after them by the real event,
	// whose position keys its alias row (a join with events).
	_, err = s.ResolveEventAliases(lc, []id.EventID{"$alias1:bridge", "$alias2:bridge"})
	call("ResolveEventAliases", err)
	_, err = s.EventAliases(lc, []id.EventID{msg, "$big3-msg501"})
	call("EventAliases", err)
	_, err = s.BridgeMessageOf(lc, msg)
	if !errors.Is(err, storage.ErrNotFound) {
		call("BridgeMessageOf", err)
	}
	_, err = s.BridgeMessageParts(lc, room, "M1")
	call("BridgeMessageParts", err)
	_, err = s.BridgeMessageReactions(lc, room, "M1")
	call("BridgeMessageReactions", err)

	queries := log.Queries()
	check := func(when string) {
		for _, q := range queries {
			p, err := s.Explain(c, q.SQL, q.Args...)
			if err != nil {
				t.Fatalf("explain %s: %v", q.SQL, err)
			}
			for table, n := range p.Scans {
				if n >= largeTable {
					t.Errorf("%s: a full scan of %s (%d rows) in\n%s\nplan:\n%s", when, table, n, strings.TrimSpace(q.SQL), p)
				}
			}
		}
	}
	check("without statistics")
	must(t, s.Analyze(c))
	check("with statistics")
	t.Logf("%d statements planned", len(queries))
}
