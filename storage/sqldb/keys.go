package sqldb

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"

	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/storage"
)

type scanner = interface{ Scan(...any) error }

func (db *DB) PutDeviceKeys(ctx context.Context, userID id.UserID, deviceID id.DeviceID, keyJSON json.RawMessage) error {
	_, err := db.exec(ctx, `INSERT INTO device_keys (user_id, device_id, key_json) VALUES ($1, $2, $3)
		ON CONFLICT (user_id, device_id) DO UPDATE SET key_json = excluded.key_json`, userID, deviceID, string(keyJSON))
	return err
}

func (db *DB) DeviceKeysOf(ctx context.Context, userIDs []id.UserID) ([]*storage.DeviceKeys, error) {
	if len(userIDs) == 0 {
		return nil, nil
	}
	cond, args := inList("user_id", 1, userIDs)
	rows, err := db.r(ctx).QueryContext(ctx, `SELECT user_id, device_id, key_json FROM device_keys WHERE 1=1`+cond+
		` ORDER BY user_id, device_id`, args...)
	if err != nil {
		return nil, err
	}
	return collect(rows, func(row scanner) (*storage.DeviceKeys, error) {
		var k storage.DeviceKeys
		var js string
		err := row.Scan(&k.UserID, &k.DeviceID, &js)
		k.KeyJSON = json.RawMessage(js)
		return &k, err
	})
}

