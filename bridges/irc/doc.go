// Package irc is the IRC bridge: a mautrix bridgev2 NetworkConnector that
// runs inside the stock bridgev2.Bridge (as a Tributary plugin through
// plugins/sdk, or standalone over the appservice API).
//
// What it maps:
//
//   - A Matrix user logs in with a nick (and a SASL password for a
//     registered account) and gets an IRC connection of their own, kept
//     across reconnects with the same nick; when the server still holds
//     the nick for the previous connection, the bridge registers with a
//     fallback nick and takes the wanted one back as soon as it is free.
//   - A channel is a portal room (portal ID: network + "/" + the channel
//     folded with the server's CASEMAPPING), a private conversation a DM
//     portal per login; an IRC user is a ghost. A ghost's ID is the folded
//     nick it was first seen with and follows the user across NICK changes
//     (the ghost's display name is the current nick), kept in bridgev2's
//     key-value store (nickRegistry).
//   - PRIVMSG, NOTICE and CTCP ACTION are m.text, m.notice and m.emote,
//     mIRC formatting ↔ Matrix HTML, replies through +draft/reply; long
//     Matrix messages are split within IRC's 512-byte lines; a Matrix edit
//     is sent as a "* corrected text" line.
//   - JOIN, PART, QUIT, KICK ↔ room membership; TOPIC ↔ m.room.topic;
//     prefix modes (+q/+a/+o/+h/+v) and channel modes (+m, +t) ↔ power
//     levels. After a reconnect every channel is joined again and its
//     names, topic and modes replace what the room showed (a full resync).
//   - History: IRCv3 CHATHISTORY where the server offers it, else the
//     server-time-tagged replay servers such as InspIRCd (chanhistory, +H)
//     send on join, backfilled with the original timestamps.
//   - Relay: a portal whose relay (bridgev2's set-relay) is an IRC login
//     sends the messages of Matrix users without a login as "<name> text".
//
// Each channel's events are bridged by one of the logins in it (claims),
// so that a channel several Matrix users are in is not bridged once per
// connection; what the bridge's own connections say is never bridged back.
//
// Of this module the package imports only bridges/irc/ircconn (its network
// library) and, from the plugin main, plugins/sdk.
package irc
