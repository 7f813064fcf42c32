package sqldb

import (
	"context"
	"database/sql"
	"errors"

	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/storage"
)

// stateChain is the delta chain of a group: the group itself at step 0,
// then each previous group, back to the snapshot.
const stateChain = `WITH RECURSIVE chain(gid, step) AS (
		SELECT group_id, 0 FROM state_groups WHERE group_id = $1
		UNION ALL
		SELECT sg.prev_group, chain.step + 1 FROM state_groups sg JOIN chain ON sg.group_id = chain.gid
		WHERE sg.prev_group <> 0
	)`

func (db *DB) StateAt(ctx context.Context, groupID int64) ([]storage.StateEntry, error) {
	// The entry from the group nearest the start of the chain wins.
	rows, err := db.r(ctx).QueryContext(ctx, stateChain+`
		SELECT e.type, e.state_key, e.event_id FROM state_group_entries e JOIN chain ON e.group_id = chain.gid
		ORDER BY chain.step DESC`, groupID)
	if err != nil {
		return nil, err
	}
	entries, err := collect(rows, scanStateEntry)
	if err != nil {
		return nil, err
	}
	merged := make(map[[2]string]id.EventID, len(entries))
	for _, e := range entries {
		merged[[2]string{e.Type, e.StateKey}] = e.EventID
	}
	out := make([]storage.StateEntry, 0, len(merged))
	for k, v := range merged {
		if v != "" {
			out = append(out, storage.StateEntry{Type: k[0], StateKey: k[1], EventID: v})
		}
	}
	return out, nil
}

func (db *DB) StateEntryAt(ctx context.Context, groupID int64, evType, stateKey string) (id.EventID, error) {
	var eventID id.EventID
	err := db.r(ctx).QueryRowContext(ctx, stateChain+`
		SELECT e.event_id FROM state_group_entries e JOIN chain ON e.group_id = chain.gid
		WHERE e.type = $2 AND e.state_key = $3 ORDER BY chain.step ASC LIMIT 1`, groupID, evType, stateKey).Scan(&eventID)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	return eventID, err
}
