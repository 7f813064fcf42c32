-- Delayed events (MSC4140): events a local user scheduled to be sent at
-- send_ts unless cancelled or restarted first. txn_key ('' for none) makes
-- the scheduling request idempotent per device and endpoint; stream_pos is
-- the event stream's position when the event was scheduled, so that a
-- delayed state event is cancelled by state another sender set after it.
CREATE TABLE delayed_events (
    delay_id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    device_id TEXT NOT NULL,
    room_id TEXT NOT NULL,
    type TEXT NOT NULL,
    state_key TEXT,
    content TEXT NOT NULL,
    delay_ms BIGINT NOT NULL,
    running_since BIGINT NOT NULL,
    send_ts BIGINT NOT NULL,
    stream_pos BIGINT NOT NULL,
    txn_key TEXT NOT NULL DEFAULT ''
);
CREATE INDEX delayed_events_send_ts ON delayed_events (send_ts);
CREATE INDEX delayed_events_user ON delayed_events (user_id, delay_id);
CREATE INDEX delayed_events_room ON delayed_events (room_id);
CREATE UNIQUE INDEX delayed_events_txn ON delayed_events (user_id, device_id, txn_key) WHERE txn_key <> '';
-- Thread subscriptions (MSC4306): a user subscribed to a thread (by its
-- root), manually or automatically; an unsubscription stays as a row with
-- subscribed 0 and the event stream position it was made at, which orders
-- later automatic subscriptions against it.
CREATE TABLE thread_subscriptions (
    user_id TEXT NOT NULL,
    room_id TEXT NOT NULL,
    root_id TEXT NOT NULL,
    subscribed BIGINT NOT NULL,
    automatic BIGINT NOT NULL,
    unsubscribed_at BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (user_id, room_id, root_id)
);
CREATE INDEX thread_subscriptions_thread ON thread_subscriptions (room_id, root_id);
