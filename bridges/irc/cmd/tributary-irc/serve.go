package main

import (
	"github.com/tributary-hs/tributary/bridges/irc"
	"github.com/tributary-hs/tributary/plugins/sdk"
)

// serve runs the connector as a Tributary plugin: the stock bridgev2
// bridge with the SDK's Matrix connector.
func serve(c *irc.Connector, version string) { sdk.Serve(c, sdk.WithVersion(version)) }
