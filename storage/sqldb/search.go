package sqldb

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/storage"
)

// The full-text index (migration 0017) is the one place where the engines
// need different SQL: an FTS5 table on SQLite, a tsvector with a GIN index
// on PostgreSQL. Both are keyed by stream position and joined with events
// for everything else, so only the inner match differs.

// On SQLite the index is written behind the timeline: an FTS5 insert
// writes a new segment (its structure, averages, leaf, index and size
// records: ~7 pages of the ~28 a one-message commit wrote), whatever the
// number of rows, so it pays to insert many at once. The events above the
// position stream_positions 'search_indexed' are not in it yet; a commit
// that finds searchBatch of them indexes them all in its transaction, and
// a search first indexes what is left (searchUpToDate), so that a message
// is found as soon as its send is answered. Events are read back from
// their rows at that time: a redaction or a purge meanwhile is seen, and a
// crash loses nothing (the rows and the position commit together).
// History (negative positions) and PostgreSQL, whose GIN index gathers
// insertions by itself, are indexed in the batch's transaction.

// searchBatch is how many events a commit leaves to a later one's index.
const searchBatch = 64

// searchDeferred reports whether a batch's index rows wait (see above).
func (db *DB) searchDeferred(writes []*storage.EventWrite) bool {
	return db.dialect.Name() == "sqlite" && !writes[0].History
}

// indexEvents adds the searchable text of a batch's new events to the
// index, in the batch's transaction; on SQLite, that of the timeline's
// last events once enough have waited.
func (db *DB) indexEvents(ctx context.Context, writes []*storage.EventWrite) error {
	if db.searchDeferred(writes) {
		if last := writes[len(writes)-1].Event.StreamPos; last-db.searchIndexed.Load() >= searchBatch {
			return db.catchUpSearch(ctx)
		}
		return nil
	}
	var rows [][]any
	for _, w := range writes {
		e := w.Event
		if e.Rejected || e.Outlier || e.RedactedBy != "" {
			continue
		}
		if text := indexableText(storage.SearchableText(e)); text != "" {
			rows = append(rows, []any{e.StreamPos, text})
		}
	}
	if len(rows) == 0 {
		return nil
	}
	if db.dialect.Name() == "sqlite" {
		return db.insertRows(ctx, `INSERT INTO event_search (rowid, text)`, ``, rows)
	}
	// Each row's text made a vector in SQL.
	return db.insertValues(ctx, `INSERT INTO event_search (stream_pos, vector) VALUES `, `(?, to_tsvector('simple', ?))`, ``, rows)
}

// catchUpSearch indexes the timeline's events that wait for it, in the
// context's transaction or its own.
func (db *DB) catchUpSearch(ctx context.Context) error {
	return db.WithTx(ctx, func(ctx context.Context) error {
		var from, to int64
		const q = `SELECT pos FROM stream_positions WHERE name = $1`
		if err := db.wc(ctx, q).QueryRowContext(ctx, q, "search_indexed").Scan(&from); err != nil {
			return fmt.Errorf("search index position: %w", err)
		}
		if err := db.wc(ctx, q).QueryRowContext(ctx, q, "events").Scan(&to); err != nil {
			return err
		}
		for at := from; at < to; {
			const page = 1000
			// Only what SearchableText and the checks below read, of the
			// types it indexes (whole rows were a sixteenth of the bytes a
			// send into a busy room allocated).
			rows, err := db.wc(ctx, searchableSelect).QueryContext(ctx, searchableSelect, at, to)
			if err != nil {
				return err
			}
			evs, err := collect(rows, scanSearchable)
			if err != nil {
				return err
			}
			if len(evs) == 0 {
				break
			}
			var index [][]any
			for _, e := range evs {
				if e.Rejected || e.Outlier || e.RedactedBy != "" {
					continue
				}
				if text := indexableText(storage.SearchableText(e)); text != "" {
					index = append(index, []any{e.StreamPos, text})
				}
			}
			if err := db.insertRows(ctx, `INSERT INTO event_search (rowid, text)`, ``, index); err != nil {
				return err
			}
			at = evs[len(evs)-1].StreamPos
			if len(evs) < page {
				break
			}
		}
		if to > from {
			const up = `UPDATE stream_positions SET pos = $1 WHERE name = 'search_indexed'`
			if _, err := db.execCached(ctx, up, to); err != nil {
				return err
			}
		}
		db.searchIndexed.Store(to) // a hint: a rollback only makes the next catch-up come later
		return nil
	})
}

// searchableSelect is a page of the events catchUpSearch indexes.
var searchableSelect = `SELECT stream_pos, type, state_key, json, rejected, outlier, redacted_by FROM events
	WHERE stream_pos > $1 AND stream_pos <= $2 AND type IN ('` + strings.Join(storage.SearchableTypes, "', '") + `')
	ORDER BY stream_pos LIMIT 1000`

