// Package slack is the Slack bridge: a mautrix bridgev2 NetworkConnector
// over Slack's Web API and Socket Mode (github.com/slack-go/slack), run as
// a Tributary plugin by cmd/tributary-slack.
//
// A login is a Slack token and the app-level token (xapp-…) that opens the
// app's Socket Mode connection. With a bot token (xoxb-…) the bridge posts
// as the app's bot: the login's own Matrix messages and, as the relay of
// its workspace's portals (network.relay, on by default: relay.go), those
// of Matrix users without a login, each under the Matrix user's name and
// avatar (username and icon_url; the avatar through network.media_url),
// or, when the app lacks chat:write.customize, as "*name*: text". With a
// user token (xoxp-…) it posts as that Slack user (puppeting).
//
// IDs are mautrix-slack's, which `tributary import slack` uses too, so the
// bridge continues in the rooms an import made: a conversation's portal is
// "TEAM-CHANNEL" (shared, no receiver), the workspace's space "TEAM", a
// user's ghost "team-user" (lowercase), a message "TEAM-CHANNEL-TS". The
// SDK hands bridgev2 the imported room of a portal (FindPortal). A Slack
// thread reply whose root the bridge has not seen (an imported message)
// points at the root's event ID alias, which the import recorded under the
// same deterministic name bridgev2 would give it; a Matrix reply in such a
// thread finds the root's ts back from that alias.
//
// A workspace's custom emoji (emoji.list) go to Matrix as images, as
// mautrix-slack sends them: a reaction's key is the image's mxc:// URI with
// com.beeper.reaction.shortcode beside it, text shows an inline <img
// data-mx-emoticon>; a Matrix reaction with such an image (or shortcode)
// goes back as the emoji's name.
//
// Read markers go from Matrix to Slack for user logins (conversations.mark,
// which a bot token may not call). Not bridged: typing either way (the Web
// API has no call for it; only the retired RTM API had) and read markers
// from Slack (the Events API sends none).
// History is not backfilled from Slack, whose conversations.history allows
// non-Marketplace apps one request a minute: the export import carries it.
//
// Slack's answers invalid_auth, token_revoked, token_expired and
// account_inactive, and the tokens_revoked and app_uninstalled events, put
// the login in BAD_CREDENTIALS: bridgev2 then tells the user in their
// management room.
//
// Of this module it imports only plugins/sdk (through cmd) and its own
// slackfmt, which it shares with importer/slack.
package slack
