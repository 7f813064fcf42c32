-- Client transaction IDs are scoped by the device and the endpoint — the
-- request's method and path (client-server API, "Transaction
-- identifiers"): the same ID in another room, with another event type or
-- for another redaction target is another request. event_txns keys gain
-- the endpoint, written by core/rooms as 'send <roomId> <eventType>' and
-- 'redact <roomId> <eventId>'; txn_id becomes the client's ID as sent.
-- The rows stored before were keyed per device only, the ID itself for a
-- send ('~' doubled when it began with '~') and '~r' and the ID for a
-- redaction. Each meant the request that made its event, so it gets that
-- event's room and type (or redaction target) as its endpoint.
CREATE TABLE event_txns_scoped (
    user_id TEXT NOT NULL,
    device_id TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    txn_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    PRIMARY KEY (user_id, device_id, endpoint, txn_id)
);
INSERT INTO event_txns_scoped (user_id, device_id, endpoint, txn_id, event_id)
    SELECT t.user_id, t.device_id, 'send ' || e.room_id || ' ' || e.type,
        CASE WHEN substr(t.txn_id, 1, 2) = '~~' THEN substr(t.txn_id, 2) ELSE t.txn_id END, t.event_id
    FROM event_txns t JOIN events e ON e.event_id = t.event_id
    WHERE substr(t.txn_id, 1, 2) <> '~r';
-- The redaction's target is "redacts" in its content (room versions 11 and
-- later) or at its top level (before).
-- only: sqlite
INSERT INTO event_txns_scoped (user_id, device_id, endpoint, txn_id, event_id)
    SELECT t.user_id, t.device_id, 'redact ' || e.room_id || ' ' ||
        COALESCE(json_extract(e.json, '$.content.redacts'), json_extract(e.json, '$.redacts'), ''),
        substr(t.txn_id, 3), t.event_id
    FROM event_txns t JOIN events e ON e.event_id = t.event_id
    WHERE substr(t.txn_id, 1, 2) = '~r';
-- only: postgres
INSERT INTO event_txns_scoped (user_id, device_id, endpoint, txn_id, event_id)
    SELECT t.user_id, t.device_id, 'redact ' || e.room_id || ' ' ||
        COALESCE(e.json::json -> 'content' ->> 'redacts', e.json::json ->> 'redacts', ''),
        substr(t.txn_id, 3), t.event_id
    FROM event_txns t JOIN events e ON e.event_id = t.event_id
    WHERE substr(t.txn_id, 1, 2) = '~r';
DROP TABLE event_txns;
ALTER TABLE event_txns_scoped RENAME TO event_txns;
-- unsigned.transaction_id: find the client transaction of an event.
CREATE INDEX event_txns_event ON event_txns (event_id);

-- To-device transaction IDs are scoped by the event type of the path too.
-- The rows stored before do not say which type they were for: they keep
-- event_type '', which QueueToDevice takes for any type, so a retry of a
-- request sent before the upgrade still sends nothing twice.
CREATE TABLE to_device_txns_scoped (
    sender TEXT NOT NULL,
    device_id TEXT NOT NULL,
    event_type TEXT NOT NULL,
    txn_id TEXT NOT NULL,
    PRIMARY KEY (sender, device_id, event_type, txn_id)
);
INSERT INTO to_device_txns_scoped (sender, device_id, event_type, txn_id)
    SELECT sender, device_id, '', txn_id FROM to_device_txns;
DROP TABLE to_device_txns;
ALTER TABLE to_device_txns_scoped RENAME TO to_device_txns;
