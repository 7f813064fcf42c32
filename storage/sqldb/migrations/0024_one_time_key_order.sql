-- One-time keys are claimed in the order they were uploaded (the spec,
-- /keys/claim): each upload's keys get the next number of their device.
-- Keys stored before this migration share 0, the oldest upload.
ALTER TABLE one_time_keys ADD COLUMN upload_seq BIGINT NOT NULL DEFAULT 0;
