// Package storage declares one interface per data area and the row types they
// carry. Backends (storage/sqlite, storage/postgres, both built on storage/sqldb)
// implement them; core services depend only on these interfaces. This package
// imports nothing of this module but core/types. Matrix identifiers are
// mautrix id types (id.UserID, id.RoomID, id.EventID, id.DeviceID,
// id.RoomAlias): database/sql passes them as their string kind and scans
// into them, so backends need no conversions.
//
// Transactions travel in the context: Store.WithTx runs a function with a
// context that makes every call on the store use one transaction.
package storage

import (
	"context"
	"encoding/json"
	"fmt"

	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/core/types"
)

// ErrNotFound and ErrConflict are the sentinel errors backends wrap.
var (
	ErrNotFound = types.ErrNotFound
	ErrConflict = types.ErrConflict
	// ErrTxnTaken is PersistEvents' refusal of a batch in which a client
	// transaction (EventWrite.Txn) already has an event: the request was
	// made before, and its event is the answer (GetEventTxn).
	ErrTxnTaken = fmt.Errorf("%w: client transaction already has an event", types.ErrConflict)
)

// Account is a local user.
type Account struct {
	UserID       id.UserID
	Localpart    string
	PasswordHash string // empty: no password login
	IsAdmin      bool
	Deactivated  bool
	UserType     string // "", "bot", "support"
	AppServiceID string // the appservice that registered the user, if any
	CreatedAt    int64  // ms since the epoch
}

// Device is one login of a user.
type Device struct {
	UserID      id.UserID
	DeviceID    id.DeviceID
	DisplayName string
	LastSeenIP  string
	LastSeenTS  int64
	CreatedAt   int64
}

// AccessToken is stored by the SHA-256 hash of the token, never the token itself.
type AccessToken struct {
	TokenHash string
	UserID    id.UserID
	DeviceID  id.DeviceID
	ExpiresAt int64 // ms since the epoch; 0 never expires
	// RefreshHash is the refresh token issued together with this access token.
	RefreshHash string
	// PrevRefreshHash is the refresh token that was exchanged for this access
	// token; it is revoked on the first use of this token.
	PrevRefreshHash string
	CreatedAt       int64
}

// RefreshToken is stored by hash. PrevHash is the refresh token it replaced,
// revoked when this one is first used.
type RefreshToken struct {
	TokenHash string
	UserID    id.UserID
	DeviceID  id.DeviceID
	PrevHash  string
	CreatedAt int64
}

// LoginToken is a short-lived single-use token for m.login.token.
type LoginToken struct {
	TokenHash string
	UserID    id.UserID
	ExpiresAt int64
}

// UIASession is a user-interactive authentication session in progress.
type UIASession struct {
	SessionID string
	UserID    id.UserID // empty while registering
	Endpoint  string    // the request the session was started for
	Data      json.RawMessage
	CreatedAt int64
}

// RegistrationToken is an admin-managed token for m.login.registration_token.
type RegistrationToken struct {
	Token       string
	UsesAllowed *int64 // nil: unlimited
	Pending     int64
	Completed   int64
	ExpiryTime  *int64 // ms since the epoch; nil: never
}

// AccountDataEntry is one account data event of a user, global (RoomID "") or per room.
type AccountDataEntry struct {
	UserID    id.UserID
	RoomID    id.RoomID
	Type      string
	Content   json.RawMessage
	StreamPos int64
}

// Accounts stores local users.
type Accounts interface {
	// CreateAccount fails with ErrConflict if the user ID is taken.
	CreateAccount(ctx context.Context, a *Account) error
	GetAccount(ctx context.Context, userID id.UserID) (*Account, error)
	ListAccounts(ctx context.Context) ([]*Account, error)
	CountAccounts(ctx context.Context) (int64, error)
	SetPasswordHash(ctx context.Context, userID id.UserID, hash string) error
	SetAdmin(ctx context.Context, userID id.UserID, admin bool) error
	// DeactivateAccount marks the account deactivated, clears its password
	// and deletes its pushers.
	DeactivateAccount(ctx context.Context, userID id.UserID) error
}

// Devices stores devices and their access and refresh tokens; deleting a
// device deletes its tokens and the pushers it set.
type Devices interface {
	// UpsertDevice inserts the device or, if it exists, keeps it as it is
	// (apart from an empty display name being filled in).
	UpsertDevice(ctx context.Context, d *Device) error
	// CreateDevice inserts the device unless it exists (then it changes
	// nothing); it reports whether it inserted it.
	CreateDevice(ctx context.Context, d *Device) (bool, error)
	GetDevice(ctx context.Context, userID id.UserID, deviceID id.DeviceID) (*Device, error)
	ListDevices(ctx context.Context, userID id.UserID) ([]*Device, error)
	SetDeviceDisplayName(ctx context.Context, userID id.UserID, deviceID id.DeviceID, name string) error
	SetDeviceLastSeen(ctx context.Context, userID id.UserID, deviceID id.DeviceID, ip string, ts int64) error
	// DeleteDevices deletes the devices and their tokens; unknown IDs are ignored.
	DeleteDevices(ctx context.Context, userID id.UserID, deviceIDs []id.DeviceID) error
	// DeleteAllDevices deletes every device of the user but exceptDeviceID ("" for none).
	DeleteAllDevices(ctx context.Context, userID id.UserID, exceptDeviceID id.DeviceID) error
	// DeleteDeviceTokens deletes the access and refresh tokens of one device.
	DeleteDeviceTokens(ctx context.Context, userID id.UserID, deviceID id.DeviceID) error
}

