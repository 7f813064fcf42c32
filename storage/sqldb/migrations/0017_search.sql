-- The full-text index of POST /search: the searchable text of events
-- (storage.SearchableText), keyed by their stream position and written in
-- the transaction that persists them; a redaction takes its target out.
-- Neither engine keeps a copy of the text, which is in the event.

-- SQLite: a contentless FTS5 table whose rowid is the stream position
-- (contentless_delete lets redactions delete rows).
-- only: sqlite
CREATE VIRTUAL TABLE event_search USING fts5(
    text,
    content = '',
    contentless_delete = 1,
    tokenize = 'unicode61 remove_diacritics 2'
);

-- PostgreSQL: a tsvector per event with a GIN index. The 'simple'
-- configuration lower-cases words and knows no language: messages come in
-- every language.
-- only: postgres
CREATE TABLE event_search (
    stream_pos BIGINT PRIMARY KEY,
    vector TSVECTOR NOT NULL
);
-- only: postgres
CREATE INDEX event_search_vector ON event_search USING GIN (vector);

-- The events stored before this migration: their body, name and topic
-- (not the m.topic representations, which only new events get indexed by).
-- PostgreSQL cannot turn a JSON string holding \u0000 into text: such
-- events are left out rather than failing the migration.
-- only: sqlite
INSERT INTO event_search (rowid, text)
    SELECT stream_pos, json_extract(json, '$.content.body') FROM events
    WHERE type = 'm.room.message' AND state_key IS NULL AND rejected = 0 AND redacted_by = ''
      AND json_type(json, '$.content.body') = 'text';
-- only: sqlite
INSERT INTO event_search (rowid, text)
    SELECT stream_pos, json_extract(json, '$.content.name') FROM events
    WHERE type = 'm.room.name' AND state_key = '' AND rejected = 0 AND redacted_by = ''
      AND json_type(json, '$.content.name') = 'text';
-- only: sqlite
INSERT INTO event_search (rowid, text)
    SELECT stream_pos, json_extract(json, '$.content.topic') FROM events
    WHERE type = 'm.room.topic' AND state_key = '' AND rejected = 0 AND redacted_by = ''
      AND json_type(json, '$.content.topic') = 'text';
-- only: postgres
INSERT INTO event_search (stream_pos, vector)
    SELECT stream_pos, to_tsvector('simple', CAST(json AS JSON) -> 'content' ->> 'body') FROM events
    WHERE type = 'm.room.message' AND state_key IS NULL AND rejected = 0 AND redacted_by = ''
      AND json_typeof(CAST(json AS JSON) -> 'content' -> 'body') = 'string'
      AND position('\u0000' IN json) = 0;
-- only: postgres
INSERT INTO event_search (stream_pos, vector)
    SELECT stream_pos, to_tsvector('simple', CAST(json AS JSON) -> 'content' ->> 'name') FROM events
    WHERE type = 'm.room.name' AND state_key = '' AND rejected = 0 AND redacted_by = ''
      AND json_typeof(CAST(json AS JSON) -> 'content' -> 'name') = 'string'
      AND position('\u0000' IN json) = 0;
-- only: postgres
INSERT INTO event_search (stream_pos, vector)
    SELECT stream_pos, to_tsvector('simple', CAST(json AS JSON) -> 'content' ->> 'topic') FROM events
    WHERE type = 'm.room.topic' AND state_key = '' AND rejected = 0 AND redacted_by = ''
      AND json_typeof(CAST(json AS JSON) -> 'content' -> 'topic') = 'string'
      AND position('\u0000' IN json) = 0;
