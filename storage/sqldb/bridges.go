package sqldb

import (
	"context"
	"database/sql"
	"errors"

	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/storage"
)

const bridgePortalCols = `network, portal_id, receiver, room_id, kind, import_cursor, import_meta, created_ts`

func scanBridgePortal(row interface{ Scan(...any) error }) (*storage.BridgePortal, error) {
	var p storage.BridgePortal
	err := row.Scan(&p.Network, &p.PortalID, &p.Receiver, &p.RoomID, &p.Kind, &p.ImportCursor, &p.ImportMeta, &p.CreatedTS)
	return &p, err
}

func (db *DB) CreateBridgePortal(ctx context.Context, p *storage.BridgePortal) error {
	return db.insertNew(ctx, "bridge portal", `INSERT INTO bridge_portals (`+bridgePortalCols+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`, p.Network, p.PortalID, p.Receiver, p.RoomID, p.Kind, p.ImportCursor,
		p.ImportMeta, p.CreatedTS)
}

func (db *DB) GetBridgePortal(ctx context.Context, network, portalID, receiver string) (*storage.BridgePortal, error) {
	p, err := scanBridgePortal(db.r(ctx).QueryRowContext(ctx, `SELECT `+bridgePortalCols+` FROM bridge_portals
		WHERE network = $1 AND portal_id = $2 AND receiver = $3`, network, portalID, receiver))
	if err != nil {
		return nil, notFound(err)
	}
	return p, nil
}

func (db *DB) ListBridgePortals(ctx context.Context, network string) ([]*storage.BridgePortal, error) {
	rows, err := db.r(ctx).QueryContext(ctx, `SELECT `+bridgePortalCols+` FROM bridge_portals WHERE network = $1
		ORDER BY portal_id, receiver`, network)
	if err != nil {
		return nil, err
	}
	return collect(rows, scanBridgePortal)
}

func (db *DB) SetBridgePortalImport(ctx context.Context, network, portalID, receiver, cursor, meta string) error {
	return db.execOne(ctx, `UPDATE bridge_portals SET import_cursor = $4, import_meta = $5
		WHERE network = $1 AND portal_id = $2 AND receiver = $3`, network, portalID, receiver, cursor, meta)
}

func (db *DB) GetBridgeMedia(ctx context.Context, network, remoteID string) (string, error) {
	var mxc string
	err := db.r(ctx).QueryRowContext(ctx, `SELECT mxc FROM bridge_media WHERE network = $1 AND remote_id = $2`,
		network, remoteID).Scan(&mxc)
	return mxc, notFound(err)
}

func (db *DB) PutBridgeMedia(ctx context.Context, network, remoteID, mxc string) error {
	_, err := db.exec(ctx, `INSERT INTO bridge_media (network, remote_id, mxc) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING`,
		network, remoteID, mxc)
	return err
}

func (db *DB) GetBridgePortalByRoom(ctx context.Context, roomID id.RoomID) (*storage.BridgePortal, error) {
	p, err := scanBridgePortal(db.r(ctx).QueryRowContext(ctx, `SELECT `+bridgePortalCols+` FROM bridge_portals
		WHERE room_id = $1`, roomID))
	if err != nil {
		return nil, notFound(err)
	}
	return p, nil
}

func scanBridgeMessage(row interface{ Scan(...any) error }) (*storage.BridgeMessage, error) {
	var m storage.BridgeMessage
	err := row.Scan(&m.RoomID, &m.MessageID, &m.PartID, &m.Alias, &m.EventID, &m.SenderID, &m.EmojiID)
	return &m, err
}

// bridgeMessageCols reads the message an alias row a records.
const bridgeMessageCols = `SELECT a.room_id, a.message_id, a.part_id, a.alias, a.event_id, a.sender_id, a.emoji_id FROM event_aliases a `

func (db *DB) BridgeMessageOf(ctx context.Context, eventID id.EventID) (*storage.BridgeMessage, error) {
	// By alias first, the real ID (its position) then; each is a probe of an
	// index or two.
	for _, q := range []string{
		bridgeMessageCols + `WHERE a.alias = $1 AND a.message_id <> ''`,
		bridgeMessageCols + `JOIN events e ON e.stream_pos = a.stream_pos WHERE e.event_id = $1 AND a.message_id <> ''`,
	} {
		m, err := scanBridgeMessage(db.r(ctx).QueryRowContext(ctx, q, eventID))
		if errors.Is(err, sql.ErrNoRows) {
			continue
		} else if err != nil {
			return nil, err
		}
		return m, nil
	}
	return nil, storage.ErrNotFound
}

func (db *DB) BridgeMessageParts(ctx context.Context, roomID id.RoomID, messageID string) ([]*storage.BridgeMessage, error) {
	rows, err := db.r(ctx).QueryContext(ctx, bridgeMessageCols+`WHERE a.room_id = $1 AND a.message_id = $2 AND a.message_id <> ''
		AND a.emoji_id = '' ORDER BY a.part_id`, roomID, messageID)
	if err != nil {
		return nil, err
	}
	return collect(rows, scanBridgeMessage)
}

func (db *DB) BridgeMessageReactions(ctx context.Context, roomID id.RoomID, messageID string) ([]*storage.BridgeMessage, error) {
	rows, err := db.r(ctx).QueryContext(ctx, bridgeMessageCols+`WHERE a.room_id = $1 AND a.message_id = $2 AND a.message_id <> ''
		AND a.emoji_id <> '' ORDER BY a.part_id, a.sender_id, a.emoji_id`, roomID, messageID)
	if err != nil {
		return nil, err
	}
	return collect(rows, scanBridgeMessage)
}
