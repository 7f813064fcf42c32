-- Forgotten rooms and content reports.
CREATE TABLE room_forgotten (
    user_id TEXT NOT NULL,
    room_id TEXT NOT NULL,
    PRIMARY KEY (user_id, room_id)
);

CREATE TABLE reports (
    report_id TEXT PRIMARY KEY,
    room_id TEXT NOT NULL,
    event_id TEXT NOT NULL DEFAULT '',
    reported_user TEXT NOT NULL DEFAULT '',
    reporter TEXT NOT NULL,
    reason TEXT NOT NULL DEFAULT '',
    score BIGINT,
    created_at BIGINT NOT NULL
);
