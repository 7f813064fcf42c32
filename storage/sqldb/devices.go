package sqldb

import (
	"context"

	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/storage"
)

const deviceCols = `user_id, device_id, display_name, last_seen_ip, last_seen_ts, created_at`

func scanDevice(row interface{ Scan(...any) error }) (*storage.Device, error) {
	var d storage.Device
	if err := row.Scan(&d.UserID, &d.DeviceID, &d.DisplayName, &d.LastSeenIP, &d.LastSeenTS, &d.CreatedAt); err != nil {
		return nil, notFound(err)
	}
	return &d, nil
}

// UpsertDevice inserts the device; an existing one is kept as it is, last
// seen included, apart from an empty display name being filled in.
func (db *DB) UpsertDevice(ctx context.Context, d *storage.Device) error {
	_, err := db.exec(ctx, `INSERT INTO devices (`+deviceCols+`) VALUES ($1, $2, $3, $4, $5, $6)
		ON CONFLICT (user_id, device_id) DO UPDATE SET
			display_name = CASE WHEN devices.display_name = '' THEN excluded.display_name ELSE devices.display_name END`,
		d.UserID, d.DeviceID, d.DisplayName, d.LastSeenIP, d.LastSeenTS, d.CreatedAt)
	return err
}

func (db *DB) CreateDevice(ctx context.Context, d *storage.Device) (bool, error) {
	res, err := db.exec(ctx, `INSERT INTO devices (`+deviceCols+`) VALUES ($1, $2, $3, $4, $5, $6)
		ON CONFLICT (user_id, device_id) DO NOTHING`,
		d.UserID, d.DeviceID, d.DisplayName, d.LastSeenIP, d.LastSeenTS, d.CreatedAt)
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

func (db *DB) GetDevice(ctx context.Context, userID id.UserID, deviceID id.DeviceID) (*storage.Device, error) {
	return scanDevice(db.r(ctx).QueryRowContext(ctx,
		`SELECT `+deviceCols+` FROM devices WHERE user_id = $1 AND device_id = $2`, userID, deviceID))
}

func (db *DB) ListDevices(ctx context.Context, userID id.UserID) ([]*storage.Device, error) {
	rows, err := db.r(ctx).QueryContext(ctx,
		`SELECT `+deviceCols+` FROM devices WHERE user_id = $1 ORDER BY device_id`, userID)
	if err != nil {
		return nil, err
	}
	return collect(rows, scanDevice)
}

func (db *DB) SetDeviceDisplayName(ctx context.Context, userID id.UserID, deviceID id.DeviceID, name string) error {
	return db.execOne(ctx, `UPDATE devices SET display_name = $1 WHERE user_id = $2 AND device_id = $3`,
		name, userID, deviceID)
}

func (db *DB) SetDeviceLastSeen(ctx context.Context, userID id.UserID, deviceID id.DeviceID, ip string, ts int64) error {
	_, err := db.exec(ctx, `UPDATE devices SET last_seen_ip = $1, last_seen_ts = $2 WHERE user_id = $3 AND device_id = $4`,
		ip, ts, userID, deviceID)
	return err
}

func (db *DB) DeleteDevices(ctx context.Context, userID id.UserID, deviceIDs []id.DeviceID) error {
	return db.WithTx(ctx, func(ctx context.Context) error {
		for _, dev := range deviceIDs {
			if err := db.DeleteDeviceTokens(ctx, userID, dev); err != nil {
				return err
			}
			if _, err := db.exec(ctx, `DELETE FROM devices WHERE user_id = $1 AND device_id = $2`, userID, dev); err != nil {
				return err
			}
			if err := db.deletePushersWhere(ctx, `user_id = $1 AND device_id = $2`, userID, dev); err != nil {
				return err
			}
		}
		return nil
	})
}

func (db *DB) DeleteAllDevices(ctx context.Context, userID id.UserID, exceptDeviceID id.DeviceID) error {
	return db.WithTx(ctx, func(ctx context.Context) error {
		for _, q := range []string{
			`DELETE FROM access_tokens WHERE user_id = $1 AND device_id <> $2`,
			`DELETE FROM refresh_tokens WHERE user_id = $1 AND device_id <> $2`,
			`DELETE FROM devices WHERE user_id = $1 AND device_id <> $2`,
		} {
			if _, err := db.exec(ctx, q, userID, exceptDeviceID); err != nil {
				return err
			}
		}
		// Their pushers go with them; those no device set (an
		// appservice's) stay.
		return db.deletePushersWhere(ctx, `user_id = $1 AND device_id <> $2 AND device_id <> ''`, userID, exceptDeviceID)
	})
}

func (db *DB) DeleteDeviceTokens(ctx context.Context, userID id.UserID, deviceID id.DeviceID) error {
	return db.WithTx(ctx, func(ctx context.Context) error {
		for _, q := range []string{
			`DELETE FROM access_tokens WHERE user_id = $1 AND device_id = $2`,
			`DELETE FROM refresh_tokens WHERE user_id = $1 AND device_id = $2`,
		} {
			if _, err := db.exec(ctx, q, userID, deviceID); err != nil {
				return err
			}
		}
		return nil
	})
}
