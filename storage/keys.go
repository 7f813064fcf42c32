package storage

import (
	"context"
	"encoding/json"

	"maunium.net/go/mautrix/id"
)

// DeviceKeys are the identity keys a device uploaded (the signed JSON object).
type DeviceKeys struct {
	UserID   id.UserID
	DeviceID id.DeviceID
	KeyJSON  json.RawMessage
}

// OneTimeKey is one one-time key of a device ("signed_curve25519:AAAAHg").
type OneTimeKey struct {
	UserID    id.UserID
	DeviceID  id.DeviceID
	Algorithm string
	KeyID     string
	KeyJSON   json.RawMessage
}

// FallbackKey is a device's fallback key of one algorithm.
type FallbackKey struct {
	OneTimeKey
	Used bool
}

// KeySignature is one signature of a key by another key. TargetKeyID is a
// device ID or the public key of a cross-signing key; SignerKeyID is
// "ed25519:<device ID or public key>".
type KeySignature struct {
	SignerUserID id.UserID
	SignerKeyID  string
	TargetUserID id.UserID
	TargetKeyID  string
	Signature    string
}

// BackupVersion is one server-side key backup of a user.
type BackupVersion struct {
	UserID    id.UserID
	Version   string
	Algorithm string
	AuthData  json.RawMessage
	Etag      int64
	Deleted   bool
}

// BackupKey is one backed-up Megolm session.
type BackupKey struct {
	UserID            id.UserID
	Version           string
	RoomID            id.RoomID
	SessionID         string
	FirstMessageIndex int64
	ForwardedCount    int64
	IsVerified        bool
	SessionData       json.RawMessage
}

// DehydratedDevice is a user's dehydrated device (MSC3814): a device kept
// on the server, its keys pickled in DeviceData, to receive to-device
// messages while the user has no other device.
type DehydratedDevice struct {
	UserID     id.UserID
	DeviceID   id.DeviceID
	DeviceData json.RawMessage
}

// Keys stores end-to-end encryption keys.
type Keys interface {
	// PutDeviceKeys stores (replaces) a device's identity keys.
	PutDeviceKeys(ctx context.Context, userID id.UserID, deviceID id.DeviceID, keyJSON json.RawMessage) error
	// DeviceKeysOf lists the device keys of the users.
	DeviceKeysOf(ctx context.Context, userIDs []id.UserID) ([]*DeviceKeys, error)
	// DeleteDeviceKeys deletes the devices' identity, one-time and fallback
	// keys and the signatures of them.
	DeleteDeviceKeys(ctx context.Context, userID id.UserID, deviceIDs []id.DeviceID) error

	// PutOneTimeKeys stores one-time keys; a key ID already stored with the
	// same JSON is ignored, with different JSON it is ErrConflict.
	PutOneTimeKeys(ctx context.Context, keys []*OneTimeKey) error
	// CountOneTimeKeys counts a device's unclaimed one-time keys per algorithm.
	CountOneTimeKeys(ctx context.Context, userID id.UserID, deviceID id.DeviceID) (map[string]int64, error)
	// ClaimOneTimeKey removes and returns one key of the algorithm; ErrNotFound if none.
	ClaimOneTimeKey(ctx context.Context, userID id.UserID, deviceID id.DeviceID, algorithm string) (*OneTimeKey, error)

	// PutFallbackKey stores a device's fallback key of its algorithm,
	// replacing the previous one (unused again unless it is the same key).
	PutFallbackKey(ctx context.Context, k *OneTimeKey) error
	// ClaimFallbackKey returns the fallback key of the algorithm and marks it
	// used; ErrNotFound if none.
	ClaimFallbackKey(ctx context.Context, userID id.UserID, deviceID id.DeviceID, algorithm string) (*FallbackKey, error)
	// UnusedFallbackKeyTypes lists the algorithms of a device's unused fallback keys.
	UnusedFallbackKeyTypes(ctx context.Context, userID id.UserID, deviceID id.DeviceID) ([]string, error)

	// PutCrossSigningKey stores (replaces) a user's key of one usage
	// ("master", "self_signing", "user_signing").
	PutCrossSigningKey(ctx context.Context, userID id.UserID, usage string, keyJSON json.RawMessage) error
	// CrossSigningKeys returns a user's keys by usage.
	CrossSigningKeys(ctx context.Context, userID id.UserID) (map[string]json.RawMessage, error)

	// PutKeySignature stores (replaces) a signature.
	PutKeySignature(ctx context.Context, s *KeySignature) error
	// KeySignaturesOf lists the signatures of the users' keys.
	KeySignaturesOf(ctx context.Context, targetUserIDs []id.UserID) ([]*KeySignature, error)

	// AddDeviceListChange records that a user's keys changed, with the next
	// device_lists stream position, which it returns: one position per
	// device changed (added, updated, deleted), or one for the user's
	// cross-signing keys when no device is named. Other servers are told
	// per device (m.device_list_update) or of the cross-signing keys
	// (m.signing_key_update).
	AddDeviceListChange(ctx context.Context, userID id.UserID, devices ...id.DeviceID) (int64, error)
	// DeviceListChanges lists the users with changes in (since, upto].
	DeviceListChanges(ctx context.Context, since, upto int64) ([]id.UserID, error)
	MaxDeviceListPos(ctx context.Context) (int64, error)
	// UsersSharingRoom lists those of candidates who are joined to a room
	// the user is joined to.
	UsersSharingRoom(ctx context.Context, userID id.UserID, candidates []id.UserID) ([]id.UserID, error)

	// CreateBackupVersion creates the user's next backup version and returns it.
	CreateBackupVersion(ctx context.Context, userID id.UserID, algorithm string, authData json.RawMessage) (string, error)
	// GetBackupVersion returns a version that is not deleted, or with version
	// "" the latest; ErrNotFound if there is none.
	GetBackupVersion(ctx context.Context, userID id.UserID, version string) (*BackupVersion, error)
	// UpdateBackupVersion replaces the auth data; ErrNotFound if missing.
	UpdateBackupVersion(ctx context.Context, userID id.UserID, version string, authData json.RawMessage) error
	// DeleteBackupVersion marks a version deleted and deletes its keys;
	// ErrNotFound if missing.
	DeleteBackupVersion(ctx context.Context, userID id.UserID, version string) error
	// PutBackupKey stores (replaces) a session and advances the version's etag.
	PutBackupKey(ctx context.Context, k *BackupKey) error
	// BackupKeys lists a version's sessions, of one room ("" all) and one
	// session ("" all).
	BackupKeys(ctx context.Context, userID id.UserID, version string, roomID id.RoomID, sessionID string) ([]*BackupKey, error)
	// DeleteBackupKeys deletes sessions as BackupKeys selects them and
	// advances the etag.
	DeleteBackupKeys(ctx context.Context, userID id.UserID, version string, roomID id.RoomID, sessionID string) error
	// CountBackupKeys counts a version's sessions.
	CountBackupKeys(ctx context.Context, userID id.UserID, version string) (int64, error)

	// PutDehydratedDevice stores the user's dehydrated device, replacing
	// theirs; it returns the ID of the replaced one ("" if none).
	PutDehydratedDevice(ctx context.Context, d *DehydratedDevice) (id.DeviceID, error)
	// GetDehydratedDevice returns the user's dehydrated device; ErrNotFound if none.
	GetDehydratedDevice(ctx context.Context, userID id.UserID) (*DehydratedDevice, error)
	// DeleteDehydratedDevice forgets the user's dehydrated device and returns
	// it; ErrNotFound if none.
	DeleteDehydratedDevice(ctx context.Context, userID id.UserID) (*DehydratedDevice, error)
}

