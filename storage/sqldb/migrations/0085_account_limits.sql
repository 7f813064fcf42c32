-- Admin controls on an account's sending: a shadow-banned account's sends
-- appear to succeed but reach nobody; a rate-limit override replaces the
-- server's message limit for the account (ratelimit_override 1; a rate
-- of 0 is no limit at all).
ALTER TABLE accounts ADD COLUMN shadow_banned BIGINT NOT NULL DEFAULT 0;
ALTER TABLE accounts ADD COLUMN ratelimit_override BIGINT NOT NULL DEFAULT 0;
ALTER TABLE accounts ADD COLUMN ratelimit_per_second BIGINT NOT NULL DEFAULT 0;
ALTER TABLE accounts ADD COLUMN ratelimit_burst BIGINT NOT NULL DEFAULT 0;
-- (events.outlier 2, set by an admin's history purge, needs no column: the
-- state and kept events before the purge point leave every timeline but
-- stay the room's state changes; 1 is federation's outlier.)
