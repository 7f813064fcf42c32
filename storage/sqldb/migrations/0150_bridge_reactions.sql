-- The reactions `tributary import` wrote, as bridge_messages records the
-- messages: per alias, the network message (and part) reacted to, who
-- reacted (the network's ID of the user, as the bridge names its ghosts)
-- and the emoji as the bridge names it (bridgev2's networkid.EmojiID), so
-- that a bridge plugin continuing in the imported room can remove imported
-- reactions on the network when they are redacted on Matrix, and redact
-- them when they are removed on the network.
CREATE TABLE bridge_reactions (
    room_id TEXT NOT NULL,
    message_id TEXT NOT NULL,
    part_id TEXT NOT NULL,
    sender_id TEXT NOT NULL,
    emoji_id TEXT NOT NULL,
    alias TEXT NOT NULL,
    PRIMARY KEY (room_id, message_id, part_id, sender_id, emoji_id)
);
CREATE UNIQUE INDEX bridge_reactions_alias ON bridge_reactions (alias);
