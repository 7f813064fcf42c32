// Package plugintest is an in-process harness for testing a bridge plugin
// without a homeserver: it runs the plugin's NetworkConnector through
// plugins/sdk against a fake MatrixHost that records what the bridge did.
//
// Of this module it may import only other plugins/ packages, transitively.
//
// No code yet: the package exists so the dependency rules of DESIGN.md have
// something to check.
package plugintest
