package storage

import (
	"context"

	"maunium.net/go/mautrix/id"
)

// Room is a room this server takes part in.
type Room struct {
	RoomID      id.RoomID
	RoomVersion string
	Creator     id.UserID
	CreatedAt   int64
	// Published: listed in the public room directory.
	Published bool
}

// Event is a persisted PDU with what the server derived from it.
type Event struct {
	// StreamPos is the event's position in the global event stream; events
	// inserted before a room's history (backfill) get negative positions.
	StreamPos      int64
	EventID        id.EventID
	RoomID         id.RoomID
	Type           string
	StateKey       *string
	Sender         id.UserID
	OriginServerTS int64
	Depth          int64
	// JSON is the PDU exactly as it goes over federation.
	JSON []byte
	// StateGroup is the state after this event.
	StateGroup int64
	Rejected   bool
	SoftFailed bool
	// RedactedBy is the redaction that applies to this event, if any.
	RedactedBy id.EventID
	// Relation of this event to another (m.relates_to), if any.
	RelatesTo id.EventID
	RelType   string
	// Membership is content.membership for m.room.member events.
	Membership string
	// ReplacesState is the state event this one replaced (for prev_content).
	ReplacesState id.EventID
	// Outlier: stored for its content alone, outside the room's timeline
	// (state and auth events a resident server sent when this server
	// joined over federation, state fetched to fill a gap). No timeline,
	// history, relation or search query returns it; its StateGroup is 0
	// (the state at it is unknown) unless the state after it is known.
	Outlier bool
}

// StateEntry is one (type, state_key) of a room state; EventID "" in a delta
// removes the key.
type StateEntry struct {
	Type     string
	StateKey string
	EventID  id.EventID
}

// StateGroup is a snapshot (PrevGroup 0) or a delta on PrevGroup.
type StateGroup struct {
	GroupID   int64
	RoomID    id.RoomID
	PrevGroup int64
	ChainLen  int64
	Entries   []StateEntry
}

// CurrentMember is a row of a room's current membership.
type CurrentMember struct {
	RoomID     id.RoomID
	UserID     id.UserID
	EventID    id.EventID
	Membership string
}

// EventWrite is everything persisted for one new event, in one transaction
// with the others of its batch.
type EventWrite struct {
	Event *Event
	// NewGroup, when not nil, is the state group created by this event.
	NewGroup *StateGroup
	// CurrentState entries to set (the event itself for state events); an
	// entry with no EventID removes the key from the current state (state
	// resolution left no candidate for it).
	CurrentState []StateEntry
	// Extremities replaces the room's forward extremities when not nil.
	Extremities []id.EventID
	// Txn records the client transaction ID that made the event.
	Txn *EventTxn
	// Alias is the event ID the appservice that batch sent the event chose
	// for it ("" for none); it is recorded in the same transaction, which
	// fails with ErrConflict if the alias is taken.
	Alias id.EventID
	// Message, with an Alias, names the network message the event is (a
	// part of), or the reaction it is, for a bridge continuing in the room
	// (BridgeMessage: MessageID, PartID, SenderID, EmojiID; the rest is
	// the event's): recorded with the alias, in the same row.
	Message *BridgeMessage
	// History puts the event before every timeline event (backward batch
	// send): it takes a negative stream position, below all earlier history.
	// A batch is all history or none.
	History bool
	// Redacts is the event this (redaction) event redacts, marked in the same transaction.
	Redacts id.EventID
	// Replace: the event is stored already, as an outlier; its row takes
	// this write's stream position, state group, outlier, rejected and
	// soft-failed flags (the state after it was fetched, or it was
	// backfilled into the timeline) instead of being inserted.
	Replace bool
	// OutlierStateless makes outliers of the events of the room stored
	// without a state (state group 0: invites, knocks and their refusals
	// kept while this server was not in the room), in the same
	// transaction: the room's timeline begins with this event.
	OutlierStateless bool
	// PushDefault, when set, is the notification every local member but
	// the event's sender gets from this event (its UserID is empty),
	// unless PushActions has one of their own for them; PushActions are
	// those (or, without a default, the notifications of the users
	// notified).
	PushDefault *PushAction
	PushActions []PushAction
	// Queued are the consumers interested in the event (appservices now;
	// federation destinations and bridge plugins next): it is queued for
	// each in the same transaction (InterestQueues).
	Queued []Consumer
	// PushQueue are the notified users with pushers: the event is queued
	// for each of their HTTP pushers in the same transaction.
	PushQueue []PushQueued
}

