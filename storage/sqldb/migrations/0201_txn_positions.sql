-- unsigned.transaction_id (0040) looked a sync page's events up in
-- event_txns by event ID: an index keyed by a hash, one random leaf written
-- per send. By the event's stream position instead, a commit writes the
-- index's last leaf, once for all its sends. The rows stored before take
-- their events' positions (those of events no longer stored keep 0).
ALTER TABLE event_txns ADD COLUMN stream_pos BIGINT NOT NULL DEFAULT 0;
UPDATE event_txns SET stream_pos = e.stream_pos FROM events e WHERE e.event_id = event_txns.event_id;
-- The index holds the whole row: on SQLite the primary key's columns are
-- in it anyway (WITHOUT ROWID).
-- only: sqlite
CREATE INDEX event_txns_pos ON event_txns (stream_pos, event_id);
-- only: postgres
CREATE INDEX event_txns_pos ON event_txns (stream_pos) INCLUDE (event_id, user_id, device_id, txn_id);
DROP INDEX event_txns_event_cover;
