package sqldb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unsafe"

	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/storage"
)

func (db *DB) CreateRoomRecord(ctx context.Context, r *storage.Room) error {
	return db.insertNew(ctx, "room "+r.RoomID.String(), `INSERT INTO rooms (room_id, room_version, creator, created_at, published)
		VALUES ($1, $2, $3, $4, $5)`,
		r.RoomID, r.RoomVersion, r.Creator, r.CreatedAt, b2i(r.Published))
}

func (db *DB) GetRoom(ctx context.Context, roomID id.RoomID) (*storage.Room, error) {
	var r storage.Room
	var pub int64
	err := db.r(ctx).QueryRowContext(ctx, `SELECT room_id, room_version, creator, created_at, published
		FROM rooms WHERE room_id = $1`, roomID).Scan(&r.RoomID, &r.RoomVersion, &r.Creator, &r.CreatedAt, &pub)
	if err != nil {
		return nil, notFound(err)
	}
	r.Published = pub != 0
	return &r, nil
}

func (db *DB) SetRoomPublished(ctx context.Context, roomID id.RoomID, published bool) error {
	return db.execOne(ctx, `UPDATE rooms SET published = $1 WHERE room_id = $2`, b2i(published), roomID)
}

func (db *DB) ListPublishedRooms(ctx context.Context) ([]id.RoomID, error) {
	return queryStrings[id.RoomID](db, ctx, `SELECT room_id FROM rooms WHERE published = 1 ORDER BY room_id`)
}

func (db *DB) ListRoomIDs(ctx context.Context) ([]id.RoomID, error) {
	return queryStrings[id.RoomID](db, ctx, `SELECT room_id FROM rooms ORDER BY room_id`)
}

// strings runs a query returning one text column.
func queryStrings[S ~string](db *DB, ctx context.Context, query string, args ...any) ([]S, error) {
	rows, err := db.r(ctx).QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	return collect(rows, func(row interface{ Scan(...any) error }) (S, error) {
		var s S
		return s, row.Scan(&s)
	})
}

const eventCols = `stream_pos, event_id, room_id, type, state_key, sender, origin_server_ts, depth, json,
	state_group, rejected, soft_failed, redacted_by, relates_to, rel_type, membership, replaces_state, outlier`

// ownedBytes is the bytes of a string that the driver made for one row's
// column and that nothing else holds, without copying them: an event's
// JSON, the largest column read, was a second allocation of its size for
// every event read (half of what a warm /sync allocated). Nothing keeps
// the string once the row is scanned, so the slice is as much the
// caller's as a copy would be.
func ownedBytes(s string) []byte {
	if s == "" {
		return []byte{}
	}
	return unsafe.Slice(unsafe.StringData(s), len(s))
}

func scanEvent(row interface{ Scan(...any) error }) (*storage.Event, error) {
	var e storage.Event
	var sk sql.NullString
	var js string
	var rej, soft, outlier int64
	if err := row.Scan(&e.StreamPos, &e.EventID, &e.RoomID, &e.Type, &sk, &e.Sender, &e.OriginServerTS, &e.Depth, &js,
		&e.StateGroup, &rej, &soft, &e.RedactedBy, &e.RelatesTo, &e.RelType, &e.Membership, &e.ReplacesState, &outlier); err != nil {
		return nil, notFound(err)
	}
	if sk.Valid {
		e.StateKey = &sk.String
	}
	e.JSON = ownedBytes(js)
	e.Rejected, e.SoftFailed, e.Outlier = rej != 0, soft != 0, outlier != 0
	return &e, nil
}

func (db *DB) PersistEvents(ctx context.Context, writes []*storage.EventWrite) error {
	if len(writes) == 0 {
		return nil
	}
	// A failed batch leaves no trace, not even positions in the caller's
	// events that the rolled back transaction never committed.
	prev := make([]int64, len(writes))
	for i, w := range writes {
		prev[i] = w.Event.StreamPos
	}
	err := db.persistEvents(ctx, writes)
	if err != nil {
		for i, w := range writes {
			w.Event.StreamPos = prev[i]
		}
	}
	return err
}

