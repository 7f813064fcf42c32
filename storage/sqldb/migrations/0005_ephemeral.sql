-- Receipts, to-device messages and presence.
INSERT INTO stream_positions (name, pos) VALUES ('receipts', 0);
INSERT INTO stream_positions (name, pos) VALUES ('to_device', 0);
INSERT INTO stream_positions (name, pos) VALUES ('presence', 0);

CREATE TABLE receipts (
    room_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    receipt_type TEXT NOT NULL,
    thread_id TEXT NOT NULL DEFAULT '',
    event_id TEXT NOT NULL,
    ts BIGINT NOT NULL,
    stream_pos BIGINT NOT NULL,
    PRIMARY KEY (room_id, user_id, receipt_type, thread_id)
);
CREATE INDEX receipts_stream ON receipts (room_id, stream_pos);

CREATE TABLE to_device (
    stream_pos BIGINT PRIMARY KEY,
    user_id TEXT NOT NULL,
    device_id TEXT NOT NULL,
    sender TEXT NOT NULL,
    type TEXT NOT NULL,
    content TEXT NOT NULL
);
CREATE INDEX to_device_target ON to_device (user_id, device_id, stream_pos);

CREATE TABLE to_device_txns (
    sender TEXT NOT NULL,
    device_id TEXT NOT NULL,
    txn_id TEXT NOT NULL,
    PRIMARY KEY (sender, device_id, txn_id)
);

CREATE TABLE presence (
    user_id TEXT PRIMARY KEY,
    presence TEXT NOT NULL,
    status_msg TEXT NOT NULL DEFAULT '',
    last_active_ts BIGINT NOT NULL,
    stream_pos BIGINT NOT NULL
);
CREATE INDEX presence_stream ON presence (stream_pos);
