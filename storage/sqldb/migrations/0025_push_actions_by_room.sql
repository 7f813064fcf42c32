-- The exceptions of a room's events in a range, for every member at once:
-- the syncs a message wakes share one read of what it says about
-- notifications instead of one count per member (sync's unread counts).
-- Exceptions are few per event (the sender, highlights), so the index costs
-- little to write.
CREATE INDEX event_push_actions_room ON event_push_actions (room_id, stream_pos);
