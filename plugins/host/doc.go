// Package host is the homeserver's side of a plugin process: it launches the
// plugin binary with go-plugin (gRPC only, AutoMTLS, the handshake of
// plugins/proto, the host's environment not inherited, the binary's checksum
// checked when configured), serves the caller's MatrixHost to it through the
// broker, supervises it (a crash, a failed handshake or a failed health check
// restarts it with exponential backoff, never taking the host down), streams
// it transactions and waits for their acknowledgements, and forwards its logs.
//
// Of this module it may import only other plugins/ packages (plugins/proto),
// transitively: no core service, storage or appservice package; beyond that,
// go-plugin and gRPC.
package host
