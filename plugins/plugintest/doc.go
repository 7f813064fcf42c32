// Package plugintest helps test plugins and their host without a
// homeserver: FakeHost, a MatrixHost that records what a plugin did, and
// Build, which compiles a plugin binary (such as echoplugin, the echo bridge
// used by the host's and the manager's tests) into a test's temporary
// directory.
//
// Of this module it may import only other plugins/ packages, transitively.
package plugintest
