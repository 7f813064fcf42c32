package sqldb

import (
	"cmp"
	"context"
	"database/sql"
	"fmt"
	"math"
	"slices"
	"strings"

	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/storage"
)

// Reads of one fact for many rooms in one statement, for the first /sync of
// an account in many rooms (one round trip instead of one per room). Each
// room is looked up through its own index probe, by a correlated subquery
// over a VALUES list of the rooms: an IN list on the big table would let a
// planner read it whole when the rooms hold most of it.

// batchRooms is how many rooms one statement names.
const batchRooms = 500

// roomValues is "WITH r(room_id) AS (VALUES ($start),…)" for rooms, with
// their arguments.
func roomValues(start int, rooms []id.RoomID) (string, []any) {
	values := make([]string, len(rooms))
	args := make([]any, len(rooms))
	for i, r := range rooms {
		values[i], args[i] = "("+placeholder(start+i)+")", r
	}
	return `WITH r(room_id) AS (VALUES ` + strings.Join(values, ",") + `) `, args
}

// inChunks calls f with rooms batchRooms at a time.
func inChunks(rooms []id.RoomID, f func([]id.RoomID) error) error {
	for len(rooms) > 0 {
		part := rooms[:min(len(rooms), batchRooms)]
		rooms = rooms[len(part):]
		if err := f(part); err != nil {
			return err
		}
	}
	return nil
}

func (db *DB) GetRooms(ctx context.Context, ids []id.RoomID) ([]*storage.Room, error) {
	var out []*storage.Room
	err := inChunks(ids, func(part []id.RoomID) error {
		cond, args := inList("room_id", 1, part)
		rows, err := db.r(ctx).QueryContext(ctx, `SELECT room_id, room_version, creator, created_at, published
			FROM rooms WHERE 1 = 1`+cond, args...)
		if err != nil {
			return err
		}
		got, err := collect(rows, func(row scanner) (*storage.Room, error) {
			var r storage.Room
			var pub int64
			err := row.Scan(&r.RoomID, &r.RoomVersion, &r.Creator, &r.CreatedAt, &pub)
			r.Published = pub != 0
			return &r, err
		})
		out = append(out, got...)
		return err
	})
	return out, err
}

func (db *DB) RemoteJoinedRooms(ctx context.Context, rooms []id.RoomID, local string) ([]id.RoomID, error) {
	var out []id.RoomID
	err := inChunks(rooms, func(part []id.RoomID) error {
		with, args := roomValues(2, part)
		// A scalar subquery with LIMIT, not EXISTS: PostgreSQL turns
		// EXISTS into a join that may read current_state whole.
		got, err := queryStrings[id.RoomID](db, ctx, with+`SELECT r.room_id FROM r WHERE (
			SELECT 1 FROM current_state b WHERE b.room_id = r.room_id AND b.type = 'm.room.member'
			AND b.membership = 'join' AND b.state_key NOT LIKE $1 LIMIT 1) = 1`, append([]any{"%:" + local}, args...)...)
		out = append(out, got...)
		return err
	})
	return out, err
}

func (db *DB) RelationSpans(ctx context.Context, rooms []id.RoomID) (map[id.RoomID][2]int64, error) {
	out := map[id.RoomID][2]int64{}
	err := inChunks(rooms, func(part []id.RoomID) error {
		with, args := roomValues(1, part)
		// Two index probes a room (events_room_relations), as RelationSpan.
		const probe = `(SELECT stream_pos FROM events e WHERE e.room_id = r.room_id
			AND e.rel_type IN ('m.thread', 'm.replace') ORDER BY e.stream_pos `
		rows, err := db.r(ctx).QueryContext(ctx, with+`SELECT r.room_id, `+probe+`ASC LIMIT 1), `+probe+`DESC LIMIT 1) FROM r`, args...)
		if err != nil {
			return err
		}
		type span struct {
			room     id.RoomID
			low, top sql.NullInt64
		}
		got, err := collect(rows, func(row scanner) (span, error) {
			var s span
			return s, row.Scan(&s.room, &s.low, &s.top)
		})
		for _, s := range got {
			if s.low.Valid && s.top.Valid {
				out[s.room] = [2]int64{s.low.Int64, s.top.Int64}
			}
		}
		return err
	})
	return out, err
}

