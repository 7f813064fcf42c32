package sqldb

import (
	"context"

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
	err := db.r(ctx).QueryRowContext(ctx, `SELECT txn_id, last_pos FROM appservice_txns WHERE as_id = $1`, asID).
		Scan(&t.TxnID, &t.LastPos)
	if err != nil {
		return nil, notFound(err)
	}
	return &t, nil
}

func (db *DB) OpenTxn(ctx context.Context, asID string, lastPos int64) (*storage.AppServiceTxn, error) {
	t := &storage.AppServiceTxn{AppServiceID: asID, LastPos: lastPos}
	err := db.WithTx(ctx, func(ctx context.Context) error {
		var err error
		if t.TxnID, err = db.nextStreamPos(ctx, "appservice_txns"); err != nil {
			return err
		}
		_, err = db.exec(ctx, `INSERT INTO appservice_txns (as_id, txn_id, last_pos) VALUES ($1, $2, $3)
			ON CONFLICT (as_id) DO UPDATE SET txn_id = excluded.txn_id, last_pos = excluded.last_pos`, asID, t.TxnID, lastPos)
		return err
	})
	return t, err
}

func (db *DB) AckTxn(ctx context.Context, t *storage.AppServiceTxn) error {
	return db.WithTx(ctx, func(ctx context.Context) error {
		if _, err := db.exec(ctx, `DELETE FROM appservice_queue WHERE as_id = $1 AND stream_pos <= $2`,
			t.AppServiceID, t.LastPos); err != nil {
			return err
		}
		_, err := db.exec(ctx, `DELETE FROM appservice_txns WHERE as_id = $1 AND txn_id = $2`, t.AppServiceID, t.TxnID)
		return err
	})
}
