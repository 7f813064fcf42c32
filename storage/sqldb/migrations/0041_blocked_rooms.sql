-- Rooms a server admin blocked (PUT /_synapse/admin/v1/rooms/{roomId}/block):
-- this server's users may not join them. A room need not be known here to
-- be blocked.
CREATE TABLE blocked_rooms (
    room_id TEXT PRIMARY KEY,
    blocked_by TEXT NOT NULL,
    blocked_at BIGINT NOT NULL
);
