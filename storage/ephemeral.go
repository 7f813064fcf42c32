package storage

import (
	"context"
	"encoding/json"

	"maunium.net/go/mautrix/id"
)

// Receipt is one user's receipt of one type (and thread) in a room.
type Receipt struct {
	RoomID    id.RoomID
	UserID    id.UserID
	Type      string // m.read, m.read.private
	ThreadID  string // "" for unthreaded, "main" or a thread root
	EventID   id.EventID
	TS        int64
	StreamPos int64
}

// ToDeviceMessage is a message waiting for one device.
type ToDeviceMessage struct {
	StreamPos int64
	UserID    id.UserID
	DeviceID  id.DeviceID
	Sender    id.UserID
	Type      string
	Content   json.RawMessage
}

// Presence is a user's last known presence.
type Presence struct {
	UserID       id.UserID
	Presence     string
	StatusMsg    string
	LastActiveTS int64
	StreamPos    int64
}

// Receipts stores read receipts.
type Receipts interface {
	// PutReceipt stores a receipt with the next receipts stream position,
	// unless the user's receipt of that type already points at a later
	// event (later stream position); it returns the position, 0 if unchanged.
	PutReceipt(ctx context.Context, r *Receipt) (int64, error)
	// ReceiptsSince lists receipts of the rooms updated in (since, upto].
	ReceiptsSince(ctx context.Context, roomIDs []id.RoomID, since, upto int64) ([]*Receipt, error)
	// ReceiptsRange lists receipts of every room updated in (since, upto],
	// oldest first, at most limit.
	ReceiptsRange(ctx context.Context, since, upto int64, limit int) ([]*Receipt, error)
	MaxReceiptPos(ctx context.Context) (int64, error)
}

// ToDevice stores to-device messages until their device acknowledges them.
type ToDevice interface {
	// QueueToDevice stores messages with consecutive positions, unless the
	// sender's device already sent txnID for the event type (then it does
	// nothing and returns 0).
	QueueToDevice(ctx context.Context, sender id.UserID, senderDevice id.DeviceID, evType, txnID string, msgs []*ToDeviceMessage) (int64, error)
	// ToDeviceSince lists a device's messages in (since, upto], at most limit.
	ToDeviceSince(ctx context.Context, userID id.UserID, deviceID id.DeviceID, since, upto int64, limit int) ([]*ToDeviceMessage, error)
	// ToDeviceRange lists the messages of every device in (since, upto],
	// oldest first, at most limit.
	ToDeviceRange(ctx context.Context, since, upto int64, limit int) ([]*ToDeviceMessage, error)
	// AckToDevice deletes a device's messages up to and including pos.
	AckToDevice(ctx context.Context, userID id.UserID, deviceID id.DeviceID, upto int64) error
	MaxToDevicePos(ctx context.Context) (int64, error)
}

// Presences stores presence.
type Presences interface {
	// SetPresence stores a user's presence with the next presence position,
	// unless their stored presence and status message are those already
	// (then it writes nothing and returns 0): presence positions mark
	// changes, not activity.
	SetPresence(ctx context.Context, p *Presence) (int64, error)
	GetPresence(ctx context.Context, userID id.UserID) (*Presence, error)
	// PresenceOf returns the stored presence of those of users who have one.
	PresenceOf(ctx context.Context, users []id.UserID) ([]*Presence, error)
	// PresenceSince lists presence changed in (since, upto] (of everyone),
	// oldest first, at most limit.
	PresenceSince(ctx context.Context, since, upto int64, limit int) ([]*Presence, error)
	// PresenceVisibleTo lists the presence changed in (since, upto] of
	// viewer and of the users joined to a room viewer is joined to, oldest
	// first.
	PresenceVisibleTo(ctx context.Context, viewer id.UserID, since, upto int64) ([]*Presence, error)
	// PresenceNotOffline lists the stored presence that is not offline.
	PresenceNotOffline(ctx context.Context) ([]*Presence, error)
	MaxPresencePos(ctx context.Context) (int64, error)
}
