// Package discord is the Discord bridge: a bridgev2 NetworkConnector on
// github.com/bwmarrin/discordgo, run as a Tributary plugin by
// cmd/tributary-discord through plugins/sdk.
//
// It logs in as a bot (a bot token: no terms-of-service risk of user-token
// bridges). Each channel is a portal keyed by its channel ID and each guild
// a space keyed "*<guild ID>", as mautrix-discord's bridgev2 keys them and
// as `tributary import discord` records them; a thread's messages go into
// its channel's room as a Matrix thread. Discord users are ghosts named by
// their user IDs. Matrix users' messages go to Discord through a webhook
// of the channel, under the sender's name (and avatar, when media_url
// makes it reachable). Replies, edits, reactions, attachments and typing
// go both ways. A bot token Discord refuses is reported as the login's
// BAD_CREDENTIALS state, which bridgev2 also tells the user as a notice.
//
// It imports only plugins/sdk's world: mautrix and discordgo.
package discord
