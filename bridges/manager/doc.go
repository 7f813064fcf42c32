// Package manager runs the configured bridge plugins inside the homeserver.
// It gives each plugin an internal appservice registration (namespace, bot
// user), feeds it events from the same persisted queue as an HTTP appservice
// (over a gRPC stream with acks), and implements the MatrixHost service on
// core services (send as a ghost with a timestamp, batch send, state, media);
// what only an appservice may do goes through core/bridging, as the HTTP
// routes' requests do, so a plugin meets the same rules as an HTTP bridge.
//
// It may import plugins/host (and plugins/proto), appservice/registry, core
// services and the storage interfaces; never the HTTP edge (handlers,
// core/httpx, gin) nor a storage backend. Nothing it builds on (core,
// federation, appservice, storage, plugins, a bridge) imports it: cmd wires it.
package manager
