package sqldb

import (
	"context"
	"database/sql"
	"errors"

	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/storage"
)

// stateChainCTE is the delta chain of the group $1: the group itself at
// step 0, then each previous group, back to the snapshot. The chain is short
// (core/rooms writes a snapshot every 64 state events) and each step an
// index lookup.
const (
	stateChainCTE = `WITH RECURSIVE chain(gid, step) AS (
		SELECT group_id, 0 FROM state_groups WHERE group_id = $1
		UNION ALL
		SELECT sg.prev_group, chain.step + 1 FROM state_groups sg JOIN chain ON sg.group_id = chain.gid
		WHERE sg.prev_group <> 0
	)`
)

// StateAt reads the chain and its entries in one statement, as StatesAt.
func (db *DB) StateAt(ctx context.Context, groupID int64) ([]storage.StateEntry, error) {
	states, err := db.StatesAt(ctx, []int64{groupID})
	if err != nil || len(states[groupID]) == 0 {
		return nil, err
	}
	return states[groupID], nil
}

// stateEntryFound selects, after stateChainCTE, the event ID of key ($2,
// $3) nearest the start of the chain.
const stateEntryFound = `SELECT ev FROM (
			SELECT chain.step, (SELECT e.event_id FROM state_group_entries e
				WHERE e.group_id = chain.gid AND e.type = $2 AND e.state_key = $3) AS ev
			FROM chain
		) AS found WHERE ev IS NOT NULL ORDER BY step LIMIT 1`

func (db *DB) StateEventAt(ctx context.Context, groupID int64, evType, stateKey string) (*storage.Event, error) {
	return scanEvent(db.r(ctx).QueryRowContext(ctx, stateChainCTE+` SELECT `+eventCols+` FROM events
		WHERE event_id = (`+stateEntryFound+`)`, groupID, evType, stateKey))
}

// StateEntryAt reads the key in each group of the chain with a subquery per
// group, nearest first, and stops at the first group that has it: each
// subquery is one lookup of the primary key, a plan neither engine can
// turn into a scan of the table (as a join may become; see inGroups).
func (db *DB) StateEntryAt(ctx context.Context, groupID int64, evType, stateKey string) (id.EventID, error) {
	var eventID id.EventID
	err := db.r(ctx).QueryRowContext(ctx, stateChainCTE+` `+stateEntryFound, groupID, evType, stateKey).Scan(&eventID)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	return eventID, err
}
