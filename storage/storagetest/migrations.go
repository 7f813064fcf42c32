package storagetest

import (
	"encoding/json"
	"fmt"
	"testing"

	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/storage"
)

// TxnScopeVersion is the first migration after which client transaction
// IDs are scoped by endpoint; TxnScopeMigration writes rows in the schema
// before it.
const TxnScopeVersion = "0023"

// TxnScopeMigration checks that transaction IDs stored before they were
// scoped by endpoint keep answering retries of the requests that stored
// them: exec runs SQL on a database migrated up to, not including,
// TxnScopeVersion; open then opens it as a store, which migrates it.
func TxnScopeMigration(t *testing.T, exec func(query string) error, open func(t *testing.T) storage.Store) {
	for _, q := range []string{
		// A message, a message whose ID begins with "~" (its key doubled
		// the "~"), a redaction in room version 11 (target in content) and
		// one in version 10 (target at the top level).
		`INSERT INTO events (stream_pos, event_id, room_id, type, sender, origin_server_ts, depth, json, state_group)
			VALUES (1, '$m1', '!a:x', 'm.room.message', '@alice:x', 1, 1, '{"content":{"body":"one"}}', 0)`,
		`INSERT INTO events (stream_pos, event_id, room_id, type, sender, origin_server_ts, depth, json, state_group)
			VALUES (2, '$m2', '!a:x', 'm.room.message', '@alice:x', 2, 2, '{"content":{"body":"two"}}', 0)`,
		`INSERT INTO events (stream_pos, event_id, room_id, type, sender, origin_server_ts, depth, json, state_group)
			VALUES (3, '$r1', '!a:x', 'm.room.redaction', '@alice:x', 3, 3, '{"content":{"redacts":"$m1"}}', 0)`,
		`INSERT INTO events (stream_pos, event_id, room_id, type, sender, origin_server_ts, depth, json, state_group)
			VALUES (4, '$r2', '!b:x', 'm.room.redaction', '@alice:x', 4, 4, '{"content":{},"redacts":"$m9"}', 0)`,
		`INSERT INTO event_txns (user_id, device_id, txn_id, event_id) VALUES ('@alice:x', 'DEV', 't1', '$m1')`,
		`INSERT INTO event_txns (user_id, device_id, txn_id, event_id) VALUES ('@alice:x', 'DEV', '~~tilde', '$m2')`,
		`INSERT INTO event_txns (user_id, device_id, txn_id, event_id) VALUES ('@alice:x', 'DEV', '~rt1', '$r1')`,
		`INSERT INTO event_txns (user_id, device_id, txn_id, event_id) VALUES ('@alice:x', 'DEV', '~rt2', '$r2')`,
		`INSERT INTO to_device_txns (sender, device_id, txn_id) VALUES ('@alice:x', 'DEV', 'old')`,
	} {
		if err := exec(q); err != nil {
			t.Fatalf("writing the old rows: %v\n%s", err, q)
		}
	}
	s := open(t)
	c := ctx(t)
	const user, device = id.UserID("@alice:x"), id.DeviceID("DEV")
	for _, tc := range []struct {
		endpoint, txn string
		want          id.EventID
	}{
		{"send !a:x m.room.message", "t1", "$m1"},
		{"send !a:x m.room.message", "~tilde", "$m2"},
		{"redact !a:x $m1", "t1", "$r1"},
		{"redact !b:x $m9", "t2", "$r2"},
	} {
		got, err := s.GetEventTxn(c, user, device, tc.endpoint, tc.txn)
		if err != nil || got != tc.want {
			t.Errorf("old transaction %q on %q: %q, %v; want %s", tc.txn, tc.endpoint, got, err, tc.want)
		}
	}
	// A key stood for one endpoint: the same ID elsewhere is free.
	for _, endpoint := range []string{"send !b:x m.room.message", "send !a:x m.reaction", "redact !a:x $m2"} {
		if _, err := s.GetEventTxn(c, user, device, endpoint, "t1"); err == nil {
			t.Errorf("old transaction t1 answers on %q too", endpoint)
		}
	}
	// The old rows take their events' positions.
	ids, err := s.TxnIDsOf(c, user, device, []int64{1, 2, 3, 4})
	must(t, err)
	eq(t, "the clients' transaction IDs", fmt.Sprint(ids),
		fmt.Sprint(map[id.EventID]string{"$m1": "t1", "$m2": "~tilde", "$r1": "t1", "$r2": "t2"}))

	// An old to-device transaction did not record its event type: it
	// stands for any. New ones are scoped by type.
	msg := func() []*storage.ToDeviceMessage {
		return []*storage.ToDeviceMessage{{UserID: "@bob:x", DeviceID: "B", Sender: user, Type: "m.x",
			Content: json.RawMessage(`{}`)}}
	}
	for _, tc := range []struct {
		evType, txn string
		queued      bool
	}{
		{"m.x", "old", false},
		{"m.y", "old", false},
		{"m.x", "new", true},
		{"m.x", "new", false},
		{"m.y", "new", true},
	} {
		pos, err := s.QueueToDevice(c, user, device, tc.evType, tc.txn, msg())
		must(t, err)
		if (pos > 0) != tc.queued {
			t.Errorf("to-device %s/%s: position %d, want queued %v", tc.evType, tc.txn, pos, tc.queued)
		}
	}
}