// RemoteDeviceList is this server's copy of another server's user's device
// list (server-server API, "Device Management"): what that user's server
// answered, kept up to date by its m.device_list_update and
// m.signing_key_update EDUs.
type RemoteDeviceList struct {
	UserID id.UserID
	// StreamID is the origin's stream_id of the latest update applied (0:
	// not known — the list came from /user/keys/query, which has none).
	StreamID int64
	// Stale: an update could not be applied (an unknown prev_id); the list
	// must be fetched again before it answers anything.
	Stale bool
	// FetchedPos is the events stream position when the list was last
	// fetched whole: updates reach this server only while it shares a room
	// with the user, so the list holds only if it has shared one since.
	FetchedPos int64
	// Mark is the device-list position of the last change heard of for the
	// user; a fetch begun before it must not overwrite what it says.
	Mark           int64
	MasterKey      json.RawMessage
	SelfSigningKey json.RawMessage
	Devices        []*RemoteDevice
}

// RemoteDevice is one device of a RemoteDeviceList.
type RemoteDevice struct {
	DeviceID    id.DeviceID
	KeyJSON     json.RawMessage // nil: the device has no keys
	DisplayName string
}

// RemoteDeviceLists stores the copies of remote users' device lists.
type RemoteDeviceLists interface {
	// RemoteDeviceLists returns the stored lists of those of users that
	// have one, with their devices.
	RemoteDeviceLists(ctx context.Context, users []id.UserID) (map[id.UserID]*RemoteDeviceList, error)
	// PutRemoteDeviceList replaces a user's whole list (devices included)
	// unless its Mark is no longer ifMark (a change was heard of since the
	// fetch began; 0 matches no stored list too), or l has no stream ID and
	// the stored list is current with one (it is as new, and worth more);
	// it reports whether it wrote. l.Mark is kept as stored.
	PutRemoteDeviceList(ctx context.Context, l *RemoteDeviceList, ifMark int64) (bool, error)
	// ApplyRemoteDeviceUpdate applies one device's update to a stored list
	// (d.KeyJSON nil and deleted: the device is gone), setting its stream ID
	// and mark; ErrNotFound if the user has no list.
	ApplyRemoteDeviceUpdate(ctx context.Context, user id.UserID, d *RemoteDevice, deleted bool, streamID, mark int64) error
	// ApplyRemoteCrossSigning replaces the cross-signing keys given (nil:
	// kept) of a stored list and sets its mark; ErrNotFound if none.
	ApplyRemoteCrossSigning(ctx context.Context, user id.UserID, master, selfSigning json.RawMessage, mark int64) error
	// MarkRemoteDeviceListStale marks a user's list stale with the mark,
	// creating an empty stale one if there is none.
	MarkRemoteDeviceListStale(ctx context.Context, user id.UserID, mark int64) error
	// DeleteRemoteDeviceList forgets a user's list.
	DeleteRemoteDeviceList(ctx context.Context, user id.UserID) error
	// RemoteUsersSharedSince returns, for those of users (of other servers)
	// joined to a room a local user (one with an account) is joined to, the
	// events stream position since which they have shared one: the
	// earliest, over such rooms, of the later of the user's join and the
	// first current join of a local user.
	RemoteUsersSharedSince(ctx context.Context, users []id.UserID) (map[id.UserID]int64, error)
}
