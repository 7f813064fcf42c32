-- SQLite indexes the timeline's events for search behind their commits,
-- many at once (storage/sqldb/search.go): this is the position up to which
-- they are in event_search. Every event stored before was indexed with it.
-- only: sqlite
INSERT INTO stream_positions (name, pos) SELECT 'search_indexed', pos FROM stream_positions WHERE name = 'events';
