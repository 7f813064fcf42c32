// Command tributary-discord is the Discord bridge as a Tributary plugin:
// the bridges/discord connector run by the plugin SDK. The homeserver
// starts it (plugins: in its config).
package main

import (
	"github.com/tributary-hs/tributary/bridges/discord"
	"github.com/tributary-hs/tributary/plugins/sdk"
)

// version is set at build time (-ldflags "-X main.version=…").
var version = "dev"

func main() { sdk.Serve(discord.NewConnector(), sdk.WithVersion(version)) }
