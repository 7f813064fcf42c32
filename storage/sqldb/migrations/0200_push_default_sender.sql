-- An event's default notification (0016) never counts for its sender: the
-- sender is never notified of their own event. Until now each message
-- wrote a silent row of event_push_actions for its sender to say so — in
-- a room with several senders, a leaf of that table and one of its room
-- index written per event, ~20% of the pages of a send's commit. The
-- default row names the sender instead, and every count skips the
-- defaults of the user's own events. Rows written before keep their
-- sender's silent row and sender ''.
ALTER TABLE event_push_defaults ADD COLUMN sender TEXT NOT NULL DEFAULT '';