func (db *DB) persistEvents(ctx context.Context, writes []*storage.EventWrite) error {
	return db.WithTx(ctx, func(ctx context.Context) error {
		n := int64(len(writes))
		var first int64
		if history := writes[0].History; slices.ContainsFunc(writes, func(w *storage.EventWrite) bool { return w.History != history }) {
			return errors.New("persist events: a batch mixes history and timeline events")
		} else if history {
			// History counts down: the batch takes the n positions below the
			// lowest so far, in order.
			const q = `UPDATE stream_positions SET pos = pos - $1 WHERE name = 'events_history' RETURNING pos`
			if err := db.wc(ctx, q).QueryRowContext(ctx, q, n).Scan(&first); err != nil {
				return err
			}
		} else {
			var last int64
			const q = `UPDATE stream_positions SET pos = pos + $1 WHERE name = 'events' RETURNING pos`
			if err := db.wc(ctx, q).QueryRowContext(ctx, q, n).Scan(&last); err != nil {
				return err
			}
			first = last - n + 1
		}
		for i, w := range writes {
			w.Event.StreamPos = first + int64(i)
		}
		if err := db.insertStateGroups(ctx, writes); err != nil {
			return err
		}
		if err := db.insertEvents(ctx, writes); err != nil {
			return err
		}
		if err := db.indexEvents(ctx, writes); err != nil {
			return err
		}
		// After the events: a current state row takes its membership from
		// its event's row.
		if err := db.setCurrentState(ctx, writes); err != nil {
			return err
		}
		if err := db.setExtremities(ctx, writes); err != nil {
			return err
		}
		var pushRows, defaultRows, txnRows, asRows, aliasRows, pushQueueRows [][]any
		spoke := map[[2]string]int64{}
		for _, w := range writes {
			e := w.Event
			if !e.Outlier {
				k := [2]string{string(e.RoomID), string(e.Sender)}
				if pos, ok := spoke[k]; !ok || e.StreamPos > pos {
					spoke[k] = e.StreamPos
				}
			}
			if w.OutlierStateless {
				if _, err := db.exec(ctx, `UPDATE events SET outlier = 1 WHERE room_id = $1 AND state_group = 0
					AND outlier = 0 AND event_id <> $2`, e.RoomID, e.EventID); err != nil {
					return err
				}
			}
			if w.Redacts != "" {
				if err := db.SetRedactedBy(ctx, w.Redacts, e.EventID); err != nil {
					return err
				}
			}
			for _, pa := range w.PushActions {
				pushRows = append(pushRows, []any{pa.UserID, e.RoomID, e.StreamPos, pa.ThreadID, b2i(pa.Highlight), b2i(!pa.Silent)})
			}
			if d := w.PushDefault; d != nil {
				defaultRows = append(defaultRows, []any{e.RoomID, e.StreamPos, d.ThreadID, b2i(d.Highlight), e.Sender})
			}
			if t := w.Txn; t != nil {
				txnRows = append(txnRows, []any{t.UserID, t.DeviceID, t.Endpoint, t.TxnID, t.EventID, e.StreamPos})
			}
			for _, q := range w.Queued {
				asRows = append(asRows, []any{q.Kind, q.ID, e.StreamPos})
			}
			for _, q := range w.PushQueue {
				pushQueueRows = append(pushQueueRows, []any{q.UserID, e.StreamPos, string(q.Tweaks), q.QueuedAt})
			}
			if w.Alias != "" {
				row := []any{e.StreamPos, w.Alias, e.EventID, e.RoomID, "", "", "", ""}
				if m := w.Message; m != nil {
					row[4], row[5], row[6], row[7] = m.MessageID, m.PartID, m.SenderID, m.EmojiID
				}
				aliasRows = append(aliasRows, row)
			}
		}
		if err := db.insertRows(ctx, db.insertInto()+`event_push_actions (user_id, room_id, stream_pos, thread_id, highlight, notify)`,
			` ON CONFLICT DO NOTHING`, pushRows); err != nil {
			return err
		}
		if err := db.insertRows(ctx, db.insertInto()+`event_push_defaults (room_id, stream_pos, thread_id, highlight, sender)`,
			` ON CONFLICT DO NOTHING`, defaultRows); err != nil {
			return err
		}
		if err := db.insertRows(ctx, db.insertInto()+`interest_queue (kind, consumer, stream_pos)`, ` ON CONFLICT DO NOTHING`, asRows); err != nil {
			return err
		}
		if err := db.enqueuePushes(ctx, pushQueueRows); err != nil {
			return err
		}
		if err := db.insertAliases(ctx, aliasRows); err != nil {
			return err
		}
		if err := db.setRoomSenders(ctx, spoke); err != nil {
			return err
		}
		return db.insertTxns(ctx, txnRows)
	})
}

// setRoomSenders moves each sender's last position in each room forward
// (history events, at positions below the timeline's, never move it).
func (db *DB) setRoomSenders(ctx context.Context, last map[[2]string]int64) error {
	rows := make([][]any, 0, len(last))
	for k, pos := range last {
		rows = append(rows, []any{k[0], k[1], pos})
	}
	return db.insertRows(ctx, db.insertInto()+`room_senders (room_id, sender, stream_pos)`,
		` ON CONFLICT (room_id, sender) DO UPDATE SET stream_pos = excluded.stream_pos
		WHERE excluded.stream_pos > room_senders.stream_pos`, rows)
}