func (db *DB) ReadPositionsIn(ctx context.Context, rooms []id.RoomID, userID id.UserID) (map[id.RoomID]storage.ReadMarks, error) {
	out := make(map[id.RoomID]storage.ReadMarks, len(rooms))
	for _, r := range rooms {
		out[r] = storage.ReadMarks{Read: map[string]int64{}}
	}
	err := inChunks(rooms, func(part []id.RoomID) error {
		with, args := roomValues(2, part)
		// As ReadPositions: the receipts per thread, then (thread NULL) the
		// user's own last event, per room.
		rows, err := db.r(ctx).QueryContext(ctx, with+`SELECT rc.room_id, rc.thread_id, MAX(e.stream_pos) FROM r
			JOIN receipts rc ON rc.room_id = r.room_id AND rc.user_id = $1 AND rc.receipt_type IN ('m.read', 'm.read.private')
			JOIN events e ON e.event_id = rc.event_id
			GROUP BY rc.room_id, rc.thread_id
			UNION ALL
			SELECT r.room_id, NULL, (SELECT o.stream_pos FROM room_senders o
				WHERE o.room_id = r.room_id AND o.sender = $1) FROM r`, append([]any{userID}, args...)...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var room id.RoomID
			var thread sql.NullString
			var pos sql.NullInt64
			if err := rows.Scan(&room, &thread, &pos); err != nil {
				return err
			}
			m := out[room]
			if thread.Valid {
				m.Read[thread.String] = pos.Int64
			} else {
				m.Own = pos.Int64
			}
			out[room] = m
		}
		return rows.Err()
	})
	return out, err
}

// summaryHeroes is how many heroes a summary names.
const summaryHeroes = 5

func (db *DB) RoomSummaries(ctx context.Context, rooms []id.RoomID, user id.UserID) (map[id.RoomID]*storage.RoomSummary, error) {
	out := make(map[id.RoomID]*storage.RoomSummary, len(rooms))
	err := inChunks(rooms, func(part []id.RoomID) error {
		with, args := roomValues(2, part)
		const members = `FROM current_state b WHERE b.room_id = r.room_id AND b.type = 'm.room.member' AND b.membership `
		cols := []string{"r.room_id", "(SELECT COUNT(*) " + members + "= 'join')", "(SELECT COUNT(*) " + members + "= 'invite')"}
		// Each hero is one step along the primary key (room, type, user).
		for i := range summaryHeroes {
			cols = append(cols, fmt.Sprintf("(SELECT b.state_key %s IN ('join', 'invite') AND b.state_key <> $1 ORDER BY b.state_key LIMIT 1 OFFSET %d)", members, i))
		}
		rows, err := db.r(ctx).QueryContext(ctx, with+`SELECT `+strings.Join(cols, ", ")+` FROM r`, append([]any{user}, args...)...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var room id.RoomID
			sum := &storage.RoomSummary{}
			heroes := make([]sql.NullString, summaryHeroes)
			dest := []any{&room, &sum.Joined, &sum.Invited}
			for i := range heroes {
				dest = append(dest, &heroes[i])
			}
			if err := rows.Scan(dest...); err != nil {
				return err
			}
			for _, h := range heroes {
				if h.Valid {
					sum.Heroes = append(sum.Heroes, id.UserID(h.String))
				}
			}
			out[room] = sum
		}
		return rows.Err()
	})
	return out, err
}

