package storage

import (
	"context"

	"maunium.net/go/mautrix/id"
)

// BridgePortal is the Matrix room of one conversation of another network,
// keyed as bridgev2 keys portals (network, portal ID, receiver).
type BridgePortal struct {
	Network  string
	PortalID string
	Receiver string
	RoomID   id.RoomID
	// Kind is what the conversation is ("space", "channel", "private",
	// "dm", "group").
	Kind string
	// ImportCursor is where the last import of the conversation stopped
	// (for Slack the ts of its last message); ImportMeta is JSON the
	// importer keeps beside it.
	ImportCursor string
	ImportMeta   string
	CreatedTS    int64
}

// BridgePortals stores portal rooms and the files of other networks already
// uploaded, for importers (and later the live bridge of the same network).
type BridgePortals interface {
	// CreateBridgePortal records a portal; ErrConflict if its key or its
	// room has one.
	CreateBridgePortal(ctx context.Context, p *BridgePortal) error
	// GetBridgePortal is the portal of a key; ErrNotFound if none.
	GetBridgePortal(ctx context.Context, network, portalID, receiver string) (*BridgePortal, error)
	// ListBridgePortals lists a network's portals by portal ID.
	ListBridgePortals(ctx context.Context, network string) ([]*BridgePortal, error)
	// SetBridgePortalImport records where an import stopped; ErrNotFound if
	// there is no such portal.
	SetBridgePortalImport(ctx context.Context, network, portalID, receiver, cursor, meta string) error
	// GetBridgeMedia is the mxc:// URI of a remote file; ErrNotFound if none.
	GetBridgeMedia(ctx context.Context, network, remoteID string) (string, error)
	// PutBridgeMedia records the mxc:// URI of a remote file (the first
	// one recorded stays).
	PutBridgeMedia(ctx context.Context, network, remoteID, mxc string) error
	// GetBridgePortalByRoom is the portal of a room; ErrNotFound if none.
	GetBridgePortalByRoom(ctx context.Context, roomID id.RoomID) (*BridgePortal, error)
	// BridgeMessageOf is the message part or reaction an event carries,
	// named by its real ID or its alias; ErrNotFound if it is none an
	// import recorded.
	BridgeMessageOf(ctx context.Context, eventID id.EventID) (*BridgeMessage, error)
	// BridgeMessageParts lists the parts of a message in a room whose events
	// were written, by part ID.
	BridgeMessageParts(ctx context.Context, roomID id.RoomID, messageID string) ([]*BridgeMessage, error)
	// BridgeMessageReactions lists the reactions to a message in a room
	// whose events were written.
	BridgeMessageReactions(ctx context.Context, roomID id.RoomID, messageID string) ([]*BridgeMessage, error)
}

// BridgeMessage is one event of a network message an import wrote: the
// message and part IDs as the network's bridge names them (bridgev2's
// networkid.MessageID and PartID), the alias the import gave the event and
// the real event it stands for. It is recorded with the event's alias
// (EventWrite.Message).
type BridgeMessage struct {
	RoomID    id.RoomID
	MessageID string
	PartID    string
	Alias     id.EventID
	EventID   id.EventID
	// SenderID is the network's ID of the sender (bridgev2's
	// networkid.UserID), also when a Matrix user stands for them.
	SenderID string
	// EmojiID, when set, makes this a reaction to the message part, by
	// SenderID, with that emoji as the bridge names it (bridgev2's
	// networkid.EmojiID).
	EmojiID string
}
