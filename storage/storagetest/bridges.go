package storagetest

import (
	"errors"
	"testing"

	"github.com/tributary-hs/tributary/storage"
)

var bridgeTests = []struct {
	name string
	fn   func(t *testing.T, s storage.Store)
}{
	{"BridgePortals/CreateGetList", testBridgePortals},
	{"BridgePortals/Media", testBridgeMedia},
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
