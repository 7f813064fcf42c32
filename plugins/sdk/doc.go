// Package sdk is what bridge authors import. Serve runs a mautrix bridgev2
// NetworkConnector as a Tributary plugin: the stock bridgev2.Bridge, with
// Matrix — a bridgev2.MatrixConnector (and MatrixAPI for the bot, ghosts
// and double-puppeted users) over the plugin's gRPC connection to the
// homeserver's MatrixHost service — as its Matrix side, the Matrix events
// of the plugin's queue dispatched into it and acknowledged once bridged,
// its own database in the server's data directory or PostgreSQL database,
// and its configuration from the plugin's block of the server's (Config).
// Underneath, ServePlugin runs any Plugin (the Bridge service), with the
// go-plugin Handshake shared with the host, and Host is a plain client of
// MatrixHost.
//
// Of this module it may import only plugins/proto (nothing outside plugins/,
// transitively); beyond that, mautrix, go-plugin, gRPC and the database
// drivers. Bridges under bridges/<network> import this package and nothing
// else of the module.
package sdk
