package proto

// The go-plugin handshake, frozen: a plugin built against this API version
// shows ProtocolVersion, and is only started with the cookie in its
// environment (it refuses to run by hand, and the host refuses a binary
// that answers otherwise).
const (
	// ProtocolVersion is the API version of bridge.proto (package
	// tributary.plugins.v1). A breaking change adds version 2 beside it.
	ProtocolVersion = 1
	// MagicCookieKey and MagicCookieValue never change.
	MagicCookieKey   = "TRIBUTARY_BRIDGE_PLUGIN"
	MagicCookieValue = "6f2c1d0a-tributary-bridge-plugin-9e4b"
	// PluginName is the name of the bridge in the plugin set of each version.
	PluginName = "bridge"
)

// MaxMessageBytes bounds one gRPC message either way: a transaction of 100
// events of up to 64 KiB each, or a large batch send, is above gRPC's
// default of 4 MiB.
const MaxMessageBytes = 64 << 20