func (db *DB) PushActionCountsIn(ctx context.Context, userID id.UserID, after map[id.RoomID]int64, upto int64) (map[id.RoomID][]storage.UnreadCount, error) {
	rooms := make([]id.RoomID, 0, len(after))
	for r := range after {
		rooms = append(rooms, r)
	}
	slices.Sort(rooms)
	out := map[id.RoomID][]storage.UnreadCount{}
	err := inChunks(rooms, func(part []id.RoomID) error {
		values := make([]string, len(part))
		args := []any{userID, upto}
		for i, r := range part {
			values[i] = "(" + placeholder(len(args)+1) + ", CAST(" + placeholder(len(args)+2) + " AS BIGINT))"
			args = append(args, r, after[r])
		}
		// As PushActionCounts, per room, each room's rows read through the
		// tables' primary keys from the room: SQLite loops over r, the outer
		// table, by itself; PostgreSQL is told to (LATERAL).
		from := func(table, alias, cond string) string {
			if db.dialect.Name() == "postgres" {
				return `FROM r CROSS JOIN LATERAL (SELECT * FROM ` + table + ` ` + alias + ` WHERE ` + cond + `) ` + alias
			}
			return `FROM r JOIN ` + table + ` ` + alias + ` ON ` + cond
		}
		defaults := `SELECT r.room_id, d.thread_id, d.highlight ` +
			from("event_push_defaults", "d", `d.room_id = r.room_id AND d.stream_pos > r.after AND d.stream_pos <= $2`) + `
			WHERE d.sender <> $1 AND NOT EXISTS (SELECT 1 FROM event_push_actions x
				WHERE x.user_id = $1 AND x.room_id = r.room_id AND x.stream_pos = d.stream_pos)`
		own := `SELECT r.room_id, a.thread_id, a.highlight ` +
			from("event_push_actions", "a", `a.user_id = $1 AND a.room_id = r.room_id AND a.stream_pos > r.after AND a.stream_pos <= $2 AND a.notify = 1`)
		rows, err := db.r(ctx).QueryContext(ctx, `WITH r(room_id, after) AS (VALUES `+strings.Join(values, ",")+`)
			SELECT room_id, thread_id, COUNT(*), COALESCE(CAST(SUM(highlight) AS BIGINT), 0)
			FROM (`+defaults+` UNION ALL `+own+`) n GROUP BY room_id, thread_id ORDER BY room_id, thread_id`, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var room id.RoomID
			var c storage.UnreadCount
			if err := rows.Scan(&room, &c.ThreadID, &c.Notifications, &c.Highlights); err != nil {
				return err
			}
			out[room] = append(out[room], c)
		}
		return rows.Err()
	})
	return out, err
}

// lateral is "FROM r CROSS JOIN <table> alias ON cond", the rows of table
// that match each row of r read through table's index from that row:
// SQLite loops over the left table of a CROSS JOIN by itself, PostgreSQL
// is told to (LATERAL), where a hash join would read table whole; OFFSET
// 0 keeps it from flattening the subquery into that join.
func (db *DB) lateral(r, table, alias, cond string) string {
	if db.dialect.Name() == "postgres" {
		return `FROM ` + r + ` CROSS JOIN LATERAL (SELECT * FROM ` + table + ` ` + alias + ` WHERE ` + cond + ` OFFSET 0) ` + alias
	}
	return `FROM ` + r + ` CROSS JOIN ` + table + ` ` + alias + ` ON ` + cond
}

