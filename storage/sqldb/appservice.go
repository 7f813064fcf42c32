package sqldb

import (
	"context"
	"encoding/json"

	"github.com/tributary-hs/tributary/storage"
)

func (db *DB) PendingFor(ctx context.Context, c storage.Consumer, limit int) ([]int64, error) {
	rows, err := db.r(ctx).QueryContext(ctx, `SELECT stream_pos FROM interest_queue WHERE kind = $1 AND consumer = $2
		ORDER BY stream_pos LIMIT $3`, c.Kind, c.ID, limit)
	if err != nil {
		return nil, err
	}
	return collect(rows, func(row interface{ Scan(...any) error }) (int64, error) {
		var p int64
		return p, row.Scan(&p)
	})
}

func (db *DB) TxnInFlight(ctx context.Context, c storage.Consumer) (*storage.QueueTxn, error) {
	t := storage.QueueTxn{Consumer: c}
	var extra string
	err := db.r(ctx).QueryRowContext(ctx, `SELECT txn_id, last_pos, extra FROM interest_txns
		WHERE kind = $1 AND consumer = $2`, c.Kind, c.ID).Scan(&t.TxnID, &t.LastPos, &extra)
	if err != nil {
		return nil, notFound(err)
	}
	if extra != "" {
		if err := json.Unmarshal([]byte(extra), &t.Extra); err != nil {
			return nil, err
		}
	}
	return &t, nil
}

// positionsText stores a position list as JSON ("" for nil).
func positionsText(p []int64) (string, error) {
	if p == nil {
		return "", nil
	}
	raw, err := json.Marshal(p)
	return string(raw), err
}

func (db *DB) OpenTxn(ctx context.Context, c storage.Consumer, lastPos int64, extra []int64) (*storage.QueueTxn, error) {
	t := &storage.QueueTxn{Consumer: c, LastPos: lastPos, Extra: extra}
	raw, err := positionsText(extra)
	if err != nil {
		return nil, err
	}
	err = db.WithTx(ctx, func(ctx context.Context) error {
		counter := c.Kind + "_txns"
		if _, err := db.exec(ctx, `INSERT INTO stream_positions (name, pos) VALUES ($1, 0) ON CONFLICT DO NOTHING`,
			counter); err != nil {
			return err
		}
		var err error
		if t.TxnID, err = db.nextStreamPos(ctx, counter); err != nil {
			return err
		}
		_, err = db.exec(ctx, `INSERT INTO interest_txns (kind, consumer, txn_id, last_pos, extra) VALUES ($1, $2, $3, $4, $5)
			ON CONFLICT (kind, consumer) DO UPDATE SET txn_id = excluded.txn_id, last_pos = excluded.last_pos,
			extra = excluded.extra`, c.Kind, c.ID, t.TxnID, lastPos, raw)
		return err
	})
	return t, err
}

func (db *DB) QueueCursor(ctx context.Context, c storage.Consumer) ([]int64, error) {
	var raw string
	if err := db.r(ctx).QueryRowContext(ctx, `SELECT positions FROM interest_cursors WHERE kind = $1 AND consumer = $2`,
		c.Kind, c.ID).Scan(&raw); err != nil {
		return nil, notFound(err)
	}
	var p []int64
	return p, json.Unmarshal([]byte(raw), &p)
}

func (db *DB) SetQueueCursor(ctx context.Context, c storage.Consumer, positions []int64) error {
	raw, err := positionsText(positions)
	if err != nil {
		return err
	}
	_, err = db.exec(ctx, `INSERT INTO interest_cursors (kind, consumer, positions) VALUES ($1, $2, $3)
		ON CONFLICT (kind, consumer) DO UPDATE SET positions = excluded.positions`, c.Kind, c.ID, raw)
	return err
}

func (db *DB) AckTxn(ctx context.Context, t *storage.QueueTxn) error {
	c := t.Consumer
	return db.WithTx(ctx, func(ctx context.Context) error {
		if _, err := db.exec(ctx, `DELETE FROM interest_queue WHERE kind = $1 AND consumer = $2 AND stream_pos <= $3`,
			c.Kind, c.ID, t.LastPos); err != nil {
			return err
		}
		if _, err := db.exec(ctx, `DELETE FROM interest_txns WHERE kind = $1 AND consumer = $2 AND txn_id = $3`,
			c.Kind, c.ID, t.TxnID); err != nil {
			return err
		}
		if t.Extra == nil {
			return nil
		}
		return db.SetQueueCursor(ctx, c, t.Extra)
	})
}

func (db *DB) ReserveTxnIDs(ctx context.Context, kind string, n int64) (int64, error) {
	var last int64
	err := db.WithTx(ctx, func(ctx context.Context) error {
		counter := kind + "_txns"
		if _, err := db.exec(ctx, `INSERT INTO stream_positions (name, pos) VALUES ($1, 0) ON CONFLICT DO NOTHING`,
			counter); err != nil {
			return err
		}
		return db.w(ctx).QueryRowContext(ctx, `UPDATE stream_positions SET pos = pos + $1 WHERE name = $2 RETURNING pos`,
			n, counter).Scan(&last)
	})
	return last - n + 1, err
}
