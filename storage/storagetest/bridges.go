package storagetest

import (
	"errors"
	"testing"

	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/storage"
)

var bridgeTests = []struct {
	name string
	fn   func(t *testing.T, s storage.Store)
}{
	{"BridgePortals/CreateGetList", testBridgePortals},
	{"BridgePortals/Media", testBridgeMedia},
	{"BridgePortals/Messages", testBridgeMessages},
}

func testBridgePortals(t *testing.T, s storage.Store) {
	c := ctx(t)
	if _, err := s.GetBridgePortal(c, "slack", "T1-C1", ""); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("unknown portal: %v, want ErrNotFound", err)
	}
	p := &storage.BridgePortal{Network: "slack", PortalID: "T1-C1", RoomID: "!a:hs", Kind: "channel", CreatedTS: 5}
	must(t, s.CreateBridgePortal(c, p))
	must(t, s.CreateBridgePortal(c, &storage.BridgePortal{Network: "slack", PortalID: "T1", RoomID: "!space:hs", Kind: "space"}))
	must(t, s.CreateBridgePortal(c, &storage.BridgePortal{Network: "discord", PortalID: "T1-C1", RoomID: "!d:hs", Kind: "channel"}))
	if err := s.CreateBridgePortal(c, &storage.BridgePortal{Network: "slack", PortalID: "T1-C1", RoomID: "!b:hs", Kind: "channel"}); !errors.Is(err, storage.ErrConflict) {
		t.Fatalf("a second room for a portal: %v, want ErrConflict", err)
	}
	if err := s.CreateBridgePortal(c, &storage.BridgePortal{Network: "slack", PortalID: "T1-C2", RoomID: "!a:hs", Kind: "channel"}); !errors.Is(err, storage.ErrConflict) {
		t.Fatalf("a room for two portals: %v, want ErrConflict", err)
	}
	got, err := s.GetBridgePortal(c, "slack", "T1-C1", "")
	must(t, err)
	eq(t, "room", got.RoomID, p.RoomID)
	eq(t, "kind", got.Kind, "channel")
	eq(t, "cursor", got.ImportCursor, "")
	eq(t, "created", got.CreatedTS, 5)
	must(t, s.SetBridgePortalImport(c, "slack", "T1-C1", "", "1700000000.000100", `{"pins":["1"]}`))
	got, err = s.GetBridgePortal(c, "slack", "T1-C1", "")
	must(t, err)
	eq(t, "cursor after an import", got.ImportCursor, "1700000000.000100")
	eq(t, "meta after an import", got.ImportMeta, `{"pins":["1"]}`)
	if err := s.SetBridgePortalImport(c, "slack", "T1-C9", "", "1", ""); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("cursor of an unknown portal: %v, want ErrNotFound", err)
	}
	list, err := s.ListBridgePortals(c, "slack")
	must(t, err)
	eq(t, "slack portals", len(list), 2)
	eq(t, "first by portal ID", list[0].PortalID, "T1")
	eq(t, "second", list[1].PortalID, "T1-C1")
}

func testBridgeMedia(t *testing.T, s storage.Store) {
	c := ctx(t)
	if _, err := s.GetBridgeMedia(c, "slack", "F1"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("unknown file: %v, want ErrNotFound", err)
	}
	must(t, s.PutBridgeMedia(c, "slack", "F1", "mxc://hs/one"))
	must(t, s.PutBridgeMedia(c, "slack", "F1", "mxc://hs/two"))
	got, err := s.GetBridgeMedia(c, "slack", "F1")
	must(t, err)
	eq(t, "the first upload stays", got, "mxc://hs/one")
	if _, err := s.GetBridgeMedia(c, "discord", "F1"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("another network's file: %v, want ErrNotFound", err)
	}
}

