-- unsigned.transaction_id: find the client transaction of an event.
CREATE INDEX event_txns_event ON event_txns (event_id);
