// Command tributary-telegram is the Telegram bridge as a Tributary plugin:
// the bridges/telegram connector run by the plugin SDK. The homeserver
// starts it (plugins: in its config); started by hand it prints a notice
// and exits.
package main

import (
	"github.com/tributary-hs/tributary/bridges/telegram"
	"github.com/tributary-hs/tributary/plugins/sdk"
)

// version is set at build time (-ldflags "-X main.version=…").
var version = "dev"

func main() { sdk.Serve(telegram.NewConnector(), sdk.WithVersion(version)) }
