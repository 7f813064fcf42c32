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
// A bridge continues in the rooms `tributary import` made for its network
// (adopt.go) and acts on the messages the import wrote there (imported.go):
// Matrix edits, reactions, redactions, replies and receipts of imported
// messages (and redactions of imported reactions) reach the network as
// those of bridged ones do, with nothing for the bridge to do; for the
// network's edits, reactions, reaction removals and deletions of imported
// messages to land on their Matrix events, a connector queues its
// remote events with QueueRemoteEvent(login, evt) instead of bridgev2's
// login.QueueRemoteEvent(evt), and looks thread roots and reply targets up
// with ImportedMessage(ctx, portal, id) in ConvertMessage. The import must
// name each message part's event as bridgev2 would (importer.Event: Alias,
// Message, Part, SenderID; Emoji for a reaction).
//
// Of this module it may import only plugins/proto (nothing outside plugins/,
// transitively); beyond that, mautrix, go-plugin, gRPC and the database
// drivers. Bridges under bridges/<network> import this package and nothing
// else of the module.
package sdk