// AliasMessagesVersion is the migration that moves bridge_messages and
// bridge_reactions into event_aliases; AliasMessagesMigration writes rows
// in the schema before it.
const AliasMessagesVersion = "0160"

// AliasMessagesMigration checks that the messages and reactions an import
// recorded before AliasMessagesVersion are found as they were after it:
// exec runs SQL on a database migrated up to, not including, that version;
// open then opens it as a store, which migrates it.
func AliasMessagesMigration(t *testing.T, exec func(query string) error, open func(t *testing.T) storage.Store) {
	for _, q := range []string{
		`INSERT INTO events (stream_pos, event_id, room_id, type, sender, origin_server_ts, depth, json, state_group)
			VALUES (1, '$t1', '!a:x', 'm.room.message', '@u1:x', 1, 1, '{}', 0)`,
		`INSERT INTO events (stream_pos, event_id, room_id, type, sender, origin_server_ts, depth, json, state_group)
			VALUES (2, '$f1', '!a:x', 'm.room.message', '@u1:x', 2, 2, '{}', 0)`,
		`INSERT INTO events (stream_pos, event_id, room_id, type, sender, origin_server_ts, depth, json, state_group)
			VALUES (3, '$r1', '!a:x', 'm.reaction', '@u2:x', 3, 3, '{}', 0)`,
		`INSERT INTO events (stream_pos, event_id, room_id, type, sender, origin_server_ts, depth, json, state_group)
			VALUES (-1, '$p1', '!a:x', 'm.room.message', '@u1:x', 4, 4, '{}', 0)`,
		`INSERT INTO event_aliases (alias, event_id, room_id) VALUES ('$text:b', '$t1', '!a:x')`,
		`INSERT INTO event_aliases (alias, event_id, room_id) VALUES ('$file:b', '$f1', '!a:x')`,
		`INSERT INTO event_aliases (alias, event_id, room_id) VALUES ('$react:b', '$r1', '!a:x')`,
		`INSERT INTO event_aliases (alias, event_id, room_id) VALUES ('$plain:b', '$p1', '!a:x')`,
		`INSERT INTO bridge_messages (room_id, message_id, part_id, alias, sender_id) VALUES ('!a:x', 'M1', '', '$text:b', 'u1')`,
		`INSERT INTO bridge_messages (room_id, message_id, part_id, alias, sender_id) VALUES ('!a:x', 'M1', 'file-1', '$file:b', 'u1')`,
		// Recorded, but its batch never landed: it names no event.
		`INSERT INTO bridge_messages (room_id, message_id, part_id, alias, sender_id) VALUES ('!a:x', 'M2', '', '$lost:b', 'u1')`,
		`INSERT INTO bridge_reactions (room_id, message_id, part_id, sender_id, emoji_id, alias) VALUES ('!a:x', 'M1', '', 'u2', 'tada', '$react:b')`,
	} {
		if err := exec(q); err != nil {
			t.Fatalf("writing the old rows: %v\n%s", err, q)
		}
	}
	s := open(t)
	c := ctx(t)
	m, err := s.BridgeMessageOf(c, "$f1")
	must(t, err)
	eq(t, "message of the file", m.MessageID, "M1")
	eq(t, "part", m.PartID, "file-1")
	eq(t, "sender", m.SenderID, "u1")
	eq(t, "alias", m.Alias, id.EventID("$file:b"))
	parts, err := s.BridgeMessageParts(c, "!a:x", "M1")
	must(t, err)
	eq(t, "parts", len(parts), 2)
	eq(t, "first part's event", parts[0].EventID, id.EventID("$t1"))
	reactions, err := s.BridgeMessageReactions(c, "!a:x", "M1")
	must(t, err)
	eq(t, "reactions", len(reactions), 1)
	eq(t, "reaction's emoji", reactions[0].EmojiID, "tada")
	eq(t, "reaction's sender", reactions[0].SenderID, "u2")
	eq(t, "reaction's event", reactions[0].EventID, id.EventID("$r1"))
	_, err = s.BridgeMessageOf(c, "$p1")
	wantErr(t, err, storage.ErrNotFound, "an alias that named no message")
	parts, err = s.BridgeMessageParts(c, "!a:x", "M2")
	must(t, err)
	eq(t, "parts of a message never written", len(parts), 0)
	got, err := s.ResolveEventAliases(c, []id.EventID{"$text:b", "$plain:b", "$lost:b"})
	must(t, err)
	eq(t, "aliases kept", len(got), 2)
	eq(t, "an alias's event", got["$plain:b"], id.EventID("$p1"))
	back, err := s.EventAliases(c, []id.EventID{"$t1", "$p1", "$nothing"})
	must(t, err)
	eq(t, "events' aliases", len(back), 2)
	eq(t, "an event's alias", back["$p1"], id.EventID("$plain:b"))
}
