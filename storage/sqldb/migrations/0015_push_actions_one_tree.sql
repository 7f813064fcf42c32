-- Every message writes a push action row per member, each in a different
-- part of the key space (user first). Keep them in ONE B-tree holding all
-- columns instead of a table plus two indexes: a third of the pages written
-- per commit, and unread counts still read from one index.

-- only: sqlite
CREATE TABLE event_push_actions_tree (
    user_id TEXT NOT NULL,
    room_id TEXT NOT NULL,
    stream_pos BIGINT NOT NULL,
    thread_id TEXT NOT NULL,
    highlight BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (user_id, room_id, stream_pos)
) WITHOUT ROWID;
-- only: sqlite
INSERT INTO event_push_actions_tree (user_id, room_id, stream_pos, thread_id, highlight)
    SELECT user_id, room_id, stream_pos, thread_id, highlight FROM event_push_actions;
-- only: sqlite
DROP TABLE event_push_actions;
-- only: sqlite
ALTER TABLE event_push_actions_tree RENAME TO event_push_actions;

-- PostgreSQL keeps its heap; the primary key index carries the counted
-- columns so that counts stay index-only scans.
-- only: postgres
DROP INDEX event_push_actions_counts;
-- only: postgres
ALTER TABLE event_push_actions DROP CONSTRAINT event_push_actions_pkey;
-- only: postgres
ALTER TABLE event_push_actions ADD PRIMARY KEY (user_id, room_id, stream_pos) INCLUDE (thread_id, highlight);
