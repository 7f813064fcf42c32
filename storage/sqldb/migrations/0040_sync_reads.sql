-- Two indexes for what a sync reads of each room.

-- The latest (and earliest) thread reply or edit of a room, read once per
-- room after a start to learn whether an event may have children
-- (core/rooms mayHaveRelationsAfter): without it every event older than
-- the server's start counted as "may", and each timeline page asked for
-- its aggregations. Numbered 0040 to stay clear of the federation work's
-- migrations in flight; numbers are only filenames.
CREATE INDEX events_room_relations ON events (room_id, stream_pos) WHERE rel_type IN ('m.thread', 'm.replace');

-- unsigned.transaction_id is read for every event of a sync page that the
-- user sent: an index that holds the whole row answers it without a visit
-- to the table per event.
CREATE INDEX event_txns_event_cover ON event_txns (event_id, user_id, device_id, txn_id);
DROP INDEX event_txns_event;