// insertInto begins the INSERTs of a batch of events. On SQLite, a
// statement of many rows that may fail midway (a constraint) keeps a
// journal of the pages it changes, to undo only itself (~5% of the
// server's CPU in BenchmarkSendEvents/sqlite/senders=16). A failed
// statement fails the whole batch, so OR ROLLBACK ends the transaction
// instead and needs no journal; the statements' ON CONFLICT clauses still
// skip the rows they name.
func (db *DB) insertInto() string {
	if db.dialect.Name() == "sqlite" {
		return "INSERT OR ROLLBACK INTO "
	}
	return "INSERT INTO "
}

// insertTxns records the batch's client transactions. A transaction that
// already has an event fails the batch with ErrTxnTaken: the unique key is
// what makes a send exactly once, so the sender need not look it up before
// each send (core/rooms answers a retry from the stored event then).
func (db *DB) insertTxns(ctx context.Context, rows [][]any) error {
	n, err := db.insertCounted(ctx, db.insertInto()+`event_txns (user_id, device_id, endpoint, txn_id, event_id, stream_pos)`,
		` ON CONFLICT DO NOTHING`, rows)
	if err == nil && n != int64(len(rows)) {
		err = storage.ErrTxnTaken
	}
	return err
}

// insertAliases records a batch's event aliases, with the network
// message each names (EventWrite.Message). An alias is taken once: a
// second use fails the batch with ErrConflict. Rows that conflict (here
// and in insertTxns) are skipped and counted rather than left to fail the
// statement, so that the check costs no lookup before the insert (a batch
// of thousands looked up each of its aliases first) and reads alike on
// both databases.
func (db *DB) insertAliases(ctx context.Context, rows [][]any) error {
	n, err := db.insertCounted(ctx, db.insertInto()+`event_aliases (stream_pos, alias, event_id, room_id, message_id, part_id, sender_id, emoji_id)`,
		` ON CONFLICT DO NOTHING`, rows)
	if err == nil && n != int64(len(rows)) {
		err = fmt.Errorf("%w: an event alias of the batch is taken", storage.ErrConflict)
	}
	return err
}

// insertEvents writes the batch's events with multi-row INSERTs: one round
// trip for many events matters on PostgreSQL.
func (db *DB) insertEvents(ctx context.Context, writes []*storage.EventWrite) error {
	rows := make([][]any, 0, len(writes))
	for _, w := range writes {
		e := w.Event
		if w.Replace {
			res, err := db.exec(ctx, `UPDATE events SET stream_pos = $1, state_group = $2, outlier = $3, rejected = $4,
				soft_failed = $5 WHERE event_id = $6 AND outlier = 1`, e.StreamPos, e.StateGroup, b2i(e.Outlier),
				b2i(e.Rejected), b2i(e.SoftFailed), e.EventID)
			if err != nil {
				return err
			}
			if n, err := res.RowsAffected(); err != nil {
				return err
			} else if n != 1 {
				return fmt.Errorf("replace event %s: no outlier of that ID: %w", e.EventID, storage.ErrConflict)
			}
			continue
		}
		rows = append(rows, []any{e.StreamPos, e.EventID, e.RoomID, e.Type, e.StateKey, e.Sender, e.OriginServerTS, e.Depth,
			textOf(e.JSON), e.StateGroup, b2i(e.Rejected), b2i(e.SoftFailed), e.RedactedBy, e.RelatesTo, e.RelType,
			e.Membership, e.ReplacesState, b2i(e.Outlier)})
	}
	return db.insertRows(ctx, db.insertInto()+`events (`+eventCols+`)`, "", rows)
}

// textOf is an event's JSON as the text argument of a statement, without
// a copy (a copy of each event's JSON was 4% of the bytes a send
// allocated): the drivers copy arguments into the statement as it runs,
// and nothing changes an event's JSON once built.
func textOf(b []byte) string {
	return unsafe.String(unsafe.SliceData(b), len(b))
}

// maxParams keeps a multi-row statement under SQLite's and PostgreSQL's
// limits on bound parameters.
const maxParams = 8000

// insertRows runs head VALUES (…), (…)… tail for the rows, in as few
// statements as the parameter limit allows.
func (db *DB) insertRows(ctx context.Context, head, tail string, rows [][]any) error {
	_, err := db.insertCounted(ctx, head, tail, rows)
	return err
}

// insertCounted is insertRows that also says how many rows the statements
// inserted (fewer than len(rows) where ON CONFLICT DO NOTHING skipped some).
func (db *DB) insertCounted(ctx context.Context, head, tail string, rows [][]any) (int64, error) {
	if len(rows) == 0 {
		return 0, nil
	}
	row := "(?" + strings.Repeat(", ?", len(rows[0])-1) + ")"
	return db.countValues(ctx, head+" VALUES ", row, tail, rows)
}

// insertValues runs head row, row… tail for the rows, in as few statements
// as the parameter limit allows: row is the SQL of one row with a "?" for
// each of its values, in order (a value used twice is passed twice).
func (db *DB) insertValues(ctx context.Context, head, row, tail string, rows [][]any) error {
	_, err := db.countValues(ctx, head, row, tail, rows)
	return err
}

