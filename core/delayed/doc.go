// Package delayed owns delayed events (MSC4140): events a local user
// schedules to be sent into a room later, unless they cancel or restart
// the delay first — Element Call keeps a "leave the call" state event
// pending this way and restarts it while the client lives. Pending events
// are persisted (storage.DelayedEvents) and one scheduler goroutine fires
// them at their time, woken by a timer set for the earliest one; a fired
// event is sent through core/rooms as its owner with a transaction ID made
// from its delay ID, so that a restart after a crash between sending and
// forgetting it does not send it twice. The package imports core/rooms,
// core/stream, core/types and the storage interfaces.
package delayed
