package sqldb

import (
	"context"

	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/storage"
)

func (db *DB) PutOpenIDToken(ctx context.Context, tokenHash string, userID id.UserID, expiresAt int64) error {
	_, err := db.exec(ctx, `INSERT INTO openid_tokens (token_hash, user_id, expires_at) VALUES ($1, $2, $3)`,
		tokenHash, userID, expiresAt)
	return err
}

func (db *DB) OpenIDTokenUser(ctx context.Context, tokenHash string, now int64) (id.UserID, error) {
	var user id.UserID
	err := db.r(ctx).QueryRowContext(ctx, `SELECT user_id FROM openid_tokens WHERE token_hash = $1 AND expires_at > $2`,
		tokenHash, now).Scan(&user)
	return user, notFound(err)
}

func (db *DB) SetAppServiceRoomListed(ctx context.Context, r storage.ListedRoom, listed bool) error {
	if !listed {
		_, err := db.exec(ctx, `DELETE FROM appservice_room_lists WHERE as_id = $1 AND network_id = $2 AND room_id = $3`,
			r.AppServiceID, r.NetworkID, r.RoomID)
		return err
	}
	_, err := db.exec(ctx, `INSERT INTO appservice_room_lists (as_id, network_id, room_id) VALUES ($1, $2, $3)
		ON CONFLICT DO NOTHING`, r.AppServiceID, r.NetworkID, r.RoomID)
	return err
}

func (db *DB) AppServiceListedRooms(ctx context.Context) ([]storage.ListedRoom, error) {
	rows, err := db.r(ctx).QueryContext(ctx, `SELECT as_id, network_id, room_id FROM appservice_room_lists
		ORDER BY as_id, network_id, room_id`)
	if err != nil {
		return nil, err
	}
	return collect(rows, func(row interface{ Scan(...any) error }) (storage.ListedRoom, error) {
		var r storage.ListedRoom
		return r, row.Scan(&r.AppServiceID, &r.NetworkID, &r.RoomID)
	})
}
