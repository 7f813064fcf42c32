-- Other servers' signing keys (federation/keys), one row per server and key
-- ID, with the signed key response that carried the key (a notary hands it
-- on). expired_ts is 0 for a current key (verify_keys), else the expired_ts
-- of old_verify_keys.
CREATE TABLE server_keys (
    server_name TEXT NOT NULL,
    key_id TEXT NOT NULL,
    public_key TEXT NOT NULL,
    valid_until_ts BIGINT NOT NULL,
    expired_ts BIGINT NOT NULL,
    fetched_ts BIGINT NOT NULL,
    response TEXT NOT NULL,
    PRIMARY KEY (server_name, key_id)
);
