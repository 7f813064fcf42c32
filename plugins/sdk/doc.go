// Package sdk is what bridge authors import: the Handshake shared with the
// host, Serve() that runs a mautrix bridgev2 NetworkConnector as a plugin, and
// the MatrixConnector that turns bridgev2's calls into MatrixHost gRPC calls.
// A bridge is "a bridgev2 NetworkConnector + sdk.Serve".
//
// Of this module it may import only plugins/proto (nothing outside plugins/,
// transitively); beyond that, mautrix, go-plugin and gRPC. Bridges under
// bridges/<network> import this package and nothing else of the module.
//
// No code yet: the package exists so the dependency rules of DESIGN.md have
// something to check.
package sdk
