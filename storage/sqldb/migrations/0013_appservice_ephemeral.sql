-- Ephemeral data for appservices (MSC2409, MSC3202): how far along each
-- stream an appservice has acknowledged, and how far the transaction in
-- flight reaches, so that a retry carries the same range.
CREATE TABLE appservice_cursors (
    as_id TEXT PRIMARY KEY,
    positions TEXT NOT NULL
);
ALTER TABLE appservice_txns ADD COLUMN ephemeral TEXT NOT NULL DEFAULT '';
CREATE INDEX receipts_pos ON receipts (stream_pos);

-- Backward batch send puts history before a room's timeline: those events
-- take negative stream positions, counting down from here.
INSERT INTO stream_positions (name, pos) VALUES ('events_history', 0);
