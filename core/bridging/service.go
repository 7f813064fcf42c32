package bridging

import (
	"context"
	"errors"
	"log/slog"

	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/core/events"
	"github.com/tributary-hs/tributary/core/rooms"
	"github.com/tributary-hs/tributary/core/users"
)

// Namespaces is what the registrations say (appservice/registry.Registry).
type Namespaces interface {
	// Sender is the appservice's own user; "" when no appservice has the ID.
	Sender(asID string) id.UserID
	// OwnsUser reports whether a user is the appservice's sender or in its
	// users namespace.
	OwnsUser(asID string, user id.UserID) bool
}

// Accounts is what the contract needs of accounts (core/users.Service).
type Accounts interface {
	GetAccount(ctx context.Context, userID id.UserID) (*users.Account, error)
	GetDevice(ctx context.Context, userID id.UserID, deviceID id.DeviceID) (*users.Device, error)
	Restrictions(ctx context.Context, userID id.UserID) (suspended, locked bool, err error)
}

// Rooms is what the contract needs of the room graph (core/rooms.Service).
type Rooms interface {
	Send(ctx context.Context, req *rooms.SendRequest) (id.EventID, error)
	BatchSend(ctx context.Context, roomID id.RoomID, protos []*events.Proto, opts rooms.BatchOptions) ([]id.EventID, error)
	HasMessages(ctx context.Context, roomID id.RoomID) (bool, error)
}

// Receipts is what mark_read_by needs (core/ephemeral.Service).
type Receipts interface {
	CanBeMarkedRead(ctx context.Context, roomID id.RoomID, user id.UserID) (bool, error)
	MarkReadBy(ctx context.Context, roomID id.RoomID, user id.UserID, eventID id.EventID) error
}

// Deps are the services the contract acts through; all are required but
// Logger.
type Deps struct {
	Namespaces Namespaces
	Accounts   Accounts
	Rooms      Rooms
	Receipts   Receipts
	Logger     *slog.Logger
}

// Service applies the appservice contract. It holds no state of its own.
type Service struct {
	ns       Namespaces
	accounts Accounts
	rooms    Rooms
	receipts Receipts
	log      *slog.Logger
}

// New builds the service.
func New(d Deps) (*Service, error) {
	if d.Namespaces == nil || d.Accounts == nil || d.Rooms == nil || d.Receipts == nil {
		return nil, errors.New("bridging: namespaces, accounts, rooms and receipts are required")
	}
	if d.Logger == nil {
		d.Logger = slog.Default()
	}
	return &Service{ns: d.Namespaces, accounts: d.Accounts, rooms: d.Rooms, receipts: d.Receipts, log: d.Logger}, nil
}
