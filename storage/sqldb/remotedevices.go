package sqldb

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"slices"

	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/storage"
)

func rawOrNil(s string) json.RawMessage {
	if s == "" {
		return nil
	}
	return json.RawMessage(s)
}

func (db *DB) RemoteDeviceLists(ctx context.Context, users []id.UserID) (map[id.UserID]*storage.RemoteDeviceList, error) {
	out := map[id.UserID]*storage.RemoteDeviceList{}
	for len(users) > 0 {
		chunk := users[:min(len(users), 500)]
		users = users[len(chunk):]
		cond, args := inList("user_id", 1, chunk)
		rows, err := db.r(ctx).QueryContext(ctx, `SELECT user_id, stream_id, stale, fetched_pos, mark, master_key,
			self_signing_key FROM remote_device_lists WHERE 1=1`+cond, args...)
		if err != nil {
			return nil, err
		}
		lists, err := collect(rows, func(row scanner) (*storage.RemoteDeviceList, error) {
			var l storage.RemoteDeviceList
			var stale int64
			var master, ss string
			if err := row.Scan(&l.UserID, &l.StreamID, &stale, &l.FetchedPos, &l.Mark, &master, &ss); err != nil {
				return nil, err
			}
			l.Stale, l.MasterKey, l.SelfSigningKey = stale != 0, rawOrNil(master), rawOrNil(ss)
			return &l, nil
		})
		if err != nil {
			return nil, err
		}
		for _, l := range lists {
			out[l.UserID] = l
		}
		rows, err = db.r(ctx).QueryContext(ctx, `SELECT user_id, device_id, key_json, display_name FROM remote_devices
			WHERE 1=1`+cond+` ORDER BY user_id, device_id`, args...)
		if err != nil {
			return nil, err
		}
		type row struct {
			user id.UserID
			d    *storage.RemoteDevice
		}
		devs, err := collect(rows, func(sc scanner) (row, error) {
			var r row
			var keys string
			r.d = &storage.RemoteDevice{}
			err := sc.Scan(&r.user, &r.d.DeviceID, &keys, &r.d.DisplayName)
			r.d.KeyJSON = rawOrNil(keys)
			return r, err
		})
		if err != nil {
			return nil, err
		}
		for _, r := range devs {
			if l := out[r.user]; l != nil {
				l.Devices = append(l.Devices, r.d)
			}
		}
	}
	return out, nil
}

func (db *DB) PutRemoteDeviceList(ctx context.Context, l *storage.RemoteDeviceList, ifMark int64) (bool, error) {
	wrote := false
	err := db.WithTx(ctx, func(ctx context.Context) error {
		var mark, streamID, stale int64
		err := db.w(ctx).QueryRowContext(ctx, `SELECT mark, stream_id, stale FROM remote_device_lists WHERE user_id = $1`,
			l.UserID).Scan(&mark, &streamID, &stale)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		if mark != ifMark || (l.StreamID == 0 && streamID > 0 && stale == 0) {
			return nil
		}
		if _, err := db.exec(ctx, `INSERT INTO remote_device_lists (user_id, stream_id, stale, fetched_pos, mark,
			master_key, self_signing_key) VALUES ($1, $2, 0, $3, $4, $5, $6) ON CONFLICT (user_id) DO UPDATE SET
			stream_id = excluded.stream_id, stale = 0, fetched_pos = excluded.fetched_pos,
			master_key = excluded.master_key, self_signing_key = excluded.self_signing_key`,
			l.UserID, l.StreamID, l.FetchedPos, mark, string(l.MasterKey), string(l.SelfSigningKey)); err != nil {
			return err
		}
		if _, err := db.exec(ctx, `DELETE FROM remote_devices WHERE user_id = $1`, l.UserID); err != nil {
			return err
		}
		for _, d := range l.Devices {
			if _, err := db.exec(ctx, `INSERT INTO remote_devices (user_id, device_id, key_json, display_name)
				VALUES ($1, $2, $3, $4) ON CONFLICT (user_id, device_id) DO UPDATE SET key_json = excluded.key_json,
				display_name = excluded.display_name`, l.UserID, d.DeviceID, string(d.KeyJSON), d.DisplayName); err != nil {
				return err
			}
		}
		wrote = true
		return nil
	})
	return wrote, err
}

func (db *DB) ApplyRemoteDeviceUpdate(ctx context.Context, user id.UserID, d *storage.RemoteDevice, deleted bool, streamID, mark int64) error {
	return db.WithTx(ctx, func(ctx context.Context) error {
		if err := db.execOne(ctx, `UPDATE remote_device_lists SET stream_id = $2, mark = $3 WHERE user_id = $1`,
			user, streamID, mark); err != nil {
			return err
		}
		if deleted {
			_, err := db.exec(ctx, `DELETE FROM remote_devices WHERE user_id = $1 AND device_id = $2`, user, d.DeviceID)
			return err
		}
		_, err := db.exec(ctx, `INSERT INTO remote_devices (user_id, device_id, key_json, display_name)
			VALUES ($1, $2, $3, $4) ON CONFLICT (user_id, device_id) DO UPDATE SET key_json = excluded.key_json,
			display_name = excluded.display_name`, user, d.DeviceID, string(d.KeyJSON), d.DisplayName)
		return err
	})
}