// scanSearchable reads the columns searchableSelect selects.
func scanSearchable(row interface{ Scan(...any) error }) (*storage.Event, error) {
	var e storage.Event
	var sk sql.NullString
	var js string
	var rej, outlier int64
	if err := row.Scan(&e.StreamPos, &e.Type, &sk, &js, &rej, &outlier, &e.RedactedBy); err != nil {
		return nil, err
	}
	if sk.Valid {
		e.StateKey = &sk.String
	}
	e.JSON = ownedBytes(js)
	e.Rejected, e.Outlier = rej != 0, outlier != 0
	return &e, nil
}

// searchUpToDate indexes, before a search on SQLite, the events that wait
// for it: a search finds every event whose send was answered before.
func (db *DB) searchUpToDate(ctx context.Context) error {
	if db.dialect.Name() != "sqlite" {
		return nil
	}
	var behind bool
	if err := db.r(ctx).QueryRowContext(ctx, `SELECT (SELECT pos FROM stream_positions WHERE name = 'events') >
		(SELECT pos FROM stream_positions WHERE name = 'search_indexed')`).Scan(&behind); err != nil {
		return fmt.Errorf("search index position: %w", err)
	}
	if !behind {
		return nil
	}
	return db.catchUpSearch(ctx)
}

// indexableText is text as both engines take it: valid UTF-8 without NUL
// (which PostgreSQL text cannot hold).
func indexableText(s string) string {
	return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", " ")
}

// unindexEvent takes an event out of the index (it was redacted).
func (db *DB) unindexEvent(ctx context.Context, eventID id.EventID) error {
	_, err := db.exec(ctx, `DELETE FROM event_search WHERE `+db.searchCol()+` IN (SELECT stream_pos FROM events WHERE event_id = $1)`, eventID)
	return err
}

// searchRoomChunk bounds the rooms of one query (two parameters each at most).
const searchRoomChunk = 500

func (db *DB) SearchEvents(ctx context.Context, q *storage.EventSearch) ([]storage.SearchHit, error) {
	if q.Limit <= 0 {
		return nil, errors.New("search events: no limit")
	}
	out := []storage.SearchHit{}
	if len(q.Terms) == 0 || len(q.Types) == 0 {
		return out, nil
	}
	if err := db.searchUpToDate(ctx); err != nil {
		return nil, err
	}
	order := ` ORDER BY e.stream_pos DESC`
	if q.ByRank {
		order = ` ORDER BY m.rank DESC, e.stream_pos DESC`
	}
	// Each chunk of rooms gives its best hits; the best of those are the
	// best of all.
	for rooms := range slices.Chunk(q.Rooms, searchRoomChunk) {
		from, args := db.searchFrom(q, rooms)
		args = append(args, q.Limit)
		rows, err := db.r(ctx).QueryContext(ctx, `SELECT `+prefixed("e", eventCols)+`, m.rank`+from+order+
			` LIMIT `+db.numPlaceholder(len(args)), args...)
		if err != nil {
			return nil, err
		}
		hits, err := collect(rows, func(row interface{ Scan(...any) error }) (storage.SearchHit, error) {
			var h storage.SearchHit
			var err error
			h.Event, err = scanEvent(rankScanner{row, &h.Rank})
			return h, err
		})
		if err != nil {
			return nil, err
		}
		out = append(out, hits...)
	}
	slices.SortFunc(out, func(a, b storage.SearchHit) int {
		if q.ByRank && a.Rank != b.Rank {
			return cmp.Compare(b.Rank, a.Rank)
		}
		return cmp.Compare(b.Event.StreamPos, a.Event.StreamPos)
	})
	return out[:min(len(out), q.Limit)], nil
}

// rankScanner scans a row of event columns followed by the rank.
type rankScanner struct {
	row  interface{ Scan(...any) error }
	rank *float64
}

func (r rankScanner) Scan(dest ...any) error { return r.row.Scan(append(dest, r.rank)...) }

