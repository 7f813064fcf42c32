-- Event IDs an appservice chose for events it batch sent (mautrix bridges
-- name backfilled events themselves): each stands for the real event, in
-- references the appservice makes and in the events it is sent.
CREATE TABLE event_aliases (
    alias TEXT PRIMARY KEY,
    event_id TEXT NOT NULL,
    room_id TEXT NOT NULL
);
CREATE INDEX event_aliases_event ON event_aliases (event_id);
