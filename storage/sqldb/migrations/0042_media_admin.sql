-- Media administration (the admin API): an item quarantined by an admin is
-- served to nobody; a protected one cannot be quarantined.
ALTER TABLE media ADD COLUMN quarantined_by TEXT NOT NULL DEFAULT '';
ALTER TABLE media ADD COLUMN protected BIGINT NOT NULL DEFAULT 0;
CREATE INDEX media_user_created ON media (user_id, created_at);
CREATE INDEX media_created ON media (created_at);
CREATE INDEX media_sha256 ON media (sha256);
CREATE INDEX media_thumbnails_sha256 ON media_thumbnails (sha256);