func (db *DB) CountSearchEvents(ctx context.Context, q *storage.EventSearch) ([]storage.SearchCount, error) {
	var out []storage.SearchCount
	if len(q.Terms) == 0 || len(q.Types) == 0 {
		return out, nil
	}
	if err := db.searchUpToDate(ctx); err != nil {
		return nil, err
	}
	for rooms := range slices.Chunk(q.Rooms, searchRoomChunk) {
		from, args := db.searchFrom(q, rooms)
		rows, err := db.r(ctx).QueryContext(ctx, `SELECT e.room_id, e.sender, e.state_group, COUNT(*)`+from+
			` GROUP BY e.room_id, e.sender, e.state_group`, args...)
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			var c storage.SearchCount
			if err := rows.Scan(&c.RoomID, &c.Sender, &c.StateGroup, &c.Count); err != nil {
				rows.Close()
				return nil, err
			}
			out = append(out, c)
		}
		if err := rows.Close(); err != nil {
			return nil, err
		}
		if err := rows.Err(); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// searchFrom is the FROM and WHERE clauses of a search in some of its
// rooms: m is the match (stream_pos, rank), e its event.
func (db *DB) searchFrom(q *storage.EventSearch, rooms []storage.SearchRoom) (string, []any) {
	var args []any
	arg := func(v any) string {
		args = append(args, v)
		return db.numPlaceholder(len(args))
	}
	list := func(values []any) string {
		ph := make([]string, len(values))
		for i, v := range values {
			ph[i] = arg(v)
		}
		return strings.Join(ph, ", ")
	}
	// match is the matching events' (stream_pos, rank).
	var match string
	if db.dialect.Name() == "sqlite" {
		// bm25 is lower for better matches.
		match = fmt.Sprintf(`SELECT rowid AS stream_pos, -bm25(event_search) AS rank FROM event_search
			WHERE event_search MATCH %s`, arg(fts5Query(q.Terms)))
	} else {
		match = fmt.Sprintf(`SELECT s.stream_pos, CAST(ts_rank(s.vector, query) AS DOUBLE PRECISION) AS rank
			FROM event_search s, to_tsquery('simple', %s) query WHERE s.vector @@ query`, arg(tsQuery(q.Terms)))
	}
	var sb strings.Builder
	sb.WriteString(` FROM (` + match + `) m JOIN events e ON e.stream_pos = m.stream_pos
		WHERE e.rejected = 0 AND e.soft_failed = 0 AND e.outlier = 0 AND e.redacted_by = ''`)
	fmt.Fprintf(&sb, ` AND e.type IN (%s)`, list(anys(q.Types)))
	// Events are found through the index, then read by stream position.
	// SQLite would rather walk events_room_stream once per room for each
	// event found (a search of 500 rooms took 60 times as long); "+" keeps
	// room_id out of its choice of index.
	roomCol := `e.room_id`
	if db.dialect.Name() == "sqlite" {
		roomCol = `+e.room_id`
	}
	var unbounded []any
	var conds []string
	for _, r := range rooms {
		if r.Before == 0 {
			unbounded = append(unbounded, r.RoomID)
		} else {
			conds = append(conds, fmt.Sprintf(`(%s = %s AND e.stream_pos < %s)`, roomCol, arg(r.RoomID), arg(r.Before)))
		}
	}
	if len(unbounded) > 0 {
		conds = append(conds, roomCol+` IN (`+list(unbounded)+`)`)
	}
	if len(conds) == 0 {
		conds = []string{`1 = 0`}
	}
	sb.WriteString(` AND (` + strings.Join(conds, ` OR `) + `)`)
	if q.Senders != nil {
		if len(q.Senders) == 0 {
			sb.WriteString(` AND 1 = 0`)
		} else {
			fmt.Fprintf(&sb, ` AND e.sender IN (%s)`, list(anys(q.Senders)))
		}
	}
	if len(q.NotSenders) > 0 {
		fmt.Fprintf(&sb, ` AND e.sender NOT IN (%s)`, list(anys(q.NotSenders)))
	}
	if q.Until != 0 {
		fmt.Fprintf(&sb, ` AND e.stream_pos <= %s`, arg(q.Until))
	}
	if c := q.After; c != nil {
		if q.ByRank {
			// The cursor's rank as the index gives it now: bm25 moves with
			// every event indexed, the ranks of a query all together, so a
			// rank from an earlier page would resume at the wrong place. The
			// one kept in the cursor serves when the event is gone.
			pos := arg(c.StreamPos)
			r := fmt.Sprintf(`COALESCE((SELECT c.rank FROM (%s) c WHERE c.stream_pos = %s), %s)`, match, pos, arg(c.Rank))
			fmt.Fprintf(&sb, ` AND (m.rank < %s OR (m.rank = %s AND e.stream_pos < %s))`, r, r, pos)
		} else {
			fmt.Fprintf(&sb, ` AND e.stream_pos < %s`, arg(c.StreamPos))
		}
	}
	return sb.String(), args
}

// numPlaceholder is placeholder n of a statement that may use one twice
// or out of order. SQLite takes "?n" (by index) rather than "$n", which it
// looks up by name, one linear search per parameter: a search of hundreds
// of rooms spent most of its time binding.
func (db *DB) numPlaceholder(n int) string {
	if db.dialect.Name() == "sqlite" {
		return "?" + strconv.Itoa(n)
	}
	return placeholder(n)
}

// fts5Query makes every term a prefix that must be found: "term"* … (FTS5
// ANDs the phrases of a query; quotes make each a string, whatever it holds).
func fts5Query(terms []string) string {
	parts := make([]string, len(terms))
	for i, t := range terms {
		parts[i] = `"` + strings.ReplaceAll(t, `"`, `""`) + `"*`
	}
	return strings.Join(parts, " ")
}

// tsQuery is the to_tsquery form of the same query: 'term':* & … (quoted
// lexemes, quotes and backslashes escaped).
func tsQuery(terms []string) string {
	esc := strings.NewReplacer(`\`, `\\`, `'`, `''`)
	parts := make([]string, len(terms))
	for i, t := range terms {
		parts[i] = `'` + esc.Replace(t) + `':*`
	}
	return strings.Join(parts, " & ")
}

// anys is values as query arguments.
func anys[S ~string](values []S) []any {
	out := make([]any, len(values))
	for i, v := range values {
		out[i] = v
	}
	return out
}
