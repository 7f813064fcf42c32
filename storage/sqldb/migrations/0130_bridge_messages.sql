-- The network message each imported event carries: `tributary import`
-- names every event of a message by an event ID alias (event_aliases),
-- the deterministic ID mautrix bridgev2 would give it, which cannot be
-- turned back into the message. This records, per alias, the network's
-- message ID and part ID as the network's bridge names them, so that a
-- bridge plugin continuing in the imported room can edit, react to and
-- delete imported messages on the network (Matrix event -> message), and
-- apply the network's edits, reactions and deletions of them to the
-- imported events (message -> Matrix events). Written before the events
-- (an alias whose batch never landed names no event and is ignored).
CREATE TABLE bridge_messages (
    room_id TEXT NOT NULL,
    message_id TEXT NOT NULL,
    part_id TEXT NOT NULL,
    alias TEXT NOT NULL,
    -- sender_id is the network's ID of the message's sender, as the bridge
    -- names its ghosts ('' if unknown).
    sender_id TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (room_id, message_id, part_id)
);
CREATE UNIQUE INDEX bridge_messages_alias ON bridge_messages (alias);
