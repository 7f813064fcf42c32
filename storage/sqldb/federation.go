package sqldb

import (
	"context"
	"fmt"
	"strings"

	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/storage"
)

func (db *DB) DestinationSent(ctx context.Context, destination string, lastPos, now int64) error {
	_, err := db.exec(ctx, `INSERT INTO federation_destinations (destination, last_success_pos, last_success_ts)
		VALUES ($1, $2, $3)
		ON CONFLICT (destination) DO UPDATE SET retry_last_ts = 0, retry_interval = 0, failure_ts = 0,
			last_success_pos = CASE WHEN excluded.last_success_pos > federation_destinations.last_success_pos
				THEN excluded.last_success_pos ELSE federation_destinations.last_success_pos END,
			last_success_ts = excluded.last_success_ts`, destination, lastPos, now)
	return err
}

func (db *DB) DestinationFailed(ctx context.Context, destination string, now, retryInterval int64) error {
	_, err := db.exec(ctx, `INSERT INTO federation_destinations (destination, retry_last_ts, retry_interval, failure_ts)
		VALUES ($1, $2, $3, $2)
		ON CONFLICT (destination) DO UPDATE SET retry_last_ts = excluded.retry_last_ts,
			retry_interval = excluded.retry_interval,
			failure_ts = CASE WHEN federation_destinations.failure_ts = 0 THEN excluded.failure_ts
				ELSE federation_destinations.failure_ts END`, destination, now, retryInterval)
	return err
}

func (db *DB) CatchUpQueue(ctx context.Context, c storage.Consumer) (int64, error) {
	suffix := ":" + c.ID
	// The latest queued position of each room is found once (a derived
	// table), not once per queued row: a dead server's queue may be long.
	res, err := db.exec(ctx, `DELETE FROM interest_queue WHERE kind = $1 AND consumer = $2 AND stream_pos IN (
		SELECT q.stream_pos FROM interest_queue q
		JOIN events e ON e.stream_pos = q.stream_pos
		JOIN (SELECT e2.room_id AS room_id, MAX(q2.stream_pos) AS last_pos FROM interest_queue q2
			JOIN events e2 ON e2.stream_pos = q2.stream_pos
			WHERE q2.kind = $1 AND q2.consumer = $2 GROUP BY e2.room_id) latest ON latest.room_id = e.room_id
		WHERE q.kind = $1 AND q.consumer = $2 AND q.stream_pos < latest.last_pos
			AND NOT (e.type = 'm.room.member' AND e.state_key IS NOT NULL
				AND length(e.state_key) > length(CAST($3 AS TEXT))
				AND substr(e.state_key, length(e.state_key) - length(CAST($3 AS TEXT)) + 1) = $3))`,
		c.Kind, c.ID, suffix)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

func (db *DB) ResetDestination(ctx context.Context, destination string) error {
	return db.execOne(ctx, `UPDATE federation_destinations SET retry_last_ts = 0, retry_interval = 0, failure_ts = 0
		WHERE destination = $1`, destination)
}

const destinationColumns = `destination, retry_last_ts, retry_interval, failure_ts, last_success_pos, last_success_ts`

func scanDestination(row scanner) (*storage.Destination, error) {
	var d storage.Destination
	return &d, row.Scan(&d.Destination, &d.RetryLastTS, &d.RetryInterval, &d.FailureTS, &d.LastSuccessPos, &d.LastSuccessTS)
}

func (db *DB) GetDestination(ctx context.Context, destination string) (*storage.Destination, error) {
	d, err := scanDestination(db.r(ctx).QueryRowContext(ctx, `SELECT `+destinationColumns+`
		FROM federation_destinations WHERE destination = $1`, destination))
	if err != nil {
		return nil, notFound(err)
	}
	return d, nil
}

// destinationOrder maps the orders to their columns (never user text in SQL).
var destinationOrder = map[storage.DestinationOrder]string{
	storage.OrderDestination:    "destination",
	storage.OrderRetryLastTS:    "retry_last_ts",
	storage.OrderRetryInterval:  "retry_interval",
	storage.OrderFailureTS:      "failure_ts",
	storage.OrderLastSuccessPos: "last_success_pos",
}

// likeContains is a LIKE pattern matching s anywhere, its wildcards escaped.
func likeContains(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)
	return "%" + r.Replace(strings.ToLower(s)) + "%"
}

