-- Media: records (content is in the media store, by SHA-256), thumbnails, URL previews.
CREATE TABLE media (
    media_id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    content_type TEXT NOT NULL DEFAULT '',
    upload_name TEXT NOT NULL DEFAULT '',
    size BIGINT NOT NULL DEFAULT 0,
    sha256 TEXT NOT NULL DEFAULT '',
    created_at BIGINT NOT NULL,
    -- 0 once content exists; else when an unused async upload expires
    pending_until BIGINT NOT NULL DEFAULT 0,
    -- 1: only the authenticated endpoints serve it (the legacy ones are frozen)
    authenticated BIGINT NOT NULL DEFAULT 1
);
CREATE INDEX media_user ON media (user_id);

CREATE TABLE media_thumbnails (
    media_id TEXT NOT NULL,
    width BIGINT NOT NULL,
    height BIGINT NOT NULL,
    method TEXT NOT NULL,
    animated BIGINT NOT NULL,
    content_type TEXT NOT NULL,
    size BIGINT NOT NULL,
    sha256 TEXT NOT NULL,
    PRIMARY KEY (media_id, width, height, method, animated)
);

CREATE TABLE url_previews (
    url TEXT PRIMARY KEY,
    fetched_at BIGINT NOT NULL,
    og TEXT NOT NULL
);
