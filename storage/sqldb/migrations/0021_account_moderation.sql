-- Account suspension and locking (admin/suspend, admin/lock).
ALTER TABLE accounts ADD COLUMN suspended BIGINT NOT NULL DEFAULT 0;
ALTER TABLE accounts ADD COLUMN locked BIGINT NOT NULL DEFAULT 0;
