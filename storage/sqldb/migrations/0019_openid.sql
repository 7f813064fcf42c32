-- OpenID tokens (POST /user/{userId}/openid/request_token), by SHA-256 hash.
CREATE TABLE openid_tokens (
    token_hash TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX openid_tokens_expiry ON openid_tokens (expires_at);
