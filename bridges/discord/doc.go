// Package discord is the Discord bridge: a bridgev2 NetworkConnector on
// github.com/bwmarrin/discordgo, run as a Tributary plugin by
// cmd/tributary-discord through plugins/sdk.
//
// It logs in as a bot (a bot token: no terms-of-service risk of user-token
// bridges). The bot needs the Message Content and Server Members intents,
// Manage Webhooks, and Manage Messages for deleting other people's
// messages from Matrix.
//
// Rooms. Each channel is a portal keyed by its channel ID and each guild
// a space keyed "*<guild ID>", as mautrix-discord's bridgev2 keys them and
// as `tributary import discord` records them, so after an import the
// plugin continues in the imported rooms (the plugin SDK adopts them). A
// thread's messages go into its channel's room as a Matrix thread, rooted
// where the importer roots it (threads.go): the message it was started
// from (whose ID the thread has), a forum post's first message, or, for a
// thread started at no message, the ThreadCreated notice Discord posts in
// the channel. A Matrix thread goes to its root's Discord thread, started
// there if the root has none. The
// plugin acts on imported messages as on those it bridged (the SDK's
// imported.go): Discord edits, reactions, reaction removals and deletions
// of them are queued through sdk.QueueRemoteEvent, and thread roots and
// messages replied to looked up with sdk.ImportedMessage, so they land on
// the imported events; Matrix edits, reactions, redactions and replies of
// imported events reach their Discord messages, and redacting an imported
// reaction (or removing it on Discord) removes it on the other side. The
// import names events as the SDK does (hence the empty NetworkURL).
//
// Invites. Portals are made when a channel first has a message. The user
// who logged in is invited to the guild's space only, once (or joined to
// it, when bridgev2 double-puppets them: they are in the guild); a channel's
// room invites nobody and is open to the space's members (a restricted
// join rule, as the importer makes them), so every channel with activity
// is listed in the space and the user joins the ones they want instead of
// collecting an invite per channel. Discord DMs with the bot are invites,
// being the user's own.
//
// People. Discord users are ghosts named by their user IDs. Matrix users'
// messages go to Discord through a webhook of the channel, under the
// sender's name (and avatar, when media_url makes it reachable). Discord
// lets a message's author alone edit it (a webhook's message through the
// webhook): in bot mode the bridge edits what it posted, and a Matrix
// edit of a Discord user's message (live or imported) fails with a notice
// and a failed message status, as does any edit Discord refuses.
//
// Power levels from roles (roles.go): the guild's owner and members whose
// roles grant Administrator or Manage Server are 100; Manage Messages,
// Manage Channels, Manage Roles, Kick, Ban or Timeout Members make 50;
// everyone else 0. Guild-level permissions only (@everyone's and the
// member's roles'), not channel overwrites. Role and member updates from
// the gateway resync the levels of the guild's rooms. Matrix power level
// changes are not sent to Discord.
//
// Messages. Markdown ↔ HTML, replies, edits, reactions, attachments and
// deletions go both ways, typing both ways. A custom emoji reaction shows
// as its image (with its :name: as shortcode), as the importer shows them;
// reacting on Matrix with that image (or :name:) reacts with the emoji; in
// text a custom emoji is its image inline, and channel and role mentions
// and times read as names and a UTC time (markup.go). Stickers arrive as m.sticker
// with their image (a Lottie sticker, or one that cannot be fetched, as a
// text naming it); embeds as quotes after the text, rendered by
// discordfmt as the importer renders them.
//
// User-token mode (optional, at the user's risk: `login user-token`).
// Discord's terms forbid automating user accounts, which may meet
// captchas or be disabled; bot mode is the default and the recommended
// one. With a user account's token, Matrix messages, replies (as Discord
// replies), edits and deletions are sent as that account, not through
// webhooks; what the account writes on Discord arrives as the user's
// (double-puppeted). Its reactions and typing on Discord are not bridged
// back. Everything else is as in bot mode.
//
// Connection. Gateway events are handled one at a time in their order
// (discordgo's SyncEvents), so a message is bridged before its edit or
// deletion. discordgo's own gateway reconnecting is off: after a drop
// the client checks the token first, so one Discord refuses (revoked or
// reset) becomes the login's BAD_CREDENTIALS state, which bridgev2 also
// tells the user as a notice, rather than a silent retry loop.
//
// It imports only plugins/sdk's world: mautrix and discordgo.
package discord
