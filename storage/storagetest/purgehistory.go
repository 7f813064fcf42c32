package storagetest

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/storage"
	"github.com/tributary-hs/tributary/storage/sqldb"
)

// PurgeHistory checks PurgeHistory: the timeline events before the point
// go with every row that points at them; the state events and, when asked,
// the local senders' events stay but no timeline reaches them; the room's
// current state, the events from the point on and the other rooms are
// untouched; and every table of the schema with an event_id or stream_pos
// column is one PurgeHistory clears or one it keeps on purpose.
func PurgeHistory(t *testing.T, s *sqldb.DB) {
	c := context.Background()
	cleared, kept := sqldb.PurgeHistoryTables()
	for _, col := range []string{"event_id", "stream_pos"} {
		tables, err := s.TablesWithColumn(c, col)
		must(t, err)
		for _, table := range tables {
			if !slices.Contains(cleared, table) && kept[table] == "" {
				t.Errorf("table %s has a %s column but PurgeHistory neither clears nor keeps it (storage/sqldb/purgehistory.go)", table, col)
			}
		}
	}

	const server = "example.org"
	_, err := FillRooms(c, s, server, "hist", 3, 20)
	must(t, err)
	room, keepLocal, other := id.RoomID("!hist0:"+server), id.RoomID("!hist1:"+server), id.RoomID("!hist2:"+server)
	timeline := func(r id.RoomID) []*storage.Event {
		evs, err := s.RoomEvents(c, r, -1<<62, 0, false, 1000)
		must(t, err)
		return evs
	}
	// Each room: create, 20 joins, 20 messages. The point is the 11th message.
	evs := timeline(room)
	eq(t, "events of the room", len(evs), 41)
	point := evs[31]
	var purged []*storage.Event
	for _, e := range evs[:31] {
		if e.StateKey == nil {
			purged = append(purged, e)
		}
	}
	eq(t, "messages before the point", len(purged), 10)
	var ids []id.EventID
	var positions []int64
	for _, e := range purged {
		ids = append(ids, e.EventID)
		positions = append(positions, e.StreamPos)
	}
	user := fillUser(3, server)
	search, err := s.RoomRows(c, "!none:"+server, ids, positions)
	must(t, err)
	if search["event_search"] == 0 {
		t.Fatalf("the purged messages are not in the search index: nothing to check (%v)", search)
	}
	stateBefore, err := s.CurrentState(c, room)
	must(t, err)
	otherBefore, err := s.RoomRows(c, other, nil, nil)
	must(t, err)

	n, err := s.PurgeHistory(c, &storage.HistoryPurge{RoomID: room, Before: point.StreamPos})
	must(t, err)
	eq(t, "events purged", n, 10)
	got, err := s.GetEvents(c, ids)
	must(t, err)
	eq(t, "purged events left", len(got), 0)
	left, err := s.RoomRows(c, "!none:"+server, ids, positions)
	must(t, err)
	eq(t, "rows pointing at purged events", fmt.Sprint(left), fmt.Sprint(map[string]int{}))
	after := timeline(room)
	eq(t, "timeline after the purge starts at the point", after[0].EventID, point.EventID)
	eq(t, "timeline after the purge", len(after), 10)
	back, err := s.RoomEvents(c, room, point.StreamPos, 0, true, 100)
	must(t, err)
	eq(t, "events before the point in a backward page", len(back), 0)
	create, err := s.GetEvent(c, evs[0].EventID)
	must(t, err)
	eq(t, "the create event stays, an outlier", create.Outlier, true)
	// The state changes of the purged history are still the room's: a
	// sync from before them learns them.
	changes, err := s.StateEventsBetween(c, room, 0, point.StreamPos)
	must(t, err)
	eq(t, "state changes before the point", len(changes), 21)
	stateAfter, err := s.CurrentState(c, room)
	must(t, err)
	eqState(t, "current state", stateAfter, stateBefore)
	otherAfter, err := s.RoomRows(c, other, nil, nil)
	must(t, err)
	eq(t, "rows of another room", fmt.Sprint(otherAfter), fmt.Sprint(otherBefore))

	// Keeping this server's senders: only the other server's message
	// goes, but the timeline still starts at the point.
	evs = timeline(keepLocal)
	remote := fillEvent(keepLocal, "$hist1-remote", "m.room.message", nil, "@r:elsewhere.org", 200)
	local := fillEvent(keepLocal, "$hist1-local", "m.room.message", nil, user, 201)
	remote.StateGroup, local.StateGroup = evs[len(evs)-1].StateGroup, evs[len(evs)-1].StateGroup
	must(t, s.PersistEvents(c, []*storage.EventWrite{{Event: remote}, {Event: local, Extremities: []id.EventID{local.EventID}}}))
	n, err = s.PurgeHistory(c, &storage.HistoryPurge{RoomID: keepLocal, Before: local.StreamPos, KeepServer: server})
	must(t, err)
	eq(t, "events purged keeping local senders", n, 1)
	got, err = s.GetEvents(c, []id.EventID{evs[30].EventID, remote.EventID})
	must(t, err)
	eq(t, "a local message before the point stays, the remote one goes", len(got), 1)
	eq(t, "the message that stays", got[0].EventID, evs[30].EventID)
	eq(t, "timeline keeping local senders starts at the point", timeline(keepLocal)[0].EventID, local.EventID)

	// DeleteForwardExtremities keeps the one named.
	last := timeline(other)
	fork := fillEvent(other, "$hist2-fork", "m.room.message", nil, user, 100)
	fork.StateGroup = last[len(last)-1].StateGroup
	fork.JSON = []byte(`{"type":"m.room.message","content":{"msgtype":"m.image","url":"mxc://example.org/pic"}}`)
	must(t, s.PersistEvents(c, []*storage.EventWrite{{Event: fork,
		Extremities: []id.EventID{last[len(last)-1].EventID, fork.EventID}}}))
	n, err = s.DeleteForwardExtremities(c, other, fork.EventID)
	must(t, err)
	eq(t, "extremities deleted", n, 1)
	ext, err := s.GetForwardExtremities(c, other)
	must(t, err)
	eqList(t, "extremities left", ext, []id.EventID{fork.EventID})
	media, err := s.MediaEvents(c, other)
	must(t, err)
	eq(t, "events with media", len(media), 1)
	eq(t, "the event with media", media[0].EventID, fork.EventID)

	// SenderEvents: newest first, bounded, no state.
	mine, err := s.SenderEvents(c, other, user, 0, 0, 10)
	must(t, err)
	eq(t, "the user's messages", len(mine), 2)
	eq(t, "newest first", mine[0].EventID, fork.EventID)
	mine, err = s.SenderEvents(c, other, user, 0, fork.OriginServerTS-1, 10)
	must(t, err)
	eq(t, "the user's messages up to a time", len(mine), 1)
	eq(t, "the user's message is not state", mine[0].StateKey == nil, true)
}
