-- Outliers: events stored for their content alone (the state and auth chain
-- a resident server gave when this server joined a room over federation,
-- state fetched to fill a gap), outside the room's timeline: no query of
-- timelines, history, relations or search sees them.
ALTER TABLE events ADD COLUMN outlier BIGINT NOT NULL DEFAULT 0;
