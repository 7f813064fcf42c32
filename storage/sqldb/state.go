package sqldb

import (
	"context"
	"database/sql"
	"errors"
	"strings"

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
	stateChain = stateChainCTE + ` SELECT gid FROM chain ORDER BY step`
)

// chainOf returns the groups of groupID's chain, nearest first.
func (db *DB) chainOf(ctx context.Context, groupID int64) ([]int64, error) {
	rows, err := db.r(ctx).QueryContext(ctx, stateChain, groupID)
	if err != nil {
		return nil, err
	}
	return collect(rows, func(r scanner) (int64, error) {
		var g int64
		return g, r.Scan(&g)
	})
}

// chainStatement is the most groups one statement of StateAt reads.
const chainStatement = 64

// groupEntries reads the entries of groups (at most chainStatement) in one
// statement: a UNION ALL of one primary key lookup per group. Joined to the
// chain, or as "group_id IN (…)", the groups' entries were read by a scan of
// all of state_group_entries whenever the planner guessed that cheaper
// (SQLite always did for the join without statistics; PostgreSQL did for
// both with ~20,000 rows, guessing the chain long and the snapshot small):
// 48 ms a lookup at 500,000 entries where the index takes 0.1 ms. Each
// branch of the union has one group, which no planner reads by a scan. The
// list is padded to a power of two with a group that does not exist, so
// that chains of any length make few distinct statements for the statement
// cache.
func (db *DB) groupEntries(ctx context.Context, groups []int64, fn func(group int64, e storage.StateEntry)) error {
	n := 1
	for n < len(groups) {
		n *= 2
	}
	terms := make([]string, n)
	args := make([]any, n)
	for i := range n {
		terms[i] = `SELECT group_id, type, state_key, event_id FROM state_group_entries WHERE group_id = ` + db.seqPlaceholder(i+1)
		args[i] = int64(-1)
		if i < len(groups) {
			args[i] = groups[i]
		}
	}
	rows, err := db.r(ctx).QueryContext(ctx, strings.Join(terms, " UNION ALL "), args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var g int64
		var e storage.StateEntry
		if err := rows.Scan(&g, &e.Type, &e.StateKey, &e.EventID); err != nil {
			return err
		}
		fn(g, e)
	}
	return rows.Err()
}

func (db *DB) StateAt(ctx context.Context, groupID int64) ([]storage.StateEntry, error) {
	chain, err := db.chainOf(ctx, groupID)
	if err != nil || len(chain) == 0 {
		return nil, err
	}
	step := make(map[int64]int, len(chain))
	for i, g := range chain {
		step[g] = i
	}
	// The entry from the group nearest the start of the chain wins.
	type entry struct {
		step  int
		event id.EventID
	}
	merged := map[[2]string]entry{}
	for start := 0; start < len(chain); start += chainStatement {
		err := db.groupEntries(ctx, chain[start:min(start+chainStatement, len(chain))], func(g int64, e storage.StateEntry) {
			key := [2]string{e.Type, e.StateKey}
			if old, ok := merged[key]; !ok || step[g] < old.step {
				merged[key] = entry{step[g], e.EventID}
			}
		})
		if err != nil {
			return nil, err
		}
	}
	out := make([]storage.StateEntry, 0, len(merged))
	for k, v := range merged {
		if v.event != "" {
			out = append(out, storage.StateEntry{Type: k[0], StateKey: k[1], EventID: v.event})
		}
	}
	return out, nil
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
