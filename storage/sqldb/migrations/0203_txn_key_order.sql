-- event_txns' key begins with the client's transaction ID instead of the
-- user: clients make their IDs of the time (Element "m<ms>.<n>",
-- mautrix-go "mautrix-go_<ns>_<n>"), so the sends of many users at once
-- go to one leaf of the key, where each sender's went to a leaf of its own
-- (in BenchmarkSendEvents/sqlite/senders=16, 19 of the 52 pages a commit
-- wrote to the log were this table's). Random IDs cost what they did.
-- Every lookup gives the whole key, or goes by stream_pos.
-- only: sqlite
CREATE TABLE event_txns_new (
    txn_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    device_id TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    event_id TEXT NOT NULL,
    stream_pos BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (txn_id, user_id, device_id, endpoint)
) WITHOUT ROWID;
-- only: sqlite
INSERT INTO event_txns_new (txn_id, user_id, device_id, endpoint, event_id, stream_pos)
    SELECT txn_id, user_id, device_id, endpoint, event_id, stream_pos FROM event_txns;
-- only: sqlite
DROP TABLE event_txns;
-- only: sqlite
ALTER TABLE event_txns_new RENAME TO event_txns;
-- only: sqlite
CREATE INDEX event_txns_pos ON event_txns (stream_pos, event_id);
