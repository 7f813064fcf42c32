// Command fakebridge is the fake network's bridge as a Tributary plugin:
// its bridgev2 NetworkConnector (connector) handed to sdk.Serve, which is
// all a bridge's main holds.
package main

import (
	"github.com/tributary-hs/tributary/plugins/plugintest/fakebridge/connector"
	"github.com/tributary-hs/tributary/plugins/sdk"
)

func main() {
	sdk.Serve(&connector.Connector{}, sdk.WithVersion("1.0"))
}