// countValues is insertValues that also counts the rows inserted.
func (db *DB) countValues(ctx context.Context, head, row, tail string, rows [][]any) (int64, error) {
	var inserted int64
	if len(rows) == 0 {
		return 0, nil
	}
	parts := strings.Split(row, "?")
	width := len(parts) - 1
	per := max(1, maxParams/width)
	for len(rows) > 0 {
		chunk := rows[:insertChunk(len(rows), per)]
		rows = rows[len(chunk):]
		var sb strings.Builder
		sb.Grow(len(head) + len(chunk)*(len(row)+4*width) + len(tail))
		sb.WriteString(head)
		args := make([]any, 0, len(chunk)*width)
		for i, r := range chunk {
			if len(r) != width {
				return inserted, fmt.Errorf("insert: a row of %d values for %d placeholders", len(r), width)
			}
			if i > 0 {
				sb.WriteString(", ")
			}
			sb.WriteString(parts[0])
			for j, p := range parts[1:] {
				args = append(args, r[j])
				sb.WriteString(db.seqPlaceholder(len(args)))
				sb.WriteString(p)
			}
		}
		sb.WriteString(tail)
		res, err := db.execCached(ctx, sb.String(), args...)
		if err != nil {
			return inserted, err
		}
		n, err := res.RowsAffected()
		if err != nil {
			return inserted, err
		}
		inserted += n
	}
	return inserted, nil
}

// insertChunk is how many of n rows the next statement of a multi-row
// insert takes: per (the most the parameter limit allows), else the
// largest power of two in n. The statements of a table thus come in a
// few sizes, whose SQL the statement cache keeps prepared, not in one
// per batch size.
func insertChunk(n, per int) int {
	if n >= per {
		return per
	}
	c := 1
	for c*2 <= n {
		c *= 2
	}
	return c
}

// insertStateGroups writes the batch's new state groups and their entries:
// a snapshot of a big room is thousands of entries, so they go in
// multi-row statements (one round trip each on PostgreSQL), not one each.
func (db *DB) insertStateGroups(ctx context.Context, writes []*storage.EventWrite) error {
	var groups, entries [][]any
	for _, w := range writes {
		g := w.NewGroup
		if g == nil {
			continue
		}
		groups = append(groups, []any{g.GroupID, g.RoomID, g.PrevGroup, g.ChainLen})
		for _, e := range g.Entries {
			entries = append(entries, []any{g.GroupID, e.Type, e.StateKey, e.EventID})
		}
	}
	if err := db.insertRows(ctx, `INSERT INTO state_groups (group_id, room_id, prev_group, chain_len)`, ``, groups); err != nil {
		return err
	}
	return db.insertRows(ctx, `INSERT INTO state_group_entries (group_id, type, state_key, event_id)`, ``, entries)
}

// setCurrentState upserts the batch's current state entries in multi-row
// statements. Each key is written once, with the last value the batch gives
// it: PostgreSQL refuses an upsert that touches a row twice, and the last
// write is what one statement per entry left behind.
//
// The membership column is the member event's: taken from the batch when
// the event is in it, else read from its row (state laid down by state
// resolution, or a join over federation naming events stored before) —
// a lookup per row that a 10,000-member state would pay 10,000 times.
func (db *DB) setCurrentState(ctx context.Context, writes []*storage.EventWrite) error {
	type key struct {
		room          id.RoomID
		typ, stateKey string
	}
	inBatch := map[id.EventID]string{}
	for _, w := range writes {
		if w.Event.Type == "m.room.member" {
			inBatch[w.Event.EventID] = w.Event.Membership
		}
	}
	last := map[key]int{}
	var rows [][]any
	for _, w := range writes {
		for _, cs := range w.CurrentState {
			k := key{w.Event.RoomID, cs.Type, cs.StateKey}
			if i, ok := last[k]; ok {
				rows[i] = nil
			}
			last[k] = len(rows)
			rows = append(rows, []any{k.room, k.typ, k.stateKey, cs.EventID})
		}
	}
	var known, lookup [][]any
	for _, r := range rows {
		if r == nil {
			continue
		}
		if r[3].(id.EventID) == "" {
			if _, err := db.exec(ctx, `DELETE FROM current_state WHERE room_id = $1 AND type = $2 AND state_key = $3`,
				r[0], r[1], r[2]); err != nil {
				return err
			}
			continue
		}
		switch m, ok := inBatch[r[3].(id.EventID)]; {
		case r[1] != "m.room.member":
			known = append(known, append(r, ""))
		case ok:
			known = append(known, append(r, m))
		default:
			// The event ID twice: once for the row, once to look up the
			// membership.
			lookup = append(lookup, append(r, r[3]))
		}
	}
	const upsert = ` ON CONFLICT (room_id, type, state_key) DO UPDATE SET event_id = excluded.event_id, membership = excluded.membership`
	if err := db.insertValues(ctx, `INSERT INTO current_state (room_id, type, state_key, event_id, membership) VALUES `,
		`(?, ?, ?, ?, ?)`, upsert, known); err != nil {
		return err
	}
	return db.insertValues(ctx, `INSERT INTO current_state (room_id, type, state_key, event_id, membership) VALUES `,
		`(?, ?, ?, ?, COALESCE((SELECT membership FROM events WHERE event_id = ?), ''))`, upsert, lookup)
}

