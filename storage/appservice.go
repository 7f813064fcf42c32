package storage

import (
	"context"

	"maunium.net/go/mautrix/id"
)

// ListedRoom is a room an appservice publishes in one of its networks'
// room lists.
type ListedRoom struct {
	AppServiceID string
	NetworkID    string
	RoomID       id.RoomID
}

// AppServiceRoomLists stores appservices' per-network room lists.
type AppServiceRoomLists interface {
	SetAppServiceRoomListed(ctx context.Context, r ListedRoom, listed bool) error
	AppServiceListedRooms(ctx context.Context) ([]ListedRoom, error)
}
