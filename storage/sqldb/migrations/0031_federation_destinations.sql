-- Sending to other servers (federation/outbound): each destination's
-- backoff and last acknowledged transaction, as Synapse's destinations
-- table (its admin API shows them). 0 stands for "none" in every column.
CREATE TABLE federation_destinations (
    destination TEXT PRIMARY KEY,
    retry_last_ts BIGINT NOT NULL DEFAULT 0,
    retry_interval BIGINT NOT NULL DEFAULT 0,
    failure_ts BIGINT NOT NULL DEFAULT 0,
    last_success_pos BIGINT NOT NULL DEFAULT 0,
    last_success_ts BIGINT NOT NULL DEFAULT 0
);
-- Device-list rows name the device that changed ('': the user's
-- cross-signing keys), so that other servers are told per device
-- (m.device_list_update, whose prev_id is the user's previous row).
ALTER TABLE device_list_stream ADD COLUMN device_id TEXT NOT NULL DEFAULT '';
CREATE INDEX device_list_stream_user ON device_list_stream (user_id, stream_pos);