// setExtremities replaces the forward extremities of each room the batch
// gives a list for with the last list it gives: writing the earlier ones
// only for the later to delete them was a statement per extremity.
func (db *DB) setExtremities(ctx context.Context, writes []*storage.EventWrite) error {
	var rooms []id.RoomID
	lists := map[id.RoomID][]id.EventID{}
	for _, w := range writes {
		if w.Extremities == nil {
			continue
		}
		room := w.Event.RoomID
		if _, ok := lists[room]; !ok {
			rooms = append(rooms, room)
		}
		lists[room] = w.Extremities
	}
	var rows [][]any
	for _, room := range rooms {
		if _, err := db.execCached(ctx, `DELETE FROM forward_extremities WHERE room_id = $1`, room); err != nil {
			return err
		}
		for _, x := range lists[room] {
			rows = append(rows, []any{room, x})
		}
	}
	return db.insertRows(ctx, `INSERT INTO forward_extremities (room_id, event_id)`, ``, rows)
}

func (db *DB) ReserveStateGroupIDs(ctx context.Context, n int64) (int64, error) {
	var last int64
	err := db.w(ctx).QueryRowContext(ctx, `UPDATE stream_positions SET pos = pos + $1 WHERE name = 'state_groups'
		RETURNING pos`, n).Scan(&last)
	return last - n + 1, err
}

func (db *DB) GetStateGroup(ctx context.Context, groupID int64) (*storage.StateGroup, error) {
	g := storage.StateGroup{GroupID: groupID}
	if err := db.r(ctx).QueryRowContext(ctx, `SELECT room_id, prev_group, chain_len FROM state_groups WHERE group_id = $1`,
		groupID).Scan(&g.RoomID, &g.PrevGroup, &g.ChainLen); err != nil {
		return nil, notFound(err)
	}
	rows, err := db.r(ctx).QueryContext(ctx, `SELECT type, state_key, event_id FROM state_group_entries WHERE group_id = $1`, groupID)
	if err != nil {
		return nil, err
	}
	g.Entries, err = collect(rows, scanStateEntry)
	return &g, err
}

func scanStateEntry(row interface{ Scan(...any) error }) (storage.StateEntry, error) {
	var e storage.StateEntry
	return e, row.Scan(&e.Type, &e.StateKey, &e.EventID)
}

func (db *DB) GetEvent(ctx context.Context, eventID id.EventID) (*storage.Event, error) {
	return scanEvent(db.r(ctx).QueryRowContext(ctx, `SELECT `+eventCols+` FROM events WHERE event_id = $1`, eventID))
}

func (db *DB) GetEvents(ctx context.Context, eventIDs []id.EventID) ([]*storage.Event, error) {
	out := make([]*storage.Event, 0, len(eventIDs))
	// In parts: the state of hundreds of rooms at once is more arguments
	// than one statement may take.
	for part := range slices.Chunk(eventIDs, idsPerStatement) {
		args := make([]any, len(part))
		ph := make([]string, len(part))
		for i, e := range part {
			args[i] = e
			ph[i] = db.seqPlaceholder(i + 1)
		}
		rows, err := db.r(ctx).QueryContext(ctx, `SELECT `+eventCols+` FROM events WHERE event_id IN (`+strings.Join(ph, ",")+`)`, args...)
		if err != nil {
			return nil, err
		}
		got, err := collect(rows, scanEvent)
		if err != nil {
			return nil, err
		}
		out = append(out, got...)
	}
	return out, nil
}

// idsPerStatement is how many IDs one statement of GetEvents and TxnIDsOf
// names.
const idsPerStatement = 2000

func placeholder(n int) string { return "$" + strconv.Itoa(n) }

// seqPlaceholder is placeholder n of a statement whose placeholders all come
// in argument order. SQLite takes them as "?": it looks "$n" up as a name,
// one linear search per parameter, which made a 500-row INSERT spend most
// of its time parsing and binding.
func (db *DB) seqPlaceholder(n int) string {
	if db.dialect.Name() == "sqlite" {
		return "?"
	}
	return placeholder(n)
}

func (db *DB) ResolveEventAliases(ctx context.Context, aliases []id.EventID) (map[id.EventID]id.EventID, error) {
	return queryPairs[id.EventID, id.EventID](db, ctx, `SELECT alias, event_id FROM event_aliases WHERE 1 = 1`, "alias", aliases)
}

