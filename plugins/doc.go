// Package plugins is the root of Tributary's plugin system: how bridge plugins
// are launched, talk to the homeserver over gRPC and are tested. It is
// independent of the homeserver and may become its own module, so nothing
// under plugins/ imports anything else of this module (internal/archtest
// checks it, transitively); bridges/manager is what joins it to the server.
//
//   - plugins/proto: bridge.proto (the Bridge and MatrixHost services) and its
//     generated code.
//   - plugins/sdk: what bridge authors import (sdk.Serve runs a bridgev2
//     NetworkConnector as a plugin).
//   - plugins/host: the homeserver side of a plugin process.
//   - plugins/plugintest: a fake MatrixHost, building plugin binaries in
//     tests, and the plugins of the tests (echoplugin; fakenet, an in-memory
//     chat network, and fakebridge, its bridgev2 connector).
//
// This package holds no code; it documents the tree.
package plugins
