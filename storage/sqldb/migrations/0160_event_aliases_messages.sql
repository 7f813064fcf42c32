-- The network message an imported event carries is recorded in its alias's
-- row, written in the transaction that persists the event: bridge_messages
-- and bridge_reactions were two more tables of three B-trees each, written
-- in a transaction of their own before each batch, a third of the SQLite
-- work of an import beside its events. An alias row now holds, for an
-- event an import wrote, the network's message and part IDs, the sender
-- (as the bridge names its ghosts) and, for a reaction, the emoji (all ''
-- for the aliases of other batch sends).
--
-- A row is keyed by its event's stream position, not found by event ID
-- through an index of its own: the event's ID leads to its position
-- through the events table's index, and the positions of a batch are
-- consecutive, where event IDs are random (each insert into an index of
-- them touched a page anywhere in it).
--
-- SQLite: the table is rebuilt, with the position as its rowid. A WITHOUT
-- ROWID table keyed by alias was measured and is slower: an import's
-- aliases are random, and its wide rows, inserted at random places, split
-- pages more than a table appended to plus a narrow index of aliases
-- (20,000 Slack messages: 0.76 s against 0.52 s in the inserts).
-- only: sqlite
CREATE TABLE event_aliases_new (
    stream_pos INTEGER PRIMARY KEY,
    alias TEXT NOT NULL UNIQUE,
    event_id TEXT NOT NULL,
    room_id TEXT NOT NULL,
    message_id TEXT NOT NULL DEFAULT '',
    part_id TEXT NOT NULL DEFAULT '',
    sender_id TEXT NOT NULL DEFAULT '',
    emoji_id TEXT NOT NULL DEFAULT ''
);
-- Aliases of events that are gone (none should be) are dropped.
-- only: sqlite
INSERT OR IGNORE INTO event_aliases_new (stream_pos, alias, event_id, room_id, message_id, part_id, sender_id, emoji_id)
    SELECT e.stream_pos, a.alias, a.event_id, a.room_id,
        COALESCE(m.message_id, r.message_id, ''), COALESCE(m.part_id, r.part_id, ''),
        COALESCE(m.sender_id, r.sender_id, ''), COALESCE(r.emoji_id, '')
    FROM event_aliases a
    JOIN events e ON e.event_id = a.event_id
    LEFT JOIN bridge_messages m ON m.alias = a.alias
    LEFT JOIN bridge_reactions r ON r.alias = a.alias AND m.alias IS NULL;
-- only: sqlite
DROP TABLE event_aliases;
-- only: sqlite
ALTER TABLE event_aliases_new RENAME TO event_aliases;

-- only: postgres
ALTER TABLE event_aliases ADD COLUMN stream_pos BIGINT;
-- only: postgres
UPDATE event_aliases a SET stream_pos = e.stream_pos FROM events e WHERE e.event_id = a.event_id;
-- only: postgres
DELETE FROM event_aliases WHERE stream_pos IS NULL;
-- only: postgres
ALTER TABLE event_aliases ALTER COLUMN stream_pos SET NOT NULL;
-- only: postgres
DROP INDEX event_aliases_event;
-- only: postgres
CREATE UNIQUE INDEX event_aliases_pos ON event_aliases (stream_pos);
-- only: postgres
ALTER TABLE event_aliases ADD COLUMN message_id TEXT NOT NULL DEFAULT '';
-- only: postgres
ALTER TABLE event_aliases ADD COLUMN part_id TEXT NOT NULL DEFAULT '';
-- only: postgres
ALTER TABLE event_aliases ADD COLUMN sender_id TEXT NOT NULL DEFAULT '';
-- only: postgres
ALTER TABLE event_aliases ADD COLUMN emoji_id TEXT NOT NULL DEFAULT '';
-- only: postgres
UPDATE event_aliases a SET message_id = m.message_id, part_id = m.part_id, sender_id = m.sender_id
    FROM bridge_messages m WHERE m.alias = a.alias;
-- only: postgres
UPDATE event_aliases a SET message_id = r.message_id, part_id = r.part_id, sender_id = r.sender_id, emoji_id = r.emoji_id
    FROM bridge_reactions r WHERE r.alias = a.alias AND a.message_id = '';

-- A message's parts and reactions, by message (the aliases of other batch
-- sends are left out of the index).
CREATE INDEX event_aliases_message ON event_aliases (room_id, message_id, part_id) WHERE message_id <> '';
DROP TABLE bridge_messages;
DROP TABLE bridge_reactions;
