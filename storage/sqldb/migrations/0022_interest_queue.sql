-- One persisted interest queue for every kind of consumer (appservices now,
-- federation destinations and bridge plugins next): events are queued in the
-- transaction that persists them, a transaction in flight is retried with the
-- same ID and contents, and acknowledging it removes its events and moves the
-- consumer's cursor along the other streams it carries (ephemeral data).
CREATE TABLE interest_queue (
    kind TEXT NOT NULL,
    consumer TEXT NOT NULL,
    stream_pos BIGINT NOT NULL,
    PRIMARY KEY (kind, consumer, stream_pos)
);
CREATE TABLE interest_txns (
    kind TEXT NOT NULL,
    consumer TEXT NOT NULL,
    txn_id BIGINT NOT NULL,
    last_pos BIGINT NOT NULL,
    extra TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (kind, consumer)
);
CREATE TABLE interest_cursors (
    kind TEXT NOT NULL,
    consumer TEXT NOT NULL,
    positions TEXT NOT NULL,
    PRIMARY KEY (kind, consumer)
);
INSERT INTO interest_queue (kind, consumer, stream_pos)
    SELECT 'appservice', as_id, stream_pos FROM appservice_queue;
INSERT INTO interest_txns (kind, consumer, txn_id, last_pos, extra)
    SELECT 'appservice', as_id, txn_id, last_pos, ephemeral FROM appservice_txns;
INSERT INTO interest_cursors (kind, consumer, positions)
    SELECT 'appservice', as_id, positions FROM appservice_cursors;
DROP TABLE appservice_queue;
DROP TABLE appservice_txns;
DROP TABLE appservice_cursors;
-- Transaction IDs keep counting per kind in stream_positions ('<kind>_txns');
-- appservices keep the counter they had ('appservice_txns').
