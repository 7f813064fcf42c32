// Command tributary-irc is the IRC bridge as a Tributary plugin: the
// bridges/irc connector run by the plugin SDK. The homeserver starts it
// (plugins: in its config); started by hand it prints a notice and exits.
package main

import "github.com/tributary-hs/tributary/bridges/irc"

// version is set at build time (-ldflags "-X main.version=…").
var version = "dev"

func main() { serve(irc.NewConnector(), version) }
