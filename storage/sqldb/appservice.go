package sqldb

import (
	"context"
	"encoding/json"

	"github.com/tributary-hs/tributary/storage"
)

func (db *DB) PendingForAppService(ctx context.Context, asID string, limit int) ([]int64, error) {
	rows, err := db.r(ctx).QueryContext(ctx, `SELECT stream_pos FROM appservice_queue WHERE as_id = $1
		ORDER BY stream_pos LIMIT $2`, asID, limit)
	if err != nil {
		return nil, err
	}
	return collect(rows, func(row interface{ Scan(...any) error }) (int64, error) {
		var p int64
		return p, row.Scan(&p)
	})
}

func (db *DB) TxnInFlight(ctx context.Context, asID string) (*storage.AppServiceTxn, error) {
	t := storage.AppServiceTxn{AppServiceID: asID}
	var eph string
	err := db.r(ctx).QueryRowContext(ctx, `SELECT txn_id, last_pos, ephemeral FROM appservice_txns WHERE as_id = $1`, asID).
		Scan(&t.TxnID, &t.LastPos, &eph)
	if err != nil {
		return nil, notFound(err)
	}
	if eph != "" {
		if err := json.Unmarshal([]byte(eph), &t.Ephemeral); err != nil {
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

func (db *DB) OpenTxn(ctx context.Context, asID string, lastPos int64, ephemeral []int64) (*storage.AppServiceTxn, error) {
	t := &storage.AppServiceTxn{AppServiceID: asID, LastPos: lastPos, Ephemeral: ephemeral}
	eph, err := positionsText(ephemeral)
	if err != nil {
		return nil, err
	}
	err = db.WithTx(ctx, func(ctx context.Context) error {
		var err error
		if t.TxnID, err = db.nextStreamPos(ctx, "appservice_txns"); err != nil {
			return err
		}
		_, err = db.exec(ctx, `INSERT INTO appservice_txns (as_id, txn_id, last_pos, ephemeral) VALUES ($1, $2, $3, $4)
			ON CONFLICT (as_id) DO UPDATE SET txn_id = excluded.txn_id, last_pos = excluded.last_pos,
			ephemeral = excluded.ephemeral`, asID, t.TxnID, lastPos, eph)
		return err
	})
	return t, err
}

func (db *DB) AppServiceCursor(ctx context.Context, asID string) ([]int64, error) {
	var raw string
	if err := db.r(ctx).QueryRowContext(ctx, `SELECT positions FROM appservice_cursors WHERE as_id = $1`, asID).
		Scan(&raw); err != nil {
		return nil, notFound(err)
	}
	var p []int64
	return p, json.Unmarshal([]byte(raw), &p)
}

func (db *DB) SetAppServiceCursor(ctx context.Context, asID string, positions []int64) error {
	raw, err := positionsText(positions)
	if err != nil {
		return err
	}
	_, err = db.exec(ctx, `INSERT INTO appservice_cursors (as_id, positions) VALUES ($1, $2)
		ON CONFLICT (as_id) DO UPDATE SET positions = excluded.positions`, asID, raw)
	return err
}

func (db *DB) AckTxn(ctx context.Context, t *storage.AppServiceTxn) error {
	return db.WithTx(ctx, func(ctx context.Context) error {
		if _, err := db.exec(ctx, `DELETE FROM appservice_queue WHERE as_id = $1 AND stream_pos <= $2`,
			t.AppServiceID, t.LastPos); err != nil {
			return err
		}
		if _, err := db.exec(ctx, `DELETE FROM appservice_txns WHERE as_id = $1 AND txn_id = $2`,
			t.AppServiceID, t.TxnID); err != nil {
			return err
		}
		if t.Ephemeral == nil {
			return nil
		}
		return db.SetAppServiceCursor(ctx, t.AppServiceID, t.Ephemeral)
	})
}
