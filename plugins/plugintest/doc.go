// Package plugintest helps test plugins and their host without a
// homeserver: FakeHost, a MatrixHost that records what a plugin did, and
// Build, which compiles a plugin binary into a test's temporary directory.
// Its subpackages are the plugins of the tests: echoplugin (the echo bridge
// of the host's and the manager's tests, a low-level sdk.Plugin), fakenet
// (a chat network in memory, served over HTTP) and fakebridge (fakenet's
// bridgev2 NetworkConnector run by sdk.Serve, the bridge of the bridgev2
// end-to-end tests and benchmarks).
//
// Of this module it may import only other plugins/ packages, transitively.
package plugintest