func (db *DB) EventAliases(ctx context.Context, eventIDs []id.EventID) (map[id.EventID]id.EventID, error) {
	// An alias row is keyed by its event's position (migration 0160).
	return queryPairs[id.EventID, id.EventID](db, ctx, `SELECT e.event_id, a.alias FROM events e
		JOIN event_aliases a ON a.stream_pos = e.stream_pos WHERE 1 = 1`, "e.event_id", eventIDs)
}

// pairs runs a two-column query for the keys (col IN keys) into a map.
func queryPairs[K, V ~string](db *DB, ctx context.Context, q, col string, keys []K) (map[K]V, error) {
	out := map[K]V{}
	for chunk := range slices.Chunk(keys, 1000) {
		cond, args := inList(col, 1, chunk)
		rows, err := db.r(ctx).QueryContext(ctx, q+cond, args...)
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			var k K
			var v V
			if err := rows.Scan(&k, &v); err != nil {
				rows.Close()
				return nil, err
			}
			out[k] = v
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

func (db *DB) RoomEvents(ctx context.Context, roomID id.RoomID, from, to int64, backwards bool, limit int) ([]*storage.Event, error) {
	q := `SELECT ` + eventCols + ` FROM events WHERE room_id = $1 AND rejected = 0 AND soft_failed = 0 AND outlier = 0`
	args := []any{roomID, from, limit}
	if backwards {
		q += ` AND stream_pos < $2`
		if to != 0 {
			q += ` AND stream_pos > $4`
			args = append(args, to)
		}
		q += ` ORDER BY stream_pos DESC LIMIT $3`
	} else {
		q += ` AND stream_pos > $2`
		if to != 0 {
			q += ` AND stream_pos < $4`
			args = append(args, to)
		}
		q += ` ORDER BY stream_pos ASC LIMIT $3`
	}
	rows, err := db.r(ctx).QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	return collect(rows, scanEvent)
}

func (db *DB) EventByTimestamp(ctx context.Context, roomID id.RoomID, ts int64, forwards bool) (*storage.Event, error) {
	q := `SELECT ` + eventCols + ` FROM events WHERE room_id = $1 AND rejected = 0 AND soft_failed = 0 AND outlier = 0 AND origin_server_ts <= $2
		ORDER BY origin_server_ts DESC, stream_pos DESC LIMIT 1`
	if forwards {
		q = `SELECT ` + eventCols + ` FROM events WHERE room_id = $1 AND rejected = 0 AND soft_failed = 0 AND outlier = 0 AND origin_server_ts >= $2
		ORDER BY origin_server_ts ASC, stream_pos ASC LIMIT 1`
	}
	return scanEvent(db.r(ctx).QueryRowContext(ctx, q, roomID, ts))
}

func (db *DB) SetRedactedBy(ctx context.Context, eventID, redactionID id.EventID) error {
	return db.WithTx(ctx, func(ctx context.Context) error {
		if _, err := db.exec(ctx, `UPDATE events SET redacted_by = $1 WHERE event_id = $2 AND redacted_by = ''`,
			redactionID, eventID); err != nil {
			return err
		}
		// Its content is gone: search must not find it by it.
		return db.unindexEvent(ctx, eventID)
	})
}

func (db *DB) Relations(ctx context.Context, eventID id.EventID, relType, eventType string, from int64, backwards bool, limit int) ([]*storage.Event, error) {
	// Only events of the parent's room relate to it: an event elsewhere that
	// names the parent's ID is not one of its relations. relates_to <> ''
	// lets the planners use events_relates, which holds relations only.
	q := `SELECT ` + eventCols + ` FROM events WHERE relates_to = $1 AND relates_to <> '' AND rejected = 0 AND soft_failed = 0 AND outlier = 0
		AND room_id = (SELECT p.room_id FROM events p WHERE p.event_id = $1)
		AND ($2 = '' OR rel_type = $2) AND ($3 = '' OR type = $3)`
	if backwards {
		q += ` AND stream_pos < $4 ORDER BY stream_pos DESC LIMIT $5`
	} else {
		q += ` AND stream_pos > $4 ORDER BY stream_pos ASC LIMIT $5`
	}
	rows, err := db.r(ctx).QueryContext(ctx, q, eventID, relType, eventType, from, limit)
	if err != nil {
		return nil, err
	}
	return collect(rows, scanEvent)
}

func (db *DB) ThreadRoots(ctx context.Context, roomID id.RoomID, from int64, limit int) ([]*storage.Event, error) {
	rows, err := db.r(ctx).QueryContext(ctx, `SELECT `+prefixed("r", eventCols)+` FROM events r
		JOIN (SELECT relates_to, MAX(stream_pos) AS latest FROM events
		      WHERE room_id = $1 AND rel_type = 'm.thread' AND rejected = 0 AND soft_failed = 0 AND outlier = 0 AND redacted_by = ''
		      GROUP BY relates_to) t
		  ON t.relates_to = r.event_id
		WHERE r.room_id = $1 AND r.rejected = 0 AND r.soft_failed = 0 AND r.outlier = 0 AND t.latest < $2
		ORDER BY t.latest DESC LIMIT $3`, roomID, from, limit)
	if err != nil {
		return nil, err
	}
	return collect(rows, scanEvent)
}

func prefixed(alias, cols string) string {
	parts := strings.Split(cols, ",")
	for i, p := range parts {
		parts[i] = alias + "." + strings.TrimSpace(p)
	}
	return strings.Join(parts, ", ")
}

func (db *DB) MaxStreamPos(ctx context.Context) (int64, error) {
	var pos int64
	err := db.r(ctx).QueryRowContext(ctx, `SELECT pos FROM stream_positions WHERE name = 'events'`).Scan(&pos)
	return pos, err
}

func (db *DB) GetForwardExtremities(ctx context.Context, roomID id.RoomID) ([]id.EventID, error) {
	return queryStrings[id.EventID](db, ctx, `SELECT event_id FROM forward_extremities WHERE room_id = $1 ORDER BY event_id`, roomID)
}

func (db *DB) CurrentState(ctx context.Context, roomID id.RoomID) ([]storage.StateEntry, error) {
	rows, err := db.r(ctx).QueryContext(ctx, `SELECT type, state_key, event_id FROM current_state WHERE room_id = $1`, roomID)
	if err != nil {
		return nil, err
	}
	return collect(rows, scanStateEntry)
}

func (db *DB) CurrentStateEvent(ctx context.Context, roomID id.RoomID, evType, stateKey string) (id.EventID, error) {
	var eventID id.EventID
	err := db.r(ctx).QueryRowContext(ctx, `SELECT event_id FROM current_state WHERE room_id = $1 AND type = $2 AND state_key = $3`,
		roomID, evType, stateKey).Scan(&eventID)
	return eventID, notFound(err)
}

func scanMember(row interface{ Scan(...any) error }) (storage.CurrentMember, error) {
	var m storage.CurrentMember
	return m, row.Scan(&m.RoomID, &m.UserID, &m.EventID, &m.Membership)
}

func inList[S ~string](col string, start int, values []S) (string, []any) {
	if len(values) == 0 {
		return "", nil
	}
	ph := make([]string, len(values))
	args := make([]any, len(values))
	for i, v := range values {
		ph[i] = placeholder(start + i)
		args[i] = v
	}
	return ` AND ` + col + ` IN (` + strings.Join(ph, ",") + `)`, args
}

func (db *DB) RoomsOfUser(ctx context.Context, userID id.UserID, memberships []string) ([]storage.CurrentMember, error) {
	cond, extra := inList("membership", 2, memberships)
	rows, err := db.r(ctx).QueryContext(ctx, `SELECT room_id, state_key, event_id, membership FROM current_state
		WHERE state_key = $1 AND type = 'm.room.member'`+cond+` ORDER BY room_id`, append([]any{userID}, extra...)...)
	if err != nil {
		return nil, err
	}
	return collect(rows, scanMember)
}

func (db *DB) RoomMembers(ctx context.Context, roomID id.RoomID, memberships []string) ([]storage.CurrentMember, error) {
	cond, extra := inList("membership", 2, memberships)
	rows, err := db.r(ctx).QueryContext(ctx, `SELECT room_id, state_key, event_id, membership FROM current_state
		WHERE room_id = $1 AND type = 'm.room.member'`+cond+` ORDER BY state_key`, append([]any{roomID}, extra...)...)
	if err != nil {
		return nil, err
	}
	return collect(rows, scanMember)
}

func (db *DB) GetEventTxn(ctx context.Context, userID id.UserID, deviceID id.DeviceID, endpoint, txnID string) (id.EventID, error) {
	var eventID id.EventID
	err := db.r(ctx).QueryRowContext(ctx, `SELECT event_id FROM event_txns
		WHERE user_id = $1 AND device_id = $2 AND endpoint = $3 AND txn_id = $4`,
		userID, deviceID, endpoint, txnID).Scan(&eventID)
	return eventID, notFound(err)
}

func (db *DB) CreateAlias(ctx context.Context, a *storage.RoomAlias) error {
	return db.insertNew(ctx, "alias "+a.Alias.String(), `INSERT INTO room_aliases (alias, room_id, creator) VALUES ($1, $2, $3)`,
		a.Alias, a.RoomID, a.Creator)
}

func (db *DB) GetAlias(ctx context.Context, alias id.RoomAlias) (*storage.RoomAlias, error) {
	var a storage.RoomAlias
	err := db.r(ctx).QueryRowContext(ctx, `SELECT alias, room_id, creator FROM room_aliases WHERE alias = $1`, alias).
		Scan(&a.Alias, &a.RoomID, &a.Creator)
	if err != nil {
		return nil, notFound(err)
	}
	return &a, nil
}

func (db *DB) DeleteAlias(ctx context.Context, alias id.RoomAlias) error {
	return db.execOne(ctx, `DELETE FROM room_aliases WHERE alias = $1`, alias)
}

func (db *DB) AliasesOfRoom(ctx context.Context, roomID id.RoomID) ([]id.RoomAlias, error) {
	return queryStrings[id.RoomAlias](db, ctx, `SELECT alias FROM room_aliases WHERE room_id = $1 ORDER BY alias`, roomID)
}

func (db *DB) RelationAggregates(ctx context.Context, parents []id.EventID) ([]storage.RelationAggregate, error) {
	if len(parents) == 0 {
		return nil, nil
	}
	cond, args := inList("relates_to", 1, parents)
	// Relations count only from the parent's own room.
	rows, err := db.r(ctx).QueryContext(ctx, `SELECT relates_to, rel_type, sender, COUNT(*), MAX(stream_pos) FROM events c
		WHERE rel_type IN ('m.thread', 'm.replace') AND relates_to <> '' AND rejected = 0 AND soft_failed = 0 AND outlier = 0 AND redacted_by = ''`+cond+`
		AND EXISTS (SELECT 1 FROM events p WHERE p.event_id = c.relates_to AND p.room_id = c.room_id)
		GROUP BY relates_to, rel_type, sender`, args...)
	if err != nil {
		return nil, err
	}
	return collect(rows, func(row interface{ Scan(...any) error }) (storage.RelationAggregate, error) {
		var a storage.RelationAggregate
		return a, row.Scan(&a.Parent, &a.RelType, &a.Sender, &a.Count, &a.LatestPos)
	})
}

func (db *DB) RelationSpan(ctx context.Context, roomID id.RoomID) (lowest, highest int64, ok bool, err error) {
	// Two index probes (events_room_relations) rather than MIN and MAX in
	// one statement, which SQLite would answer with a walk of the index.
	const q = `SELECT stream_pos FROM events WHERE room_id = $1 AND rel_type IN ('m.thread', 'm.replace')
		ORDER BY stream_pos `
	err = db.r(ctx).QueryRowContext(ctx, q+`DESC LIMIT 1`, roomID).Scan(&highest)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, 0, false, nil
	} else if err != nil {
		return 0, 0, false, err
	}
	if err = db.r(ctx).QueryRowContext(ctx, q+`ASC LIMIT 1`, roomID).Scan(&lowest); err != nil {
		return 0, 0, false, err
	}
	return lowest, highest, true, nil
}

func (db *DB) GetEventsByPos(ctx context.Context, positions []int64) ([]*storage.Event, error) {
	if len(positions) == 0 {
		return nil, nil
	}
	ph := make([]string, len(positions))
	args := make([]any, len(positions))
	for i, p := range positions {
		ph[i] = db.seqPlaceholder(i + 1)
		args[i] = p
	}
	rows, err := db.r(ctx).QueryContext(ctx, `SELECT `+eventCols+` FROM events WHERE stream_pos IN (`+strings.Join(ph, ",")+`)`, args...)
	if err != nil {
		return nil, err
	}
	return collect(rows, scanEvent)
}

func (db *DB) TxnIDsOf(ctx context.Context, userID id.UserID, deviceID id.DeviceID, positions []int64) (map[id.EventID]string, error) {
	txns, err := db.TxnsOf(ctx, positions)
	if err != nil {
		return nil, err
	}
	out := map[id.EventID]string{}
	for e, t := range txns {
		if t.UserID == userID && t.DeviceID == deviceID {
			out[e] = t.TxnID
		}
	}
	return out, nil
}

func (db *DB) TxnsOf(ctx context.Context, positions []int64) (map[id.EventID]storage.EventTxn, error) {
	out := map[id.EventID]storage.EventTxn{}
	for part := range slices.Chunk(positions, idsPerStatement) {
		// By position (an event has at most one transaction): filtering on
		// the user and device in SQL let SQLite walk all of the device's
		// transactions through the primary key instead.
		ph := make([]string, len(part))
		args := make([]any, len(part))
		for i, p := range part {
			ph[i], args[i] = db.seqPlaceholder(i+1), p
		}
		rows, err := db.r(ctx).QueryContext(ctx, `SELECT event_id, txn_id, user_id, device_id FROM event_txns
			WHERE stream_pos IN (`+strings.Join(ph, ",")+`)`, args...)
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			var t storage.EventTxn
			if err := rows.Scan(&t.EventID, &t.TxnID, &t.UserID, &t.DeviceID); err != nil {
				rows.Close()
				return nil, err
			}
			out[t.EventID] = t
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
