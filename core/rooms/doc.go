// Package rooms owns the room event graph: the pipeline that turns a proto
// event into a signed, authorised, persisted PDU (one writer per room,
// commits batched), the intake of events signed by other servers (Intake,
// through the same writers), room creation and membership, and the read
// paths (timeline pages, state, members) with history visibility applied.
// What it needs from other servers it declares as RemoteRooms and KeyRing.
//
// It imports core/events, core/types, core/stream and the storage
// interfaces. Lock order: Service.mu (the writer table) is never held while
// a room writer runs nor while publishing; the notifier's lock comes before
// it (Service.observe runs inside Publish). A room writer's state is touched
// only by its own goroutine (another process's commit only marks it stale).
package rooms
