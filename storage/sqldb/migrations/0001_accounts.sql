-- Accounts, devices, tokens, profiles, account data, UIA and registration tokens.
-- Portable SQL: both SQLite and PostgreSQL run this file. Booleans are BIGINT 0/1,
-- times are BIGINT milliseconds since the epoch, JSON is TEXT.
CREATE TABLE server_meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE stream_positions (
    name TEXT PRIMARY KEY,
    pos BIGINT NOT NULL
);
INSERT INTO stream_positions (name, pos) VALUES ('account_data', 0);

CREATE TABLE accounts (
    user_id TEXT PRIMARY KEY,
    localpart TEXT NOT NULL,
    password_hash TEXT NOT NULL DEFAULT '',
    is_admin BIGINT NOT NULL DEFAULT 0,
    deactivated BIGINT NOT NULL DEFAULT 0,
    user_type TEXT NOT NULL DEFAULT '',
    appservice_id TEXT NOT NULL DEFAULT '',
    created_at BIGINT NOT NULL
);

CREATE TABLE devices (
    user_id TEXT NOT NULL,
    device_id TEXT NOT NULL,
    display_name TEXT NOT NULL DEFAULT '',
    last_seen_ip TEXT NOT NULL DEFAULT '',
    last_seen_ts BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (user_id, device_id)
);

CREATE TABLE access_tokens (
    token_hash TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    device_id TEXT NOT NULL,
    expires_at BIGINT NOT NULL DEFAULT 0,
    refresh_hash TEXT NOT NULL DEFAULT '',
    prev_refresh_hash TEXT NOT NULL DEFAULT '',
    created_at BIGINT NOT NULL
);
CREATE INDEX access_tokens_device ON access_tokens (user_id, device_id);
CREATE INDEX access_tokens_refresh ON access_tokens (refresh_hash);

CREATE TABLE refresh_tokens (
    token_hash TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    device_id TEXT NOT NULL,
    prev_hash TEXT NOT NULL DEFAULT '',
    created_at BIGINT NOT NULL
);
CREATE INDEX refresh_tokens_device ON refresh_tokens (user_id, device_id);

CREATE TABLE login_tokens (
    token_hash TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);

CREATE TABLE profiles (
    user_id TEXT NOT NULL,
    field TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (user_id, field)
);

CREATE TABLE account_data (
    user_id TEXT NOT NULL,
    room_id TEXT NOT NULL,
    data_type TEXT NOT NULL,
    content TEXT NOT NULL,
    stream_pos BIGINT NOT NULL,
    PRIMARY KEY (user_id, room_id, data_type)
);
CREATE INDEX account_data_stream ON account_data (user_id, stream_pos);

CREATE TABLE uia_sessions (
    session_id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    data TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE registration_tokens (
    token TEXT PRIMARY KEY,
    uses_allowed BIGINT,
    pending BIGINT NOT NULL DEFAULT 0,
    completed BIGINT NOT NULL DEFAULT 0,
    expiry_time BIGINT
);
