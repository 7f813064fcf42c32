-- Rooms an appservice publishes in its network's room list
-- (PUT /directory/list/appservice/{networkId}/{roomId}).
CREATE TABLE appservice_room_lists (
    as_id TEXT NOT NULL,
    network_id TEXT NOT NULL,
    room_id TEXT NOT NULL,
    PRIMARY KEY (as_id, network_id, room_id)
);
