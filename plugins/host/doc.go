// Package host is the homeserver's side of a plugin process: it launches the
// plugin binary, performs the handshake, supervises it, restarts it with
// backoff, and forwards its logs. What the plugin may call (MatrixHost) is
// supplied by the caller, bridges/manager.
//
// Of this module it may import only other plugins/ packages (plugins/proto,
// the handshake of plugins/sdk), transitively: no core service, storage or
// appservice package; beyond that, go-plugin and gRPC.
//
// No code yet: the package exists so the dependency rules of DESIGN.md have
// something to check.
package host
