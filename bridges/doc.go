// Package bridges is the root of the bridges tree:
//
//   - bridges/manager runs the configured plugins inside the homeserver.
//   - bridges/<network> (irc, slack, discord, telegram…) is one plugin each: a
//     mautrix bridgev2 NetworkConnector and a main that calls sdk.Serve. Of
//     this module a network imports only plugins/sdk (and, through it, other
//     plugins/ packages); beyond that, mautrix and its network library.
//
// This package holds no code; it documents the tree. internal/archtest checks
// the rules above.
package bridges