// testBridgeMessages: the message parts an import recorded are found from
// their real events and from the message, once their events are written.
func testBridgeMessages(t *testing.T, s storage.Store) {
	c := ctx(t)
	must(t, s.CreateBridgePortal(c, &storage.BridgePortal{Network: "slack", PortalID: "T1-C1", RoomID: roomA, Kind: "channel"}))
	got, err := s.GetBridgePortalByRoom(c, roomA)
	must(t, err)
	eq(t, "portal of the room", got.PortalID, "T1-C1")
	_, err = s.GetBridgePortalByRoom(c, roomB)
	wantErr(t, err, storage.ErrNotFound, "portal of another room")

	// Recorded with the events' aliases, in their transaction.
	writes := bare(ev(roomA, "$t1", "m.room.message"), ev(roomA, "$f1", "m.room.message"))
	writes[0].Alias, writes[1].Alias = "$text:bridge", "$file:bridge"
	writes[0].Message = &storage.BridgeMessage{MessageID: "T1-C1-1.000001"}
	writes[1].Message = &storage.BridgeMessage{MessageID: "T1-C1-1.000001", PartID: "file-1-F1", SenderID: "t1-u1"}
	must(t, s.PersistEvents(c, writes))
	// Recorded again (a resumed import): the batch is refused, what was
	// recorded stays.
	again := bare(ev(roomA, "$t1again", "m.room.message"))
	again[0].Alias, again[0].Message = "$text:bridge", &storage.BridgeMessage{MessageID: "T1-C1-9.000001"}
	wantErr(t, s.PersistEvents(c, again), storage.ErrConflict, "an alias written again")
	// A plain alias (a bridge's batch send) names no message.
	plain := bare(ev(roomA, "$p1", "m.room.message"))
	plain[0].Alias = "$plain:bridge"
	must(t, s.PersistEvents(c, plain))
	_, err = s.BridgeMessageOf(c, "$plain:bridge")
	wantErr(t, err, storage.ErrNotFound, "an alias without a message")

	m, err := s.BridgeMessageOf(c, "$f1")
	must(t, err)
	eq(t, "message of the file", m.MessageID, "T1-C1-1.000001")
	eq(t, "part", m.PartID, "file-1-F1")
	eq(t, "room", m.RoomID, roomA)
	eq(t, "sender", m.SenderID, "t1-u1")
	m, err = s.BridgeMessageOf(c, "$file:bridge")
	must(t, err)
	eq(t, "message of the file's alias", m.MessageID, "T1-C1-1.000001")
	eq(t, "its real event", m.EventID, id.EventID("$f1"))
	_, err = s.BridgeMessageOf(c, "$unknown")
	wantErr(t, err, storage.ErrNotFound, "an event no import recorded")
	parts, err := s.BridgeMessageParts(c, roomA, "T1-C1-1.000001")
	must(t, err)
	eq(t, "parts", len(parts), 2)
	eq(t, "first part's event", parts[0].EventID, id.EventID("$t1"))
	eq(t, "second part", parts[1].PartID, "file-1-F1")
	parts, err = s.BridgeMessageParts(c, roomA, "T1-C1-9.000001")
	must(t, err)
	eq(t, "parts of a message whose batch was refused", len(parts), 0)

	// Reactions: recorded beside the parts, found from their events and
	// listed per message; never taken for a part.
	reacts := bare(ev(roomA, "$r1", "m.reaction"), ev(roomA, "$r2", "m.reaction"))
	reacts[0].Alias, reacts[1].Alias = "$react:bridge", "$react2:bridge"
	reacts[0].Message = &storage.BridgeMessage{MessageID: "T1-C1-1.000001", SenderID: "t1-u2", EmojiID: "tada"}
	reacts[1].Message = &storage.BridgeMessage{MessageID: "T1-C1-1.000001", SenderID: "t1-u3", EmojiID: "tada"}
	must(t, s.PersistEvents(c, reacts))
	m, err = s.BridgeMessageOf(c, "$r1")
	must(t, err)
	eq(t, "message reacted to", m.MessageID, "T1-C1-1.000001")
	eq(t, "reaction's emoji", m.EmojiID, "tada")
	eq(t, "reaction's sender", m.SenderID, "t1-u2")
	m, err = s.BridgeMessageOf(c, "$react2:bridge")
	must(t, err)
	eq(t, "reaction by alias", m.EventID, id.EventID("$r2"))
	reactions, err := s.BridgeMessageReactions(c, roomA, "T1-C1-1.000001")
	must(t, err)
	eq(t, "reactions", len(reactions), 2)
	eq(t, "first reaction's event", reactions[0].EventID, id.EventID("$r1"))
	eq(t, "second reaction's sender", reactions[1].SenderID, "t1-u3")
	parts, err = s.BridgeMessageParts(c, roomA, "T1-C1-1.000001")
	must(t, err)
	eq(t, "parts beside the reactions", len(parts), 2)
	eq(t, "a part has no emoji", parts[0].EmojiID, "")
}
