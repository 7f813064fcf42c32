// Package proto owns the wire contract between the homeserver and a bridge
// plugin: bridge.proto, with the Bridge service (implemented by the plugin)
// and the MatrixHost service (implemented by the homeserver and called by the
// plugin through go-plugin's broker), the Go code generated from it
// (`make proto`), and the handshake values both sides share.
//
// It may import gRPC and protobuf, and nothing of this module: it is the
// bottom of the plugins tree, which imports nothing outside plugins/.
package proto
