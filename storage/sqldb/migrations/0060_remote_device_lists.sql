-- Copies of other servers' users' device lists (core/keys, server-server
-- API "Device Management"): what /user/keys/query or /user/devices
-- answered, kept up to date by m.device_list_update and
-- m.signing_key_update EDUs, so that /keys/query about a user in a room
-- with ours is answered without asking their server. stream_id is the
-- origin's latest update applied (0: unknown); stale = 1 when an update
-- could not be applied and the list must be fetched again; fetched_pos is
-- the events stream position of the last whole fetch; mark the
-- device-list position of the last change heard of (a fetch begun before
-- it does not overwrite it). Keys are JSON text; '' stands for none.
CREATE TABLE remote_device_lists (
    user_id TEXT PRIMARY KEY,
    stream_id BIGINT NOT NULL DEFAULT 0,
    stale BIGINT NOT NULL DEFAULT 0,
    fetched_pos BIGINT NOT NULL DEFAULT 0,
    mark BIGINT NOT NULL DEFAULT 0,
    master_key TEXT NOT NULL DEFAULT '',
    self_signing_key TEXT NOT NULL DEFAULT ''
);

CREATE TABLE remote_devices (
    user_id TEXT NOT NULL,
    device_id TEXT NOT NULL,
    key_json TEXT NOT NULL DEFAULT '',
    display_name TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (user_id, device_id)
);
