package sqldb

import (
	"context"
	"fmt"

	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/storage"
)

// purgedEvents selects the events a history purge deletes: $1 room, $2 the
// stream position before which, $3 a LIKE pattern of the senders whose
// events stay (” for none). State events stay (the room goes on from
// them), and so do outliers (not timeline events).
const purgedEvents = `SELECT %s FROM events WHERE room_id = $1 AND stream_pos < $2 AND outlier = 0 AND state_key IS NULL
	AND ($3 = '' OR sender NOT LIKE $3)`

// purgeHistoryRows are the statements that delete what depends on the
// purged events, before the events themselves. %s is purgedEvents of the
// column named. TestPurgeHistoryCoversEveryTable holds this list to the
// schema: a table with an event_id or stream_pos column must be listed here
// or in purgeHistoryKeeps.
var purgeHistoryRows = []struct{ table, where string }{
	{"event_txns", `stream_pos IN (` + fmt.Sprintf(purgedEvents, "stream_pos") + `)`},
	{"event_aliases", `stream_pos IN (` + fmt.Sprintf(purgedEvents, "stream_pos") + `)`},
	{"event_search", ``}, // by stream position: see searchCol
	{"push_queue", `stream_pos IN (` + fmt.Sprintf(purgedEvents, "stream_pos") + `)`},
	{"interest_queue", `stream_pos IN (` + fmt.Sprintf(purgedEvents, "stream_pos") + `)`},
	{"event_push_actions", `room_id = $1 AND stream_pos IN (` + fmt.Sprintf(purgedEvents, "stream_pos") + `)`},
	{"event_push_defaults", `room_id = $1 AND stream_pos IN (` + fmt.Sprintf(purgedEvents, "stream_pos") + `)`},
	{"events", `stream_pos IN (` + fmt.Sprintf(purgedEvents, "stream_pos") + `)`},
}

// purgeHistoryKeeps are the tables with an event_id or stream_pos column
// that a history purge leaves alone, and why.
var purgeHistoryKeeps = map[string]string{
	"current_state":        "the room's state stays",
	"state_group_entries":  "the state at the remaining events stays",
	"forward_extremities":  "the point never passes the room's forward extremities",
	"receipts":             "a user's read position stays where it was",
	"room_senders":         "a sender's last position is their read mark, which stays where it was",
	"reports":              "the admins' record of what was reported",
	"thread_subscriptions": "a subscription names its thread root, which may be kept",
	"delayed_events":       "events not sent yet",
	"account_data":         "stream_pos is the account data stream's",
	"to_device":            "stream_pos is the to-device stream's",
	"presence":             "stream_pos is the presence stream's",
	"device_list_stream":   "stream_pos is the device list stream's",
	"device_list_changes":  "stream_pos is the device list stream's",
}

// purgedOutlier is the outlier value of the events a history purge keeps
// (1 is the outlier of federation: stored for its content alone). Both are
// out of every timeline, but the state events of purged history are still
// the room's state changes where it was: a sync from a token before them
// must learn them (StateEventsBetween).
const purgedOutlier = "2"

// PurgeHistory deletes a room's history before a point in one transaction;
// the state events (and kept senders' events) left before it become
// outliers, so that no timeline goes past the point.
func (db *DB) PurgeHistory(ctx context.Context, p *storage.HistoryPurge) (int, error) {
	keep := ""
	if p.KeepServer != "" {
		keep = "%:" + p.KeepServer
	}
	var n int
	err := db.WithTx(ctx, func(ctx context.Context) error {
		if err := db.r(ctx).QueryRowContext(ctx, fmt.Sprintf(purgedEvents, "COUNT(*)"), p.RoomID, p.Before, keep).Scan(&n); err != nil {
			return fmt.Errorf("count purged events: %w", err)
		}
		for _, r := range purgeHistoryRows {
			where := r.where
			if r.table == "event_search" {
				where = db.searchCol() + ` IN (` + fmt.Sprintf(purgedEvents, "stream_pos") + `)`
			}
			if _, err := db.exec(ctx, `DELETE FROM `+r.table+` WHERE `+where, p.RoomID, p.Before, keep); err != nil {
				return fmt.Errorf("purge history %s: %w", r.table, err)
			}
		}
		if _, err := db.exec(ctx, `UPDATE events SET outlier = `+purgedOutlier+` WHERE room_id = $1 AND stream_pos < $2 AND outlier = 0`,
			p.RoomID, p.Before); err != nil {
			return fmt.Errorf("purge history: keep the rest as outliers: %w", err)
		}
		return nil
	})
	return n, err
}

// PurgeHistoryTables lists the tables PurgeHistory clears rows of and
// those it keeps (for the test that holds it to the schema).
func PurgeHistoryTables() (cleared []string, kept map[string]string) {
	for _, p := range purgeHistoryRows {
		cleared = append(cleared, p.table)
	}
	return cleared, purgeHistoryKeeps
}

func (db *DB) SenderEvents(ctx context.Context, roomID id.RoomID, sender id.UserID, afterTS, beforeTS int64, limit int) ([]*storage.Event, error) {
	rows, err := db.r(ctx).QueryContext(ctx, `SELECT `+eventCols+` FROM events WHERE room_id = $1 AND sender = $2
		AND outlier = 0 AND rejected = 0 AND state_key IS NULL AND type <> 'm.room.redaction' AND redacted_by = ''
		AND (origin_server_ts >= $3 OR $3 = 0) AND (origin_server_ts <= $4 OR $4 = 0)
		ORDER BY stream_pos DESC LIMIT $5`, roomID, sender, afterTS, beforeTS, limit)
	if err != nil {
		return nil, err
	}
	return collect(rows, scanEvent)
}

func (db *DB) DeleteForwardExtremities(ctx context.Context, roomID id.RoomID, keep id.EventID) (int, error) {
	res, err := db.exec(ctx, `DELETE FROM forward_extremities WHERE room_id = $1 AND event_id <> $2`, roomID, keep)
	if err != nil {
		return 0, err
	}
	n, err := res.RowsAffected()
	return int(n), err
}

func (db *DB) MediaEvents(ctx context.Context, roomID id.RoomID) ([]*storage.Event, error) {
	rows, err := db.r(ctx).QueryContext(ctx, `SELECT `+eventCols+` FROM events WHERE room_id = $1 AND json LIKE '%mxc://%'
		ORDER BY stream_pos`, roomID)
	if err != nil {
		return nil, err
	}
	return collect(rows, scanEvent)
}
