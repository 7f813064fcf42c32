-- Device-list changes: one row per change (0007 kept only each user's
-- latest), so that any window of the stream can be asked about.
CREATE TABLE device_list_stream (
    stream_pos BIGINT PRIMARY KEY,
    user_id TEXT NOT NULL
);
INSERT INTO device_list_stream (stream_pos, user_id) SELECT stream_pos, user_id FROM device_list_changes;
DROP TABLE device_list_changes;

-- MSC3814 dehydrated devices: at most one per user.
CREATE TABLE dehydrated_devices (
    user_id TEXT PRIMARY KEY,
    device_id TEXT NOT NULL,
    device_data TEXT NOT NULL
);
