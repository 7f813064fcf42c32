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

// Purge checks PurgeRoom: after it, no table holds a row of the room (but
// its block) and the other rooms keep theirs; and every table of the
// schema with a room_id, event_id or stream_pos column is one PurgeRoom
// clears or one it keeps on purpose, so that a new table cannot be
// forgotten.
func Purge(t *testing.T, s *sqldb.DB) {
	c := context.Background()
	cleared, kept := sqldb.PurgeTables()
	for _, col := range []string{"room_id", "event_id", "stream_pos"} {
		tables, err := s.TablesWithColumn(c, col)
		must(t, err)
		for _, table := range tables {
			if !slices.Contains(cleared, table) && kept[table] == "" {
				t.Errorf("table %s has a %s column but PurgeRoom neither clears nor keeps it (storage/sqldb/purge.go)", table, col)
			}
		}
	}

	const server = "example.org"
	_, err := FillRooms(c, s, server, "purge", 3, 40)
	must(t, err)
	doomed, other := id.RoomID("!purge1:"+server), id.RoomID("!purge2:"+server)
	user := fillUser(3, server)
	var eventIDs []id.EventID
	var positions []int64
	evs, err := s.RoomEvents(c, doomed, 0, 1<<62, false, 1000)
	must(t, err)
	for _, e := range evs {
		eventIDs = append(eventIDs, e.EventID)
		positions = append(positions, e.StreamPos)
	}
	if len(evs) < 40 {
		t.Fatalf("the doomed room has %d events", len(evs))
	}
	last := evs[len(evs)-1]
	for _, r := range []id.RoomID{doomed, other} {
		must(t, s.CreateAlias(c, &storage.RoomAlias{Alias: id.RoomAlias(fmt.Sprintf("#alias-%s", r[1:])),
			RoomID: r, Creator: user}))
		must(t, s.CreateReport(c, &storage.Report{ReportID: "report-" + string(r), RoomID: r, EventID: last.EventID,
			Reporter: user, CreatedAt: 1}))
		must(t, s.SetForgotten(c, user, r, true))
		_, err := s.PutAccountData(c, user, r, "m.tag", []byte(`{"tags":{}}`))
		must(t, err)
	}
	_, err = s.PutReceipt(c, &storage.Receipt{RoomID: doomed, UserID: user, Type: "m.read", EventID: last.EventID, TS: 1})
	must(t, err)
	must(t, s.SetRoomBlocked(c, doomed, true, user, 1))

	before, err := s.RoomRows(c, other, nil, nil)
	must(t, err)
	must(t, s.PurgeRoom(c, doomed))
	left, err := s.RoomRows(c, doomed, eventIDs, positions)
	must(t, err)
	eq(t, "rows of the purged room", fmt.Sprint(left), fmt.Sprint(map[string]int{"blocked_rooms": 1}))
	after, err := s.RoomRows(c, other, nil, nil)
	must(t, err)
	eq(t, "rows of another room", fmt.Sprint(after), fmt.Sprint(before))
	if before["events"] < 40 || before["current_state"] == 0 {
		t.Fatalf("the other room has too little to check: %v", before)
	}
}