// EventTxn maps a client's transaction ID to the event it created. A
// transaction ID is scoped by the device and the endpoint (client-server
// API, "Transaction identifiers"): the request's method and path without
// the ID, in a form core/rooms chooses.
type EventTxn struct {
	UserID   id.UserID
	DeviceID id.DeviceID
	Endpoint string
	TxnID    string
	EventID  id.EventID
}

// RoomAlias maps an alias to a room.
type RoomAlias struct {
	Alias   id.RoomAlias
	RoomID  id.RoomID
	Creator id.UserID
}

// RoomSummary is what /sync's room summary tells of a room's members.
type RoomSummary struct {
	Joined, Invited int
	// Heroes are the first five joined or invited members by user ID.
	Heroes []id.UserID
}

// Rooms stores rooms, their events, state and aliases.
type Rooms interface {
	CreateRoomRecord(ctx context.Context, r *Room) error
	GetRoom(ctx context.Context, roomID id.RoomID) (*Room, error)
	// GetRooms reads the rooms of ids that exist, in no order.
	GetRooms(ctx context.Context, ids []id.RoomID) ([]*Room, error)
	// RoomSummaries counts each room's joined and invited members and names
	// the first five of them (by user ID) other than user, in one read.
	RoomSummaries(ctx context.Context, rooms []id.RoomID, user id.UserID) (map[id.RoomID]*RoomSummary, error)
	// RemoteJoinedRooms are those of rooms with a joined member whose user ID
	// does not end in ":"+local (a member of another server), in no order.
	RemoteJoinedRooms(ctx context.Context, rooms []id.RoomID, local string) ([]id.RoomID, error)
	SetRoomPublished(ctx context.Context, roomID id.RoomID, published bool) error
	ListPublishedRooms(ctx context.Context) ([]id.RoomID, error)
	// ListRoomIDs is every room this server holds, sorted.
	ListRoomIDs(ctx context.Context) ([]id.RoomID, error)

	// ResolveEventAliases maps event ID aliases to the real event IDs (those
	// unknown are left out).
	ResolveEventAliases(ctx context.Context, aliases []id.EventID) (map[id.EventID]id.EventID, error)
	// EventAliases maps real event IDs to their aliases (those without are
	// left out).
	EventAliases(ctx context.Context, eventIDs []id.EventID) (map[id.EventID]id.EventID, error)
	// PersistEvents writes a batch of events in order, giving each the next
	// stream position (written into Event.StreamPos).
	PersistEvents(ctx context.Context, writes []*EventWrite) error
	// ReserveStateGroupIDs reserves n state group IDs and returns the first;
	// writers hand them out from memory so that a commit needs no extra query.
	ReserveStateGroupIDs(ctx context.Context, n int64) (int64, error)
	GetEvent(ctx context.Context, eventID id.EventID) (*Event, error)
	GetEvents(ctx context.Context, eventIDs []id.EventID) ([]*Event, error)
	// RoomEvents pages through a room's events by stream position: from
	// (exclusive) backwards when backwards, else forwards; to bounds it
	// (exclusive, 0 for none).
	RoomEvents(ctx context.Context, roomID id.RoomID, from, to int64, backwards bool, limit int) ([]*Event, error)
	// EventByTimestamp finds the closest event at or after (forwards) / at or before ts.
	EventByTimestamp(ctx context.Context, roomID id.RoomID, ts int64, forwards bool) (*Event, error)
	SetRedactedBy(ctx context.Context, eventID, redactionID id.EventID) error
	// Relations lists events relating to eventID, optionally filtered.
	Relations(ctx context.Context, eventID id.EventID, relType, eventType string, from int64, backwards bool, limit int) ([]*Event, error)
	// ThreadRoots lists thread roots of a room by latest activity.
	ThreadRoots(ctx context.Context, roomID id.RoomID, from int64, limit int) ([]*Event, error)
	MaxStreamPos(ctx context.Context) (int64, error)
	// SearchEvents finds the events whose SearchableText matches the
	// query, in its order; redacted, rejected and soft-failed events never
	// match (a redaction takes its target out of the index).
	SearchEvents(ctx context.Context, q *EventSearch) ([]SearchHit, error)
	// CountSearchEvents counts the events SearchEvents would find without
	// a limit, per room, sender and state group (what history visibility
	// depends on), in no particular order.
	CountSearchEvents(ctx context.Context, q *EventSearch) ([]SearchCount, error)

	GetStateGroup(ctx context.Context, groupID int64) (*StateGroup, error)
	GetForwardExtremities(ctx context.Context, roomID id.RoomID) ([]id.EventID, error)
	CurrentState(ctx context.Context, roomID id.RoomID) ([]StateEntry, error)
	CurrentStateEvent(ctx context.Context, roomID id.RoomID, evType, stateKey string) (id.EventID, error)
	// RoomsOfUser lists rooms where the user's current membership is one of memberships.
	RoomsOfUser(ctx context.Context, userID id.UserID, memberships []string) ([]CurrentMember, error)
	// RoomMembers lists the current members of a room with the given memberships (all when empty).
	RoomMembers(ctx context.Context, roomID id.RoomID, memberships []string) ([]CurrentMember, error)

	GetEventTxn(ctx context.Context, userID id.UserID, deviceID id.DeviceID, endpoint, txnID string) (id.EventID, error)

	CreateAlias(ctx context.Context, a *RoomAlias) error
	GetAlias(ctx context.Context, alias id.RoomAlias) (*RoomAlias, error)
	DeleteAlias(ctx context.Context, alias id.RoomAlias) error
	AliasesOfRoom(ctx context.Context, roomID id.RoomID) ([]id.RoomAlias, error)
}