// Tokens stores access, refresh and login tokens by hash.
type Tokens interface {
	CreateAccessToken(ctx context.Context, t *AccessToken) error
	GetAccessToken(ctx context.Context, tokenHash string) (*AccessToken, error)
	DeleteAccessToken(ctx context.Context, tokenHash string) error
	// DeleteAccessTokensByRefresh deletes access tokens issued with the refresh token.
	DeleteAccessTokensByRefresh(ctx context.Context, refreshHash string) error
	// ClearPrevRefresh forgets the predecessor of an access token.
	ClearPrevRefresh(ctx context.Context, tokenHash string) error
	CreateRefreshToken(ctx context.Context, t *RefreshToken) error
	GetRefreshToken(ctx context.Context, tokenHash string) (*RefreshToken, error)
	DeleteRefreshToken(ctx context.Context, tokenHash string) error
	// DeleteRefreshSuccessors deletes the refresh tokens that replaced
	// prevHash, and their access tokens.
	DeleteRefreshSuccessors(ctx context.Context, prevHash string) error
	CreateLoginToken(ctx context.Context, t *LoginToken) error
	// ConsumeLoginToken deletes the token and returns it; ErrNotFound if it
	// does not exist. Expiry is the caller's check.
	ConsumeLoginToken(ctx context.Context, tokenHash string) (*LoginToken, error)
	// DeleteExpiredTokens removes login and access tokens that expired before now.
	DeleteExpiredTokens(ctx context.Context, now int64) error
}

// Profiles stores profile fields (displayname, avatar_url, and extended fields) as JSON values.
type Profiles interface {
	GetProfile(ctx context.Context, userID id.UserID) (map[string]json.RawMessage, error)
	// GetProfileFields returns one field of many profiles: its value for
	// each of the users who have it set.
	GetProfileFields(ctx context.Context, field string, userIDs []id.UserID) (map[id.UserID]json.RawMessage, error)
	// SetProfileField sets a field; a nil value deletes it.
	SetProfileField(ctx context.Context, userID id.UserID, key string, value json.RawMessage) error
	DeleteProfile(ctx context.Context, userID id.UserID) error
}

// AccountData stores account data; each write takes the next position of the
// account data stream.
type AccountData interface {
	PutAccountData(ctx context.Context, userID id.UserID, roomID id.RoomID, dataType string, content json.RawMessage) (int64, error)
	GetAccountData(ctx context.Context, userID id.UserID, roomID id.RoomID, dataType string) (*AccountDataEntry, error)
	// AccountDataSince returns the user's entries written after the stream position.
	AccountDataSince(ctx context.Context, userID id.UserID, since int64) ([]*AccountDataEntry, error)
}

// UIASessions stores user-interactive authentication sessions.
type UIASessions interface {
	CreateUIASession(ctx context.Context, s *UIASession) error
	GetUIASession(ctx context.Context, sessionID string) (*UIASession, error)
	UpdateUIASession(ctx context.Context, sessionID string, data json.RawMessage) error
	DeleteUIASession(ctx context.Context, sessionID string) error
	DeleteUIASessionsBefore(ctx context.Context, createdBefore int64) error
}

// RegistrationTokens stores admin-managed registration tokens.
type RegistrationTokens interface {
	// CreateRegistrationToken fails with ErrConflict if the token exists.
	CreateRegistrationToken(ctx context.Context, t *RegistrationToken) error
	GetRegistrationToken(ctx context.Context, token string) (*RegistrationToken, error)
	ListRegistrationTokens(ctx context.Context) ([]*RegistrationToken, error)
	UpdateRegistrationToken(ctx context.Context, t *RegistrationToken) error
	DeleteRegistrationToken(ctx context.Context, token string) error
	// UseRegistrationToken counts one completed registration if the token is
	// still valid at now; it returns ErrNotFound if it is not.
	UseRegistrationToken(ctx context.Context, token string, now int64) error
}

// Meta stores facts about the installation (the server name it was made for).
type Meta interface {
	GetMeta(ctx context.Context, key string) (string, error)
	SetMeta(ctx context.Context, key, value string) error
	// InitMeta stores value unless the key is set, and returns the stored value.
	InitMeta(ctx context.Context, key, value string) (string, error)
}

// Store is everything a backend provides.
type Store interface {
	Accounts
	Devices
	Tokens
	Profiles
	AccountData
	UIASessions
	RegistrationTokens
	Meta
	Rooms
	StateReader
	RoomExtras
	RelationReader
	TxnLookup
	SyncReader
	Filters
	Receipts
	ToDevice
	Presences
	PushCounts
	Keys
	MediaRecords
	InterestQueues
	OpenIDTokens
	AppServiceRoomLists
	AccountModeration
	Pushers
	DelayedEvents
	ThreadSubscriptions
	ServerKeys
	Federation
	BridgePortals
	RemoteDeviceLists
	// WithTx runs fn with a context whose store calls share one transaction,
	// committed if fn returns nil. Nested calls join the outer transaction.
	WithTx(ctx context.Context, fn func(ctx context.Context) error) error
	// Backend names the engine: "sqlite" or "postgres".
	Backend() string
	Close() error
}
