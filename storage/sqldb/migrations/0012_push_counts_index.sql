-- Unread counts read every column of a user's push actions in a room from
-- one index, without visiting the table.
CREATE INDEX event_push_actions_counts ON event_push_actions (user_id, room_id, stream_pos, thread_id, highlight);
