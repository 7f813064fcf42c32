// Package rooms owns the room event graph, in two halves:
//
//   - Service, the event pipeline: it turns a proto event into a signed,
//     authorised, persisted PDU (one writer per room, commits batched,
//     writers released when idle), takes events signed by other servers
//     through Intake (the same writers; one file per step: intake_check,
//     intake_auth, intake_state, intake_softfail, intake_store), creates
//     rooms, changes memberships and batch sends; it answers other servers'
//     joins (MakeJoin, SendJoin: federation.go). Through RemoteRooms it
//     joins, knocks on and leaves rooms this server is not in
//     (join_remote.go, membership_remote.go), invites other servers'
//     users (invite_outbound.go), fills gaps before remote events with
//     their state (fill_state.go) and fetches history (backfill.go); what
//     other servers send it in bulk is checked together (fetched.go) and
//     kept as outliers, events outside the timeline. What it needs from
//     outside it declares: RemoteRooms and KeyRing (other servers),
//     InterestResolver (who events are queued for), Profiles, Pusher.
//   - Reader, the read side: timelines, state and members with history
//     visibility applied, sync and sliding sync, search, the directory and
//     aliases, the hierarchy, the user directory, relations and
//     notifications; for other servers, events, state, auth chains,
//     backfill and missing events as they may see them (ServerMayRead,
//     ServerAllowed: the room's server ACL). It persists no event and learns of commits only
//     through core/stream, so it reads alike whichever process wrote.
//
// Service embeds its Reader (the pipeline's checks read as users would);
// consumers that only read (sync, ephemeral, appservice and push delivery)
// are given the Reader.
//
// It imports core/events, core/types, core/stream and the storage
// interfaces. Lock order: Service.mu (the writer table) is never held while
// a room writer runs nor while publishing; the notifier's lock comes before
// it (Service.observe runs inside Publish). A room writer's state is touched
// only by its own goroutine (another process's commit only marks it stale).
package rooms
