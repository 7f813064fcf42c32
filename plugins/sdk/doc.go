// Package sdk is what bridge authors import: the go-plugin Handshake shared
// with the host, Serve() that runs a plugin, and Host, the client of the
// homeserver's MatrixHost service. (The bridgev2 MatrixConnector over Host,
// so that a bridge is "a bridgev2 NetworkConnector + sdk.Serve", builds on
// these.)
//
// Of this module it may import only plugins/proto (nothing outside plugins/,
// transitively); beyond that, mautrix, go-plugin and gRPC. Bridges under
// bridges/<network> import this package and nothing else of the module.
package sdk