// StateReader reads historical state.
type StateReader interface {
	// StateAt returns the full state of a state group (walking its delta chain).
	StateAt(ctx context.Context, groupID int64) ([]StateEntry, error)
	// StateEntryAt returns the event ID for one key in a state group, "" if unset.
	StateEntryAt(ctx context.Context, groupID int64, evType, stateKey string) (id.EventID, error)
	// StateEventAt is the event of StateEntryAt, read with it (ErrNotFound
	// if the key is unset or its event is missing).
	StateEventAt(ctx context.Context, groupID int64, evType, stateKey string) (*Event, error)
	// StatesAt is StateAt for many groups at once, by group.
	StatesAt(ctx context.Context, groups []int64) (map[int64][]StateEntry, error)
	// StateEntriesAt is StateEntryAt for many groups at once, by group
	// (groups without the key are left out).
	StateEntriesAt(ctx context.Context, groups []int64, evType, stateKey string) (map[int64]id.EventID, error)
}

// Report is a user's report of a room, an event or a user to the server admins.
type Report struct {
	ReportID     string
	RoomID       id.RoomID
	EventID      id.EventID
	ReportedUser id.UserID
	Reporter     id.UserID
	Reason       string
	Score        *int64
	CreatedAt    int64
}

// RoomExtras stores per-user room flags and reports.
type RoomExtras interface {
	SetForgotten(ctx context.Context, userID id.UserID, roomID id.RoomID, forgotten bool) error
	IsForgotten(ctx context.Context, userID id.UserID, roomID id.RoomID) (bool, error)
	CreateReport(ctx context.Context, r *Report) error
	// EventReports are the reports of events (not of rooms or users
	// alone), newest first unless oldestFirst, filtered by room and
	// reporter when given, from offset, at most limit; with the total.
	EventReports(ctx context.Context, roomID id.RoomID, reporter id.UserID, oldestFirst bool, offset, limit int) ([]*Report, int, error)
	// GetReport returns one report (ErrNotFound).
	GetReport(ctx context.Context, reportID string) (*Report, error)
	// DeleteReport deletes one report (ErrNotFound).
	DeleteReport(ctx context.Context, reportID string) error
	// SetRoomBlocked blocks (by is the admin) or unblocks a room.
	SetRoomBlocked(ctx context.Context, roomID id.RoomID, blocked bool, by id.UserID, at int64) error
	// RoomBlockedBy is the admin who blocked the room ("" when it is not).
	RoomBlockedBy(ctx context.Context, roomID id.RoomID) (id.UserID, error)
	// PurgeRoom deletes every row of the room (its block stays).
	PurgeRoom(ctx context.Context, roomID id.RoomID) error
	// PurgeHistory deletes a room's history before a point (see
	// HistoryPurge) in one transaction and returns how many events went.
	PurgeHistory(ctx context.Context, p *HistoryPurge) (int, error)
	// SenderEvents are the sender's timeline events in the room that are
	// neither state, redactions nor redacted, sent at or after afterTS and
	// at or before beforeTS (0: unbounded), newest first, at most limit.
	SenderEvents(ctx context.Context, roomID id.RoomID, sender id.UserID, afterTS, beforeTS int64, limit int) ([]*Event, error)
	// DeleteForwardExtremities deletes the room's forward extremities but
	// keep and returns how many went.
	DeleteForwardExtremities(ctx context.Context, roomID id.RoomID, keep id.EventID) (int, error)
	// MediaEvents are the room's events whose JSON holds an mxc:// URI.
	MediaEvents(ctx context.Context, roomID id.RoomID) ([]*Event, error)
}

