-- The network message an imported event carries is recorded in its alias's
-- row, written in the transaction that persists the event: bridge_messages
-- and bridge_reactions were two more tables of three B-trees each, written
-- in a transaction of their own before each batch — a third of the SQLite
-- work of an import beside its events. An alias row now holds, for an
-- event an import wrote, the network's message and part IDs, the sender
-- (as the bridge names its ghosts) and, for a reaction, the emoji (all ''
-- for the aliases of other batch sends).
--
-- SQLite: the table is rebuilt with the new columns. A WITHOUT ROWID table
-- keyed by alias (one B-tree fewer) was measured and is slower: an import's
-- aliases are random, and its wide rows, inserted at random places, split
-- pages more than a rowid table appended to plus a narrow index (20,000
-- Slack messages: 0.76 s against 0.52 s in the inserts).
-- only: sqlite
CREATE TABLE event_aliases_new (
    alias TEXT PRIMARY KEY,
    event_id TEXT NOT NULL,
    room_id TEXT NOT NULL,
    message_id TEXT NOT NULL DEFAULT '',
    part_id TEXT NOT NULL DEFAULT '',
    sender_id TEXT NOT NULL DEFAULT '',
    emoji_id TEXT NOT NULL DEFAULT ''
);
-- only: sqlite
INSERT INTO event_aliases_new (alias, event_id, room_id, message_id, part_id, sender_id, emoji_id)
    SELECT a.alias, a.event_id, a.room_id,
        COALESCE(m.message_id, r.message_id, ''), COALESCE(m.part_id, r.part_id, ''),
        COALESCE(m.sender_id, r.sender_id, ''), COALESCE(r.emoji_id, '')
    FROM event_aliases a
    LEFT JOIN bridge_messages m ON m.alias = a.alias
    LEFT JOIN bridge_reactions r ON r.alias = a.alias AND m.alias IS NULL;
-- only: sqlite
DROP TABLE event_aliases;
-- only: sqlite
ALTER TABLE event_aliases_new RENAME TO event_aliases;
-- only: sqlite
CREATE INDEX event_aliases_event ON event_aliases (event_id);

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
