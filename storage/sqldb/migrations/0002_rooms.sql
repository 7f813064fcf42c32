-- Rooms, events (full PDUs), state groups (snapshots + deltas), current state,
-- forward extremities, client transaction IDs and aliases.
INSERT INTO stream_positions (name, pos) VALUES ('events', 0);
INSERT INTO stream_positions (name, pos) VALUES ('state_groups', 0);

CREATE TABLE rooms (
    room_id TEXT PRIMARY KEY,
    room_version TEXT NOT NULL,
    creator TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    published BIGINT NOT NULL DEFAULT 0
);

CREATE TABLE events (
    stream_pos BIGINT PRIMARY KEY,
    event_id TEXT NOT NULL UNIQUE,
    room_id TEXT NOT NULL,
    type TEXT NOT NULL,
    state_key TEXT,
    sender TEXT NOT NULL,
    origin_server_ts BIGINT NOT NULL,
    depth BIGINT NOT NULL,
    json TEXT NOT NULL,
    state_group BIGINT NOT NULL,
    rejected BIGINT NOT NULL DEFAULT 0,
    soft_failed BIGINT NOT NULL DEFAULT 0,
    redacted_by TEXT NOT NULL DEFAULT '',
    relates_to TEXT NOT NULL DEFAULT '',
    rel_type TEXT NOT NULL DEFAULT '',
    membership TEXT NOT NULL DEFAULT '',
    replaces_state TEXT NOT NULL DEFAULT ''
);
CREATE INDEX events_room_stream ON events (room_id, stream_pos);
CREATE INDEX events_room_ts ON events (room_id, origin_server_ts);
CREATE INDEX events_relates ON events (relates_to, stream_pos);

CREATE TABLE state_groups (
    group_id BIGINT PRIMARY KEY,
    room_id TEXT NOT NULL,
    prev_group BIGINT NOT NULL,
    chain_len BIGINT NOT NULL
);

CREATE TABLE state_group_entries (
    group_id BIGINT NOT NULL,
    type TEXT NOT NULL,
    state_key TEXT NOT NULL,
    event_id TEXT NOT NULL,
    PRIMARY KEY (group_id, type, state_key)
);

CREATE TABLE current_state (
    room_id TEXT NOT NULL,
    type TEXT NOT NULL,
    state_key TEXT NOT NULL,
    event_id TEXT NOT NULL,
    membership TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (room_id, type, state_key)
);
CREATE INDEX current_state_members ON current_state (state_key, type, membership);

CREATE TABLE forward_extremities (
    room_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    PRIMARY KEY (room_id, event_id)
);

CREATE TABLE event_txns (
    user_id TEXT NOT NULL,
    device_id TEXT NOT NULL,
    txn_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    PRIMARY KEY (user_id, device_id, txn_id)
);

CREATE TABLE room_aliases (
    alias TEXT PRIMARY KEY,
    room_id TEXT NOT NULL,
    creator TEXT NOT NULL
);
CREATE INDEX room_aliases_room ON room_aliases (room_id);