// HistoryPurge is an admin's purge of a room's history: the timeline
// events before stream position Before are deleted with the rows that
// depend on them, but state events (the room needs them to go on) and, when
// KeepServer is set, the events of that server's users stay, as outliers:
// no timeline reaches them any more, but the state events are still the
// room's state changes (StateEventsBetween lists them).
type HistoryPurge struct {
	RoomID     id.RoomID
	Before     int64
	KeepServer string
}

// RelationAggregate counts the children of one parent event by relation
// type and sender.
type RelationAggregate struct {
	Parent    id.EventID
	RelType   string
	Sender    id.UserID
	Count     int64
	LatestPos int64
}

// Relations aggregation for unsigned.m.relations.
type RelationReader interface {
	// RelationSpan is the lowest and highest stream position of the
	// room's m.thread and m.replace events (ok false when it has none).
	RelationSpan(ctx context.Context, roomID id.RoomID) (lowest, highest int64, ok bool, err error)
	// RelationSpans is RelationSpan for many rooms at once: [lowest,
	// highest] of each room that has such events.
	RelationSpans(ctx context.Context, rooms []id.RoomID) (map[id.RoomID][2]int64, error)
	// RelationAggregates groups the m.thread and m.replace children of the parents.
	RelationAggregates(ctx context.Context, parents []id.EventID) ([]RelationAggregate, error)
	GetEventsByPos(ctx context.Context, positions []int64) ([]*Event, error)
}

// TxnLookup finds the client transactions that made events.
type TxnLookup interface {
	// TxnIDsOf maps the events at the given stream positions that the
	// user's device sent to their client transaction IDs.
	TxnIDsOf(ctx context.Context, userID id.UserID, deviceID id.DeviceID, positions []int64) (map[id.EventID]string, error)
	// TxnsOf maps those of the events at the given stream positions that a
	// client transaction made to it (UserID, DeviceID, TxnID and EventID;
	// not Endpoint). An event's transaction is stored with it and never
	// changes. Events are named by position: the transactions are kept in
	// that order, so that a commit of many sends writes the end of one
	// index rather than a random place of it for each.
	TxnsOf(ctx context.Context, positions []int64) (map[id.EventID]EventTxn, error)
}
