-- Pushers: where each user's notifications go (POST /pushers/set), one per
-- (user, app_id, pushkey). device_id is the device whose access token set
-- the pusher: logging it out deletes the pusher.
CREATE TABLE pushers (
    pusher_id BIGINT PRIMARY KEY,
    user_id TEXT NOT NULL,
    device_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    app_id TEXT NOT NULL,
    pushkey TEXT NOT NULL,
    app_display_name TEXT NOT NULL,
    device_display_name TEXT NOT NULL,
    profile_tag TEXT NOT NULL,
    lang TEXT NOT NULL,
    data TEXT NOT NULL,
    pushkey_ts BIGINT NOT NULL,
    UNIQUE (user_id, app_id, pushkey)
);
CREATE INDEX pushers_key ON pushers (app_id, pushkey);
CREATE INDEX pushers_device ON pushers (user_id, device_id);
INSERT INTO stream_positions (name, pos) VALUES ('pushers', 0);

-- Notifications waiting for each HTTP pusher, enqueued with the event that
-- notified, removed once the push gateway took them (or gave up on).
-- next_attempt (ms) holds a failing pusher's deliveries back.
CREATE TABLE push_queue (
    pusher_id BIGINT NOT NULL,
    stream_pos BIGINT NOT NULL,
    tweaks TEXT NOT NULL,
    queued_at BIGINT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    next_attempt BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (pusher_id, stream_pos)
);
CREATE INDEX push_queue_due ON push_queue (next_attempt, stream_pos);
