-- Sync filters.
CREATE TABLE filters (
    user_id TEXT NOT NULL,
    filter_id TEXT NOT NULL,
    filter_json TEXT NOT NULL,
    PRIMARY KEY (user_id, filter_id)
);
