package host

import (
	"context"
	"errors"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	"github.com/tributary-hs/tributary/plugins/proto"
)

// handshake is the go-plugin handshake of plugins/proto (the SDK builds the
// same one).
var handshake = plugin.HandshakeConfig{
	ProtocolVersion:  proto.ProtocolVersion,
	MagicCookieKey:   proto.MagicCookieKey,
	MagicCookieValue: proto.MagicCookieValue,
}

// pluginSets are the API versions this host speaks; go-plugin picks the
// newest the plugin offers too.
func pluginSets() map[int]plugin.PluginSet {
	return map[int]plugin.PluginSet{
		proto.ProtocolVersion: {proto.PluginName: &bridgePlugin{}},
	}
}

// bridgePlugin is the host side of go-plugin's GRPCPlugin: it only dials.
type bridgePlugin struct {
	plugin.NetRPCUnsupportedPlugin
}

var _ plugin.GRPCPlugin = (*bridgePlugin)(nil)

// dispensed is what Dispense returns for API version 1.
type dispensed struct {
	bridge proto.BridgeClient
	broker *plugin.GRPCBroker
}

func (*bridgePlugin) GRPCServer(*plugin.GRPCBroker, *grpc.Server) error {
	return errors.New("host: the host does not serve a bridge")
}

func (*bridgePlugin) GRPCClient(_ context.Context, broker *plugin.GRPCBroker, cc *grpc.ClientConn) (any, error) {
	return &dispensed{bridge: proto.NewBridgeClient(cc), broker: broker}, nil
}
