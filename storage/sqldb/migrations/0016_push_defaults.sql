-- Most members get the same notification from a message. Keep that once
-- per event (the default) and a row per member only where a member's
-- differs (an exception: notify = 0 for one who is not notified — the
-- sender above all — or a highlight). A user's count is the defaults after
-- their read marker they have no exception for, plus their exceptions that
-- notify. Rows written before (no default) are exceptions that notify.

-- only: sqlite
CREATE TABLE event_push_defaults (
    room_id TEXT NOT NULL,
    stream_pos BIGINT NOT NULL,
    thread_id TEXT NOT NULL,
    highlight BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (room_id, stream_pos)
) WITHOUT ROWID;
-- only: postgres
CREATE TABLE event_push_defaults (
    room_id TEXT NOT NULL,
    stream_pos BIGINT NOT NULL,
    thread_id TEXT NOT NULL,
    highlight BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (room_id, stream_pos)
);
ALTER TABLE event_push_actions ADD COLUMN notify BIGINT NOT NULL DEFAULT 1;
-- only: postgres
ALTER TABLE event_push_actions DROP CONSTRAINT event_push_actions_pkey;
-- only: postgres
ALTER TABLE event_push_actions ADD PRIMARY KEY (user_id, room_id, stream_pos) INCLUDE (thread_id, highlight, notify);