func (db *DB) DeleteDeviceKeys(ctx context.Context, userID id.UserID, deviceIDs []id.DeviceID) error {
	return db.WithTx(ctx, func(ctx context.Context) error {
		for _, dev := range deviceIDs {
			for _, q := range []string{
				`DELETE FROM device_keys WHERE user_id = $1 AND device_id = $2`,
				`DELETE FROM one_time_keys WHERE user_id = $1 AND device_id = $2`,
				`DELETE FROM fallback_keys WHERE user_id = $1 AND device_id = $2`,
				`DELETE FROM key_signatures WHERE target_user_id = $1 AND target_key_id = $2`,
			} {
				if _, err := db.exec(ctx, q, userID, dev); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

func (db *DB) PutOneTimeKeys(ctx context.Context, keys []*storage.OneTimeKey) error {
	return db.WithTx(ctx, func(ctx context.Context) error {
		// The keys of this call are one upload: they share the next upload
		// number of their device, above every key the device has left.
		type device struct {
			user id.UserID
			dev  id.DeviceID
		}
		seqs := map[device]int64{}
		for _, k := range keys {
			d := device{k.UserID, k.DeviceID}
			if _, ok := seqs[d]; ok {
				continue
			}
			var seq int64
			if err := db.w(ctx).QueryRowContext(ctx, `SELECT COALESCE(MAX(upload_seq), 0) + 1 FROM one_time_keys
				WHERE user_id = $1 AND device_id = $2`, k.UserID, k.DeviceID).Scan(&seq); err != nil {
				return err
			}
			seqs[d] = seq
		}
		for _, k := range keys {
			var existing string
			err := db.w(ctx).QueryRowContext(ctx, `SELECT key_json FROM one_time_keys
				WHERE user_id = $1 AND device_id = $2 AND algorithm = $3 AND key_id = $4`,
				k.UserID, k.DeviceID, k.Algorithm, k.KeyID).Scan(&existing)
			if err == nil {
				if existing != string(k.KeyJSON) {
					return fmt.Errorf("%w: one-time key %s:%s already exists", storage.ErrConflict, k.Algorithm, k.KeyID)
				}
				continue
			}
			if err = notFound(err); err != storage.ErrNotFound {
				return err
			}
			if _, err := db.exec(ctx, `INSERT INTO one_time_keys (user_id, device_id, algorithm, key_id, key_json, upload_seq)
				VALUES ($1, $2, $3, $4, $5, $6)`, k.UserID, k.DeviceID, k.Algorithm, k.KeyID, string(k.KeyJSON),
				seqs[device{k.UserID, k.DeviceID}]); err != nil {
				return err
			}
		}
		return nil
	})
}

func (db *DB) CountOneTimeKeys(ctx context.Context, userID id.UserID, deviceID id.DeviceID) (map[string]int64, error) {
	rows, err := db.r(ctx).QueryContext(ctx, `SELECT algorithm, COUNT(*) FROM one_time_keys
		WHERE user_id = $1 AND device_id = $2 GROUP BY algorithm`, userID, deviceID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]int64{}
	for rows.Next() {
		var alg string
		var n int64
		if err := rows.Scan(&alg, &n); err != nil {
			return nil, err
		}
		out[alg] = n
	}
	return out, rows.Err()
}

func (db *DB) ClaimOneTimeKey(ctx context.Context, userID id.UserID, deviceID id.DeviceID, algorithm string) (*storage.OneTimeKey, error) {
	var k *storage.OneTimeKey
	err := db.WithTx(ctx, func(ctx context.Context) error {
		// The oldest upload's keys first (the spec); within one upload the
		// order is free, key_id makes it stable. A concurrent claim
		// (PostgreSQL) may take the key between the SELECT and the
		// DELETE: then the next key is tried.
		for range 10 {
			k = &storage.OneTimeKey{UserID: userID, DeviceID: deviceID, Algorithm: algorithm}
			var js string
			if err := db.w(ctx).QueryRowContext(ctx, `SELECT key_id, key_json FROM one_time_keys
				WHERE user_id = $1 AND device_id = $2 AND algorithm = $3 ORDER BY upload_seq, key_id LIMIT 1`,
				userID, deviceID, algorithm).Scan(&k.KeyID, &js); err != nil {
				return notFound(err)
			}
			k.KeyJSON = json.RawMessage(js)
			err := db.execOne(ctx, `DELETE FROM one_time_keys WHERE user_id = $1 AND device_id = $2 AND algorithm = $3 AND key_id = $4`,
				userID, deviceID, algorithm, k.KeyID)
			if err != storage.ErrNotFound {
				return err
			}
		}
		return storage.ErrNotFound
	})
	if err != nil {
		return nil, err
	}
	return k, nil
}

func (db *DB) PutFallbackKey(ctx context.Context, k *storage.OneTimeKey) error {
	_, err := db.exec(ctx, `INSERT INTO fallback_keys (user_id, device_id, algorithm, key_id, key_json, used)
		VALUES ($1, $2, $3, $4, $5, 0) ON CONFLICT (user_id, device_id, algorithm) DO UPDATE SET
		used = CASE WHEN fallback_keys.key_id = excluded.key_id AND fallback_keys.key_json = excluded.key_json
			THEN fallback_keys.used ELSE 0 END,
		key_id = excluded.key_id, key_json = excluded.key_json`,
		k.UserID, k.DeviceID, k.Algorithm, k.KeyID, string(k.KeyJSON))
	return err
}

func (db *DB) ClaimFallbackKey(ctx context.Context, userID id.UserID, deviceID id.DeviceID, algorithm string) (*storage.FallbackKey, error) {
	var k *storage.FallbackKey
	err := db.WithTx(ctx, func(ctx context.Context) error {
		k = &storage.FallbackKey{OneTimeKey: storage.OneTimeKey{UserID: userID, DeviceID: deviceID, Algorithm: algorithm}}
		var js string
		var used int64
		if err := db.w(ctx).QueryRowContext(ctx, `SELECT key_id, key_json, used FROM fallback_keys
			WHERE user_id = $1 AND device_id = $2 AND algorithm = $3`, userID, deviceID, algorithm).Scan(&k.KeyID, &js, &used); err != nil {
			return notFound(err)
		}
		k.KeyJSON, k.Used = json.RawMessage(js), used != 0
		_, err := db.exec(ctx, `UPDATE fallback_keys SET used = 1 WHERE user_id = $1 AND device_id = $2 AND algorithm = $3`,
			userID, deviceID, algorithm)
		return err
	})
	if err != nil {
		return nil, err
	}
	return k, nil
}

func (db *DB) UnusedFallbackKeyTypes(ctx context.Context, userID id.UserID, deviceID id.DeviceID) ([]string, error) {
	rows, err := db.r(ctx).QueryContext(ctx, `SELECT algorithm FROM fallback_keys
		WHERE user_id = $1 AND device_id = $2 AND used = 0 ORDER BY algorithm`, userID, deviceID)
	if err != nil {
		return nil, err
	}
	return collect(rows, func(row scanner) (string, error) {
		var s string
		return s, row.Scan(&s)
	})
}

func (db *DB) PutCrossSigningKey(ctx context.Context, userID id.UserID, usage string, keyJSON json.RawMessage) error {
	_, err := db.exec(ctx, `INSERT INTO cross_signing_keys (user_id, usage, key_json) VALUES ($1, $2, $3)
		ON CONFLICT (user_id, usage) DO UPDATE SET key_json = excluded.key_json`, userID, usage, string(keyJSON))
	return err
}

func (db *DB) CrossSigningKeys(ctx context.Context, userID id.UserID) (map[string]json.RawMessage, error) {
	rows, err := db.r(ctx).QueryContext(ctx, `SELECT usage, key_json FROM cross_signing_keys WHERE user_id = $1`, userID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]json.RawMessage{}
	for rows.Next() {
		var usage, js string
		if err := rows.Scan(&usage, &js); err != nil {
			return nil, err
		}
		out[usage] = json.RawMessage(js)
	}
	return out, rows.Err()
}

func (db *DB) PutKeySignature(ctx context.Context, s *storage.KeySignature) error {
	_, err := db.exec(ctx, `INSERT INTO key_signatures (signer_user_id, signer_key_id, target_user_id, target_key_id, signature)
		VALUES ($1, $2, $3, $4, $5) ON CONFLICT (target_user_id, target_key_id, signer_user_id, signer_key_id)
		DO UPDATE SET signature = excluded.signature`, s.SignerUserID, s.SignerKeyID, s.TargetUserID, s.TargetKeyID, s.Signature)
	return err
}

func (db *DB) KeySignaturesOf(ctx context.Context, targetUserIDs []id.UserID) ([]*storage.KeySignature, error) {
	if len(targetUserIDs) == 0 {
		return nil, nil
	}
	cond, args := inList("target_user_id", 1, targetUserIDs)
	rows, err := db.r(ctx).QueryContext(ctx, `SELECT signer_user_id, signer_key_id, target_user_id, target_key_id, signature
		FROM key_signatures WHERE 1=1`+cond+` ORDER BY target_user_id, target_key_id, signer_user_id, signer_key_id`, args...)
	if err != nil {
		return nil, err
	}
	return collect(rows, func(row scanner) (*storage.KeySignature, error) {
		var s storage.KeySignature
		return &s, row.Scan(&s.SignerUserID, &s.SignerKeyID, &s.TargetUserID, &s.TargetKeyID, &s.Signature)
	})
}

func (db *DB) AddDeviceListChange(ctx context.Context, userID id.UserID, devices ...id.DeviceID) (int64, error) {
	if len(devices) == 0 {
		devices = []id.DeviceID{""} // the cross-signing keys
	}
	var pos int64
	err := db.WithTx(ctx, func(ctx context.Context) error {
		for _, d := range devices {
			var err error
			if pos, err = db.nextStreamPos(ctx, "device_lists"); err != nil {
				return err
			}
			if _, err = db.exec(ctx, `INSERT INTO device_list_stream (stream_pos, user_id, device_id) VALUES ($1, $2, $3)`,
				pos, userID, d); err != nil {
				return err
			}
		}
		return nil
	})
	return pos, err
}

func (db *DB) DeviceListChanges(ctx context.Context, since, upto int64) ([]id.UserID, error) {
	rows, err := db.r(ctx).QueryContext(ctx, `SELECT DISTINCT user_id FROM device_list_stream
		WHERE stream_pos > $1 AND stream_pos <= $2 ORDER BY user_id`, since, upto)
	if err != nil {
		return nil, err
	}
	return collect(rows, func(row scanner) (id.UserID, error) {
		var s id.UserID
		return s, row.Scan(&s)
	})
}

func (db *DB) MaxDeviceListPos(ctx context.Context) (int64, error) {
	return db.streamPos(ctx, "device_lists")
}

func (db *DB) UsersSharingRoom(ctx context.Context, userID id.UserID, candidates []id.UserID) ([]id.UserID, error) {
	var out []id.UserID
	for len(candidates) > 0 {
		chunk := candidates[:min(len(candidates), 500)]
		candidates = candidates[len(chunk):]
		cond, args := inList("b.state_key", 2, chunk)
		rows, err := db.r(ctx).QueryContext(ctx, `SELECT DISTINCT b.state_key FROM current_state a
			JOIN current_state b ON b.room_id = a.room_id AND b.type = 'm.room.member' AND b.membership = 'join'
			WHERE a.type = 'm.room.member' AND a.state_key = $1 AND a.membership = 'join'`+cond+` ORDER BY b.state_key`,
			append([]any{userID}, args...)...)
		if err != nil {
			return nil, err
		}
		users, err := collect(rows, func(row scanner) (id.UserID, error) {
			var s id.UserID
			return s, row.Scan(&s)
		})
		if err != nil {
			return nil, err
		}
		out = append(out, users...)
	}
	return out, nil
}

// backupVersion parses a version string; a malformed one names no version.
func backupVersion(v string) (int64, bool) {
	n, err := strconv.ParseInt(v, 10, 64)
	return n, err == nil && n > 0
}

func (db *DB) CreateBackupVersion(ctx context.Context, userID id.UserID, algorithm string, authData json.RawMessage) (string, error) {
	var version int64
	err := db.WithTx(ctx, func(ctx context.Context) error {
		if err := db.w(ctx).QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) + 1 FROM key_backup_versions
			WHERE user_id = $1`, userID).Scan(&version); err != nil {
			return err
		}
		_, err := db.exec(ctx, `INSERT INTO key_backup_versions (user_id, version, algorithm, auth_data, etag, deleted)
			VALUES ($1, $2, $3, $4, 0, 0)`, userID, version, algorithm, string(authData))
		return err
	})
	if err != nil {
		return "", err
	}
	return strconv.FormatInt(version, 10), nil
}

func (db *DB) GetBackupVersion(ctx context.Context, userID id.UserID, version string) (*storage.BackupVersion, error) {
	q := `SELECT version, algorithm, auth_data, etag FROM key_backup_versions WHERE user_id = $1 AND deleted = 0`
	args := []any{userID}
	if version == "" {
		q += ` ORDER BY version DESC LIMIT 1`
	} else {
		n, ok := backupVersion(version)
		if !ok {
			return nil, storage.ErrNotFound
		}
		q += ` AND version = $2`
		args = append(args, n)
	}
	var v storage.BackupVersion
	var n int64
	var auth string
	if err := db.r(ctx).QueryRowContext(ctx, q, args...).Scan(&n, &v.Algorithm, &auth, &v.Etag); err != nil {
		return nil, notFound(err)
	}
	v.UserID, v.Version, v.AuthData = userID, strconv.FormatInt(n, 10), json.RawMessage(auth)
	return &v, nil
}

func (db *DB) UpdateBackupVersion(ctx context.Context, userID id.UserID, version string, authData json.RawMessage) error {
	n, ok := backupVersion(version)
	if !ok {
		return storage.ErrNotFound
	}
	return db.execOne(ctx, `UPDATE key_backup_versions SET auth_data = $3 WHERE user_id = $1 AND version = $2 AND deleted = 0`,
		userID, n, string(authData))
}

func (db *DB) DeleteBackupVersion(ctx context.Context, userID id.UserID, version string) error {
	n, ok := backupVersion(version)
	if !ok {
		return storage.ErrNotFound
	}
	return db.WithTx(ctx, func(ctx context.Context) error {
		if err := db.execOne(ctx, `UPDATE key_backup_versions SET deleted = 1 WHERE user_id = $1 AND version = $2 AND deleted = 0`,
			userID, n); err != nil {
			return err
		}
		_, err := db.exec(ctx, `DELETE FROM key_backup_keys WHERE user_id = $1 AND version = $2`, userID, n)
		return err
	})
}

func (db *DB) bumpEtag(ctx context.Context, userID id.UserID, version int64) error {
	return db.execOne(ctx, `UPDATE key_backup_versions SET etag = etag + 1 WHERE user_id = $1 AND version = $2`, userID, version)
}

func (db *DB) PutBackupKey(ctx context.Context, k *storage.BackupKey) error {
	n, ok := backupVersion(k.Version)
	if !ok {
		return storage.ErrNotFound
	}
	return db.WithTx(ctx, func(ctx context.Context) error {
		if _, err := db.exec(ctx, `INSERT INTO key_backup_keys (user_id, version, room_id, session_id, first_message_index,
			forwarded_count, is_verified, session_data) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
			ON CONFLICT (user_id, version, room_id, session_id) DO UPDATE SET first_message_index = excluded.first_message_index,
			forwarded_count = excluded.forwarded_count, is_verified = excluded.is_verified, session_data = excluded.session_data`,
			k.UserID, n, k.RoomID, k.SessionID, k.FirstMessageIndex, k.ForwardedCount, b2i(k.IsVerified), string(k.SessionData)); err != nil {
			return err
		}
		return db.bumpEtag(ctx, k.UserID, n)
	})
}

func backupKeyFilter(userID id.UserID, version int64, roomID id.RoomID, sessionID string) (string, []any) {
	q := ` WHERE user_id = $1 AND version = $2`
	args := []any{userID, version}
	if roomID != "" {
		q += ` AND room_id = $3`
		args = append(args, roomID)
		if sessionID != "" {
			q += ` AND session_id = $4`
			args = append(args, sessionID)
		}
	}
	return q, args
}

func (db *DB) BackupKeys(ctx context.Context, userID id.UserID, version string, roomID id.RoomID, sessionID string) ([]*storage.BackupKey, error) {
	n, ok := backupVersion(version)
	if !ok {
		return nil, storage.ErrNotFound
	}
	where, args := backupKeyFilter(userID, n, roomID, sessionID)
	rows, err := db.r(ctx).QueryContext(ctx, `SELECT room_id, session_id, first_message_index, forwarded_count, is_verified,
		session_data FROM key_backup_keys`+where+` ORDER BY room_id, session_id`, args...)
	if err != nil {
		return nil, err
	}
	return collect(rows, func(row scanner) (*storage.BackupKey, error) {
		k := storage.BackupKey{UserID: userID, Version: version}
		var verified int64
		var data string
		err := row.Scan(&k.RoomID, &k.SessionID, &k.FirstMessageIndex, &k.ForwardedCount, &verified, &data)
		k.IsVerified, k.SessionData = verified != 0, json.RawMessage(data)
		return &k, err
	})
}

func (db *DB) DeleteBackupKeys(ctx context.Context, userID id.UserID, version string, roomID id.RoomID, sessionID string) error {
	n, ok := backupVersion(version)
	if !ok {
		return storage.ErrNotFound
	}
	where, args := backupKeyFilter(userID, n, roomID, sessionID)
	return db.WithTx(ctx, func(ctx context.Context) error {
		if _, err := db.exec(ctx, `DELETE FROM key_backup_keys`+where, args...); err != nil {
			return err
		}
		return db.bumpEtag(ctx, userID, n)
	})
}

func (db *DB) CountBackupKeys(ctx context.Context, userID id.UserID, version string) (int64, error) {
	n, ok := backupVersion(version)
	if !ok {
		return 0, storage.ErrNotFound
	}
	var count int64
	err := db.r(ctx).QueryRowContext(ctx, `SELECT COUNT(*) FROM key_backup_keys WHERE user_id = $1 AND version = $2`,
		userID, n).Scan(&count)
	return count, err
}

func (db *DB) PutDehydratedDevice(ctx context.Context, d *storage.DehydratedDevice) (id.DeviceID, error) {
	var old id.DeviceID
	err := db.WithTx(ctx, func(ctx context.Context) error {
		err := db.w(ctx).QueryRowContext(ctx, `SELECT device_id FROM dehydrated_devices WHERE user_id = $1`, d.UserID).Scan(&old)
		if err = notFound(err); err != nil && err != storage.ErrNotFound {
			return err
		}
		_, err = db.exec(ctx, `INSERT INTO dehydrated_devices (user_id, device_id, device_data) VALUES ($1, $2, $3)
			ON CONFLICT (user_id) DO UPDATE SET device_id = excluded.device_id, device_data = excluded.device_data`,
			d.UserID, d.DeviceID, string(d.DeviceData))
		return err
	})
	return old, err
}

func (db *DB) GetDehydratedDevice(ctx context.Context, userID id.UserID) (*storage.DehydratedDevice, error) {
	d := storage.DehydratedDevice{UserID: userID}
	var data string
	if err := db.r(ctx).QueryRowContext(ctx, `SELECT device_id, device_data FROM dehydrated_devices WHERE user_id = $1`,
		userID).Scan(&d.DeviceID, &data); err != nil {
		return nil, notFound(err)
	}
	d.DeviceData = json.RawMessage(data)
	return &d, nil
}

func (db *DB) DeleteDehydratedDevice(ctx context.Context, userID id.UserID) (*storage.DehydratedDevice, error) {
	var d *storage.DehydratedDevice
	err := db.WithTx(ctx, func(ctx context.Context) error {
		var err error
		if d, err = db.GetDehydratedDevice(ctx, userID); err != nil {
			return err
		}
		return db.execOne(ctx, `DELETE FROM dehydrated_devices WHERE user_id = $1`, userID)
	})
	if err != nil {
		return nil, err
	}
	return d, nil
}
