package sqldb

import (
	"context"
	"fmt"

	"maunium.net/go/mautrix/id"
)

// purgeRoomRows are the statements that remove a room from the database,
// in an order that leaves nothing pointing at a deleted row: first what
// refers to its events (by event ID or stream position), then what is
// keyed by the room. $1 is the room ID. TestPurgeCoversEveryTable holds
// this list to the schema: a new table with a room_id, event_id or
// stream_pos column must be listed here or in purgeKeeps.
var purgeRoomRows = []struct{ table, where string }{
	{"event_txns", `stream_pos IN (SELECT stream_pos FROM events WHERE room_id = $1)`},
	{"event_search", ``}, // by the room's stream positions: see searchCol
	{"push_queue", `stream_pos IN (SELECT stream_pos FROM events WHERE room_id = $1)`},
	{"interest_queue", `stream_pos IN (SELECT stream_pos FROM events WHERE room_id = $1)`},
	{"event_push_actions", `room_id = $1`},
	{"event_push_defaults", `room_id = $1`},
	{"room_senders", `room_id = $1`},
	{"event_aliases", `room_id = $1`},
	{"receipts", `room_id = $1`},
	{"reports", `room_id = $1`},
	{"current_state", `room_id = $1`},
	{"forward_extremities", `room_id = $1`},
	{"state_group_entries", `group_id IN (SELECT group_id FROM state_groups WHERE room_id = $1)`},
	{"state_groups", `room_id = $1`},
	{"events", `room_id = $1`},
	{"room_aliases", `room_id = $1`},
	{"room_forgotten", `room_id = $1`},
	{"account_data", `room_id = $1`},
	{"key_backup_keys", `room_id = $1`},
	{"appservice_room_lists", `room_id = $1`},
	{"delayed_events", `room_id = $1`},
	{"thread_subscriptions", `room_id = $1`},
	{"bridge_portals", `room_id = $1`}, // a portal of a deleted room is made anew
	{"rooms", `room_id = $1`},
}

// purgeKeeps are the tables with such columns that a purge leaves alone,
// and why.
var purgeKeeps = map[string]string{
	"blocked_rooms":      "a block outlives the room: its users stay out",
	"to_device":          "stream_pos is the to-device stream's, not an event's",
	"presence":           "stream_pos is the presence stream's",
	"device_list_stream": "stream_pos is the device list stream's",
}

// PurgeRoom deletes every row of the room: its events, state, memberships,
// receipts, aliases, notifications, reports, queued deliveries, room
// account data and the room itself, in one transaction.
func (db *DB) PurgeRoom(ctx context.Context, roomID id.RoomID) error {
	return db.WithTx(ctx, func(ctx context.Context) error {
		for _, p := range purgeRoomRows {
			where := p.where
			if p.table == "event_search" {
				where = db.searchCol() + ` IN (SELECT stream_pos FROM events WHERE room_id = $1)`
			}
			if _, err := db.exec(ctx, `DELETE FROM `+p.table+` WHERE `+where, roomID); err != nil {
				return fmt.Errorf("purge %s: %w", p.table, err)
			}
		}
		return nil
	})
}

// searchCol is event_search's column of stream positions.
func (db *DB) searchCol() string {
	if db.dialect.Name() == "sqlite" {
		return "rowid"
	}
	return "stream_pos"
}

// PurgeTables lists the tables PurgeRoom clears and those it keeps (for
// the test that holds it to the schema).
func PurgeTables() (cleared []string, kept map[string]string) {
	for _, p := range purgeRoomRows {
		cleared = append(cleared, p.table)
	}
	return cleared, purgeKeeps
}

// TablesWithColumn lists the tables that have a column of that name.
func (db *DB) TablesWithColumn(ctx context.Context, column string) ([]string, error) {
	q := `SELECT m.name FROM sqlite_master m, pragma_table_info(m.name) p
		WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%' AND p.name = $1 ORDER BY m.name`
	if db.dialect.Name() != "sqlite" {
		q = `SELECT table_name FROM information_schema.columns WHERE table_schema = current_schema() AND column_name = $1
			ORDER BY table_name`
	}
	return queryStrings[string](db, ctx, q, column)
}

// RoomRows counts, in every table with a room_id column, the rows of the
// room (a purge leaves none but its block), and the rows of the other
// tables PurgeRoom clears that point at the given events or positions.
func (db *DB) RoomRows(ctx context.Context, roomID id.RoomID, eventIDs []id.EventID, positions []int64) (map[string]int, error) {
	out := map[string]int{}
	tables, err := db.TablesWithColumn(ctx, "room_id")
	if err != nil {
		return nil, err
	}
	count := func(table, where string, args ...any) error {
		var n int
		if err := db.r(ctx).QueryRowContext(ctx, `SELECT COUNT(*) FROM `+table+` WHERE `+where, args...).Scan(&n); err != nil {
			return fmt.Errorf("count %s: %w", table, err)
		}
		if n > 0 {
			out[table] += n
		}
		return nil
	}
	for _, table := range tables {
		if err := count(table, `room_id = $1`, roomID); err != nil {
			return nil, err
		}
	}
	for _, e := range eventIDs {
		if err := count("state_group_entries", `event_id = $1`, e); err != nil {
			return nil, err
		}
	}
	for _, p := range positions {
		for _, table := range []string{"push_queue", "interest_queue", "event_txns"} {
			if err := count(table, `stream_pos = $1`, p); err != nil {
				return nil, err
			}
		}
		if err := count("event_search", db.searchCol()+` = $1`, p); err != nil {
			return nil, err
		}
	}
	return out, nil
}
