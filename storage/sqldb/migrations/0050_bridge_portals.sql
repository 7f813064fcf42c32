-- Portal rooms: the Matrix room of each conversation of another network
-- (a Slack channel, DM or group DM; a workspace's space), made by
-- `tributary import` and meant to be adopted by the live bridge plugin of
-- the same network, so that an import and the bridge share their rooms.
-- Keyed as mautrix bridgev2 keys portals: network, its portal ID (Slack:
-- "TEAMID-CHANNELID", the workspace's space "TEAMID", as mautrix-slack's
-- slackid.MakePortalID makes them) and receiver ('' for a portal everyone
-- shares). import_cursor is where an import of the conversation stopped
-- (Slack: the ts of the last message imported); import_meta is JSON the
-- importer keeps beside it. Numbered 0050 to stay clear of other work's
-- migrations in flight; numbers are only filenames.
CREATE TABLE bridge_portals (
    network TEXT NOT NULL,
    portal_id TEXT NOT NULL,
    receiver TEXT NOT NULL DEFAULT '',
    room_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    import_cursor TEXT NOT NULL DEFAULT '',
    import_meta TEXT NOT NULL DEFAULT '',
    created_ts BIGINT NOT NULL,
    PRIMARY KEY (network, portal_id, receiver)
);
CREATE UNIQUE INDEX bridge_portals_room ON bridge_portals (room_id);

-- Files of another network already in the media repository (Slack file
-- IDs), so that an import run again uploads none twice.
CREATE TABLE bridge_media (
    network TEXT NOT NULL,
    remote_id TEXT NOT NULL,
    mxc TEXT NOT NULL,
    PRIMARY KEY (network, remote_id)
);
