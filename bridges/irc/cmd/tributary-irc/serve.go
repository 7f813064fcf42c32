package main

import (
	"context"
	"errors"

	"maunium.net/go/mautrix/event"

	"github.com/tributary-hs/tributary/bridges/irc"
	"github.com/tributary-hs/tributary/plugins/sdk"
)

// errNoBridgev2 is the plugin's answer until plugins/sdk can run a
// bridgev2 connector.
var errNoBridgev2 = errors.New("tributary-irc: this plugins/sdk cannot run a bridgev2 connector yet " +
	"(sdk.Serve(bridgev2.NetworkConnector, …) is not in this build)")

// serve runs the connector as a plugin.
//
// TODO(plugin-sdk): plugins/sdk's bridgev2 entry point is being built on
// another branch. Once it is merged, this file is one line:
//
//	func serve(c *irc.Connector, v string) { sdk.Serve(c, sdk.WithVersion(v)) }
//
// Until then the plugin answers Describe and fails Start with
// errNoBridgev2, so the host reports one clear error.
func serve(c *irc.Connector, version string) {
	name := c.GetName()
	sdk.Serve(&pending{info: sdk.Info{Network: name.NetworkID, Name: name.DisplayName, Version: version}})
}

type pending struct{ info sdk.Info }

func (p *pending) Describe() sdk.Info                              { return p.info }
func (p *pending) Start(context.Context, *sdk.Env) error           { return errNoBridgev2 }
func (p *pending) Stop(context.Context) error                      { return nil }
func (p *pending) HandleEvent(context.Context, *event.Event) error { return errNoBridgev2 }
