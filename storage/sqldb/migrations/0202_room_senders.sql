-- Each sender's last timeline event in each room (its position), which is
-- their read marker too (unread counts). It was read from the index
-- events_room_sender, of which every send wrote the leaf of its sender:
-- in BenchmarkSendEvents/sqlite/senders=16, 13 of the 60 pages a commit
-- wrote. A row per room and sender changes in place instead, and a few
-- pages hold a room's.
-- only: sqlite
CREATE TABLE room_senders (
    room_id TEXT NOT NULL,
    sender TEXT NOT NULL,
    stream_pos BIGINT NOT NULL,
    PRIMARY KEY (room_id, sender)
) WITHOUT ROWID;
-- only: postgres
CREATE TABLE room_senders (
    room_id TEXT NOT NULL,
    sender TEXT NOT NULL,
    stream_pos BIGINT NOT NULL,
    PRIMARY KEY (room_id, sender)
);
INSERT INTO room_senders (room_id, sender, stream_pos)
    SELECT room_id, sender, MAX(stream_pos) FROM events WHERE outlier = 0 GROUP BY room_id, sender;
-- The admin's redaction of a user's events (SenderEvents) reads the room's
-- events from the newest for theirs.
DROP INDEX events_room_sender;