func (db *DB) ApplyRemoteCrossSigning(ctx context.Context, user id.UserID, master, selfSigning json.RawMessage, mark int64) error {
	q := `UPDATE remote_device_lists SET mark = $2`
	args := []any{user, mark}
	if master != nil {
		args = append(args, string(master))
		q += `, master_key = ` + placeholder(len(args))
	}
	if selfSigning != nil {
		args = append(args, string(selfSigning))
		q += `, self_signing_key = ` + placeholder(len(args))
	}
	return db.execOne(ctx, q+` WHERE user_id = $1`, args...)
}

func (db *DB) MarkRemoteDeviceListStale(ctx context.Context, user id.UserID, mark int64) error {
	_, err := db.exec(ctx, `INSERT INTO remote_device_lists (user_id, stale, mark) VALUES ($1, 1, $2)
		ON CONFLICT (user_id) DO UPDATE SET stale = 1, mark = excluded.mark`, user, mark)
	return err
}

func (db *DB) DeleteRemoteDeviceList(ctx context.Context, user id.UserID) error {
	return db.WithTx(ctx, func(ctx context.Context) error {
		if _, err := db.exec(ctx, `DELETE FROM remote_devices WHERE user_id = $1`, user); err != nil {
			return err
		}
		_, err := db.exec(ctx, `DELETE FROM remote_device_lists WHERE user_id = $1`, user)
		return err
	})
}

func (db *DB) RemoteUsersSharedSince(ctx context.Context, users []id.UserID) (map[id.UserID]int64, error) {
	out := map[id.UserID]int64{}
	for len(users) > 0 {
		chunk := users[:min(len(users), 500)]
		users = users[len(chunk):]
		// The users' rooms with their joins, then, for those rooms, the
		// current joins of local users; join positions are looked up per
		// row (a join with events lets a planner read events whole).
		cond, args := inList("a.state_key", 1, chunk)
		rows, err := db.r(ctx).QueryContext(ctx, `SELECT a.state_key, a.room_id,
			COALESCE((SELECT e.stream_pos FROM events e WHERE e.event_id = a.event_id), 0) FROM current_state a
			WHERE a.type = 'm.room.member' AND a.membership = 'join'`+cond, args...)
		if err != nil {
			return nil, err
		}
		type joined struct {
			user id.UserID
			room id.RoomID
			pos  int64
		}
		joins, err := collect(rows, func(row scanner) (joined, error) {
			var j joined
			return j, row.Scan(&j.user, &j.room, &j.pos)
		})
		if err != nil {
			return nil, err
		}
		if len(joins) == 0 {
			continue // none of this chunk shares a room: the next may
		}
		rooms := make([]id.RoomID, 0, len(joins))
		for _, j := range joins {
			rooms = append(rooms, j.room)
		}
		slices.Sort(rooms)
		rooms = slices.Compact(rooms)
		local := map[id.RoomID]int64{}
		// One lookup per room through current_state's primary key (room,
		// type), as batchreads.go's reads: listing the rooms in an IN on
		// current_state lets a planner read the table whole when the rooms
		// hold most of it.
		err = inChunks(rooms, func(part []id.RoomID) error {
			with, rargs := roomValues(1, part)
			rows, err := db.r(ctx).QueryContext(ctx, with+`SELECT r.room_id, (SELECT MIN(COALESCE(
					(SELECT e.stream_pos FROM events e WHERE e.event_id = b.event_id), 0))
				FROM current_state b JOIN accounts ac ON ac.user_id = b.state_key
				WHERE b.room_id = r.room_id AND b.type = 'm.room.member' AND b.membership = 'join')
				FROM r`, rargs...)
			if err != nil {
				return err
			}
			type first struct {
				room id.RoomID
				pos  sql.NullInt64
			}
			firsts, err := collect(rows, func(row scanner) (first, error) {
				var f first
				return f, row.Scan(&f.room, &f.pos)
			})
			for _, f := range firsts {
				if f.pos.Valid { // else no local user in the room
					local[f.room] = f.pos.Int64
				}
			}
			return err
		})
		if err != nil {
			return nil, err
		}
		for _, j := range joins {
			first, ok := local[j.room]
			if !ok {
				continue // no local user in the room
			}
			since := max(j.pos, first)
			if cur, seen := out[j.user]; !seen || since < cur {
				out[j.user] = since
			}
		}
	}
	return out, nil
}
