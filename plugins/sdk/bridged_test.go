package sdk

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"maunium.net/go/mautrix/bridgev2"
	"maunium.net/go/mautrix/bridgev2/database"
	"maunium.net/go/mautrix/bridgev2/networkid"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

// TestAlreadyBridged: an event delivered again (a plugin stopped after
// bridging it, before its transaction was acknowledged) is recognised from
// bridgev2's message and reaction rows, so the network does not get it twice.
func TestAlreadyBridged(t *testing.T) {
	ctx := context.Background()
	raw, err := openSQLite(filepath.Join(t.TempDir(), "bridge.db"))
	if err != nil {
		t.Fatal(err)
	}
	// One connection without foreign keys: the rows below stand alone
	// (no ghosts, users or logins behind them).
	raw.RawDB.SetMaxOpenConns(1)
	if _, err := raw.Exec(ctx, "PRAGMA foreign_keys = OFF"); err != nil {
		t.Fatal(err)
	}
	db := database.New("test", database.MetaTypes{}, raw)
	if err := db.Upgrade(ctx); err != nil {
		t.Fatal(err)
	}
	br := &bridgev2.Bridge{DB: db}
	key := networkid.PortalKey{ID: "chat"}
	if err := db.Portal.Insert(ctx, &database.Portal{PortalKey: key, MXID: "!room:example.org"}); err != nil {
		t.Fatal(err)
	}
	if err := db.Message.Insert(ctx, &database.Message{ID: "m1", MXID: "$sent", Room: key, SenderID: "u",
		Timestamp: time.Unix(1, 0)}); err != nil {
		t.Fatal(err)
	}
	if err := db.Reaction.Upsert(ctx, &database.Reaction{Room: key, MessageID: "m1", SenderID: "u", EmojiID: "e",
		MXID: "$reacted", Timestamp: time.Unix(2, 0)}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		typ  event.Type
		id   id.EventID
		want bool
	}{
		{event.EventMessage, "$sent", true},
		{event.EventSticker, "$sent", true},
		{event.EventMessage, "$new", false},
		{event.EventReaction, "$reacted", true},
		{event.EventReaction, "$other", false},
		{event.EventRedaction, "$sent", false}, // only messages and reactions are looked up
	} {
		if got := alreadyBridged(ctx, br, &event.Event{Type: c.typ, ID: c.id}); got != c.want {
			t.Errorf("%s %s: already bridged %v, want %v", c.typ.Type, c.id, got, c.want)
		}
	}
}