func (db *DB) LatestRoomEvents(ctx context.Context, spans []storage.RoomSpan, limit int) (map[id.RoomID][]*storage.Event, error) {
	// Each room's newest events by a backward walk of its part of
	// events_room_stream; the LIMIT stops it. SQLite has no LATERAL: the
	// subquery gives each room's positions, each then one lookup of the
	// primary key.
	from := `FROM r CROSS JOIN events e ON e.stream_pos IN (SELECT x.stream_pos FROM events x
		WHERE x.room_id = r.room_id AND x.stream_pos < r.before AND x.stream_pos > r.after
		AND x.rejected = 0 AND x.soft_failed = 0 AND x.outlier = 0 ORDER BY x.stream_pos DESC LIMIT $1)`
	if db.dialect.Name() == "postgres" {
		from = `FROM r CROSS JOIN LATERAL (SELECT * FROM events x WHERE x.room_id = r.room_id AND x.stream_pos < r.before
			AND x.stream_pos > r.after AND x.rejected = 0 AND x.soft_failed = 0 AND x.outlier = 0
			ORDER BY x.stream_pos DESC LIMIT $1) e`
	}
	return db.eventsInSpans(ctx, spans, []any{limit}, from, true)
}

func (db *DB) StateEventsIn(ctx context.Context, spans []storage.RoomSpan) (map[id.RoomID][]*storage.Event, error) {
	// Each room's stretch of events_room_stream, one range a room: a
	// lateral subquery on PostgreSQL, the list first on SQLite (which
	// keeps the order of a CROSS JOIN).
	accepted := func(t string) string {
		return t + `.room_id = r.room_id AND ` + t + `.stream_pos < r.before AND ` + t + `.stream_pos > r.after AND ` +
			t + `.state_key IS NOT NULL AND ` + t + `.rejected = 0 AND ` + t + `.soft_failed = 0 AND ` +
			t + `.outlier IN (0, ` + purgedOutlier + `)`
	}
	from := `FROM r CROSS JOIN events e ON ` + accepted("e")
	if db.dialect.Name() == "postgres" {
		from = `FROM r CROSS JOIN LATERAL (SELECT * FROM events x WHERE ` + accepted("x") + `) e`
	}
	return db.eventsInSpans(ctx, spans, nil, from, false)
}

// eventsInSpans reads the events "SELECT e.* from" finds for the spans,
// given as the rows of r(room_id, before, after) (an After of 0 is the
// lowest position: history batches go below 0), batchRooms spans a
// statement, and groups them by room in stream order (newest first if
// desc). lead are the statement's arguments before the spans'.
func (db *DB) eventsInSpans(ctx context.Context, spans []storage.RoomSpan, lead []any, from string, desc bool) (map[id.RoomID][]*storage.Event, error) {
	out := make(map[id.RoomID][]*storage.Event, len(spans))
	for part := range slices.Chunk(spans, batchRooms) {
		values := make([]string, len(part))
		args := slices.Clone(lead)
		for i, s := range part {
			after := s.After
			if after == 0 {
				after = math.MinInt64
			}
			values[i] = "(" + placeholder(len(args)+1) + ", CAST(" + placeholder(len(args)+2) + " AS BIGINT), CAST(" +
				placeholder(len(args)+3) + " AS BIGINT))"
			args = append(args, s.RoomID, s.Before, after)
		}
		rows, err := db.r(ctx).QueryContext(ctx, `WITH r(room_id, before, after) AS (VALUES `+strings.Join(values, ",")+`)
			SELECT `+prefixed("e", eventCols)+` `+from, args...)
		if err != nil {
			return nil, err
		}
		got, err := collect(rows, scanEvent)
		if err != nil {
			return nil, err
		}
		for _, e := range got {
			out[e.RoomID] = append(out[e.RoomID], e)
		}
	}
	for _, evs := range out {
		slices.SortFunc(evs, func(a, b *storage.Event) int {
			if desc {
				return cmp.Compare(b.StreamPos, a.StreamPos)
			}
			return cmp.Compare(a.StreamPos, b.StreamPos)
		})
	}
	return out, nil
}

