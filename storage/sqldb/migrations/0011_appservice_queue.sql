-- Events waiting for each appservice, enqueued with the event, removed when
-- the appservice acknowledges the transaction that carried them.
CREATE TABLE appservice_queue (
    as_id TEXT NOT NULL,
    stream_pos BIGINT NOT NULL,
    PRIMARY KEY (as_id, stream_pos)
);

-- The transaction in flight per appservice: a retry sends the same ID and events.
CREATE TABLE appservice_txns (
    as_id TEXT PRIMARY KEY,
    txn_id BIGINT NOT NULL,
    last_pos BIGINT NOT NULL
);
INSERT INTO stream_positions (name, pos) VALUES ('appservice_txns', 0);
