// Package proto owns the wire contract between the homeserver and a bridge
// plugin: bridge.proto, with the Bridge service (implemented by the plugin)
// and the MatrixHost service (implemented by the homeserver and called by the
// plugin through go-plugin's broker), and the Go code generated from it.
//
// It may import gRPC and protobuf, and nothing of this module: it is the
// bottom of the plugins tree, which imports nothing outside plugins/.
//
// No code yet: the package exists so the dependency rules of DESIGN.md have
// something to check.
package proto
