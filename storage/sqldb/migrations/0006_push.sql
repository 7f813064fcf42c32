-- Notifications counted as events are persisted, for unread counts.
CREATE TABLE event_push_actions (
    user_id TEXT NOT NULL,
    room_id TEXT NOT NULL,
    stream_pos BIGINT NOT NULL,
    thread_id TEXT NOT NULL,
    highlight BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (user_id, room_id, stream_pos)
);
CREATE INDEX events_room_sender ON events (room_id, sender, stream_pos);