func (db *DB) ListDestinations(ctx context.Context, q storage.DestinationQuery) ([]*storage.Destination, int, error) {
	col, ok := destinationOrder[q.OrderBy]
	if !ok {
		col = "destination"
	}
	dir := "ASC"
	if q.Backwards {
		dir = "DESC"
	}
	where, args := "", []any{}
	if q.Search != "" {
		where = `WHERE LOWER(destination) LIKE $1 ESCAPE '\'`
		args = append(args, likeContains(q.Search))
	}
	var total int
	if err := db.r(ctx).QueryRowContext(ctx, `SELECT COUNT(*) FROM federation_destinations `+where, args...).Scan(&total); err != nil {
		return nil, 0, err
	}
	n := len(args)
	rows, err := db.r(ctx).QueryContext(ctx, fmt.Sprintf(`SELECT %s FROM federation_destinations %s
		ORDER BY %s %s, destination %s LIMIT $%d OFFSET $%d`, destinationColumns, where, col, dir, dir, n+1, n+2),
		append(args, q.Limit, q.From)...)
	if err != nil {
		return nil, 0, err
	}
	out, err := collect(rows, scanDestination)
	return out, total, err
}

func (db *DB) QueueConsumers(ctx context.Context, kind string) ([]string, error) {
	rows, err := db.r(ctx).QueryContext(ctx, `SELECT DISTINCT consumer FROM interest_queue WHERE kind = $1
		UNION SELECT consumer FROM interest_txns WHERE kind = $1
		UNION SELECT consumer FROM interest_cursors WHERE kind = $1 ORDER BY 1`, kind)
	if err != nil {
		return nil, err
	}
	return collect(rows, func(row scanner) (string, error) {
		var c string
		return c, row.Scan(&c)
	})
}

func (db *DB) QueueDepths(ctx context.Context, kind string, limit int) (map[string]int64, int64, error) {
	var total int64
	if err := db.r(ctx).QueryRowContext(ctx, `SELECT COUNT(*) FROM interest_queue WHERE kind = $1`, kind).Scan(&total); err != nil {
		return nil, 0, err
	}
	rows, err := db.r(ctx).QueryContext(ctx, `SELECT consumer, COUNT(*) FROM interest_queue WHERE kind = $1
		GROUP BY consumer ORDER BY COUNT(*) DESC, consumer LIMIT $2`, kind, limit)
	if err != nil {
		return nil, 0, err
	}
	type depth struct {
		consumer string
		n        int64
	}
	ds, err := collect(rows, func(row scanner) (depth, error) {
		var d depth
		return d, row.Scan(&d.consumer, &d.n)
	})
	out := make(map[string]int64, len(ds))
	for _, d := range ds {
		out[d.consumer] = d.n
	}
	return out, total, err
}

func (db *DB) ToDeviceForServer(ctx context.Context, server string, since, upto int64, limit int) ([]*storage.ToDeviceMessage, error) {
	// Server names hold no LIKE wildcard but '_' in odd names: the
	// pattern may match more, the loop below keeps the server's users.
	rows, err := db.r(ctx).QueryContext(ctx, `SELECT stream_pos, user_id, device_id, sender, type, content FROM to_device
		WHERE stream_pos > $1 AND stream_pos <= $2 AND user_id LIKE $3 ORDER BY stream_pos LIMIT $4`,
		since, upto, "%:"+server, limit)
	if err != nil {
		return nil, err
	}
	msgs, err := collect(rows, scanToDevice)
	if err != nil {
		return nil, err
	}
	out := msgs[:0]
	for _, m := range msgs {
		if m.UserID.Homeserver() == server {
			out = append(out, m)
		}
	}
	return out, nil
}

func (db *DB) DeviceListChangesRange(ctx context.Context, since, upto int64, limit int) ([]*storage.DeviceListChange, error) {
	rows, err := db.r(ctx).QueryContext(ctx, `SELECT stream_pos, user_id, device_id FROM device_list_stream
		WHERE stream_pos > $1 AND stream_pos <= $2 ORDER BY stream_pos LIMIT $3`, since, upto, limit)
	if err != nil {
		return nil, err
	}
	return collect(rows, func(row scanner) (*storage.DeviceListChange, error) {
		var c storage.DeviceListChange
		return &c, row.Scan(&c.StreamPos, &c.UserID, &c.DeviceID)
	})
}

func (db *DB) PrevDeviceChange(ctx context.Context, user id.UserID, before int64) (int64, error) {
	var pos int64
	err := db.r(ctx).QueryRowContext(ctx, `SELECT COALESCE(MAX(stream_pos), 0) FROM device_list_stream
		WHERE user_id = $1 AND stream_pos < $2 AND device_id <> ''`, user, before).Scan(&pos)
	return pos, err
}