// chainEntries reads the state of many groups at once: each group's delta
// chain (as stateChainCTE, one primary key lookup a step) and the entries
// of every group of it, those of key alone when key is set. fn gets each
// entry with the group it is state of and its step along that group's
// chain (0: the group's own). The entries are read group by group from
// the chain (lateral): joined to the chain as the planner liked, or as
// "group_id IN (…)", they were read by a scan of all of
// state_group_entries whenever the planner guessed that cheaper (SQLite
// always did without statistics; PostgreSQL did with ~20,000 rows,
// guessing the chain long and the snapshot small): 48 ms a lookup at
// 500,000 entries where the index takes 0.1 ms.
func (db *DB) chainEntries(ctx context.Context, groups []int64, key *[2]string, fn func(origin int64, step int, e storage.StateEntry)) error {
	for part := range slices.Chunk(groups, batchRooms) {
		var args []any
		cond := `e.group_id = c.gid`
		if key != nil {
			args = append(args, key[0], key[1])
			cond += ` AND e.type = $1 AND e.state_key = $2`
		}
		values := make([]string, len(part))
		for i, g := range part {
			args = append(args, g)
			values[i] = "(CAST(" + placeholder(len(args)) + " AS BIGINT))"
		}
		rows, err := db.r(ctx).QueryContext(ctx, `WITH RECURSIVE o(origin) AS (VALUES `+strings.Join(values, ",")+`),
			c(origin, gid, prev, step) AS (
				SELECT o.origin, o.origin, (SELECT sg.prev_group FROM state_groups sg WHERE sg.group_id = o.origin), 0 FROM o
				UNION ALL
				SELECT c.origin, c.prev, (SELECT sg.prev_group FROM state_groups sg WHERE sg.group_id = c.prev), c.step + 1
				FROM c WHERE c.prev <> 0
			)
			SELECT c.origin, c.step, e.type, e.state_key, e.event_id `+db.lateral("c", "state_group_entries", "e", cond), args...)
		if err != nil {
			return err
		}
		for rows.Next() {
			var origin int64
			var step int
			var e storage.StateEntry
			if err := rows.Scan(&origin, &step, &e.Type, &e.StateKey, &e.EventID); err != nil {
				rows.Close()
				return err
			}
			fn(origin, step, e)
		}
		if err := rows.Close(); err != nil {
			return err
		}
		if err := rows.Err(); err != nil {
			return err
		}
	}
	return nil
}

func (db *DB) StatesAt(ctx context.Context, groups []int64) (map[int64][]storage.StateEntry, error) {
	type entry struct {
		step  int
		event id.EventID
	}
	merged := map[int64]map[[2]string]entry{}
	err := db.chainEntries(ctx, groups, nil, func(origin int64, step int, e storage.StateEntry) {
		m := merged[origin]
		if m == nil {
			m = map[[2]string]entry{}
			merged[origin] = m
		}
		// The entry from the group nearest the start of the chain wins.
		k := [2]string{e.Type, e.StateKey}
		if old, ok := m[k]; !ok || step < old.step {
			m[k] = entry{step, e.EventID}
		}
	})
	if err != nil {
		return nil, err
	}
	out := make(map[int64][]storage.StateEntry, len(groups))
	for _, g := range groups {
		m := merged[g]
		state := make([]storage.StateEntry, 0, len(m))
		for k, v := range m {
			if v.event != "" { // "" unsets the key
				state = append(state, storage.StateEntry{Type: k[0], StateKey: k[1], EventID: v.event})
			}
		}
		out[g] = state
	}
	return out, nil
}

func (db *DB) StateEntriesAt(ctx context.Context, groups []int64, evType, stateKey string) (map[int64]id.EventID, error) {
	type found struct {
		step  int
		event id.EventID
	}
	nearest := map[int64]found{}
	err := db.chainEntries(ctx, groups, &[2]string{evType, stateKey}, func(origin int64, step int, e storage.StateEntry) {
		if old, ok := nearest[origin]; !ok || step < old.step {
			nearest[origin] = found{step, e.EventID}
		}
	})
	out := make(map[int64]id.EventID, len(nearest))
	for g, f := range nearest {
		if f.event != "" {
			out[g] = f.event
		}
	}
	return out, err
}
