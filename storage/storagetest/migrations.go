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
	ids, err := s.TxnIDsOf(c, user, device, []id.EventID{"$m1", "$m2", "$r1", "$r2"})
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
