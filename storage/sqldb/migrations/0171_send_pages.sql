-- Fewer pages written per send (a one-message commit wrote ~20 to the
-- WAL after migration 0170).

-- Relations are looked up by their parent, never by the '' of the events
-- that relate to nothing (almost all): those leave the index, and a plain
-- message no longer writes its end. Queries of it say relates_to <> ''.
DROP INDEX events_relates;
CREATE INDEX events_relates ON events (relates_to, stream_pos) WHERE relates_to <> '';

-- SQLite: tables keyed by their primary key alone keep their rows in that
-- key's tree (WITHOUT ROWID) instead of a rowid table and an index of the
-- key: one tree fewer written per commit for each.
-- only: sqlite
CREATE TABLE forward_extremities_new (
    room_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    PRIMARY KEY (room_id, event_id)
) WITHOUT ROWID;
-- only: sqlite
INSERT INTO forward_extremities_new (room_id, event_id) SELECT room_id, event_id FROM forward_extremities;
-- only: sqlite
DROP TABLE forward_extremities;
-- only: sqlite
ALTER TABLE forward_extremities_new RENAME TO forward_extremities;

-- only: sqlite
CREATE TABLE event_txns_new (
    user_id TEXT NOT NULL,
    device_id TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    txn_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    PRIMARY KEY (user_id, device_id, endpoint, txn_id)
) WITHOUT ROWID;
-- only: sqlite
INSERT INTO event_txns_new (user_id, device_id, endpoint, txn_id, event_id)
    SELECT user_id, device_id, endpoint, txn_id, event_id FROM event_txns;
-- only: sqlite
DROP TABLE event_txns;
-- only: sqlite
ALTER TABLE event_txns_new RENAME TO event_txns;
-- unsigned.transaction_id of a sync page's events (see 0040); the rows of a
-- table without rowid carry their key, so the index holds the whole row.
-- only: sqlite
CREATE INDEX event_txns_event_cover ON event_txns (event_id, user_id, device_id, txn_id);
