// Package telegram is the Telegram bridge: a mautrix bridgev2
// NetworkConnector run as a Tributary plugin (plugins/sdk), in bot-API
// mode through github.com/go-telegram/bot.
//
// What it maps:
//
//   - A login is a bot: a Matrix user gives the bot's token, the bridge
//     checks it (getMe) and long-polls getUpdates. The Bot API's base URL
//     is configurable (network.api_url): a self-hosted telegram-bot-api
//     server, or a fake in tests. The update offset is saved in the login
//     after each batch is bridged, so a restart neither loses nor repeats
//     updates (bridgev2 drops a message it already has).
//   - Each chat the bot sees (private chat, group, supergroup, channel) is
//     a portal (ID: the chat ID; receiver: the bot's login), created with
//     its first message; private chats are DM portals. The bot is the
//     relay of its portals (network.relay, with bridge.relay.enabled), so
//     Matrix users without a login of their own talk through it as
//     "name: text".
//   - A Telegram user is a ghost named from their first and last name
//     (network.displayname_template); a message sent as a chat (channel
//     posts, anonymous admins) comes from a ghost of that chat. The Bot
//     API cannot look users up, so names come from the updates.
//   - Text with entities ↔ Matrix HTML (format.go, UTF-16 offsets, nested
//     and overlapping entities); photos, documents, stickers, voice notes,
//     audio, video and animations ↔ Matrix media (getFile and the file
//     download URL one way, multipart uploads the other); replies, edits
//     (editMessageText/editMessageCaption), deletions, reactions
//     (message_reaction updates; setMessageReaction, one per message as
//     bots may); polls, locations, venues, contacts and dice as text.
//   - A 429 answer with retry_after delays the call by it (doubling for
//     each further 429 of the same call, up to network.max_retry_wait) and
//     retries it until Telegram takes it; meanwhile the login's bridge
//     state is TRANSIENT_DISCONNECT (tg-rate-limited), the sender sees a
//     PENDING message status and the room a notice.
//
// Of this module the package imports nothing; its plugin main imports
// plugins/sdk.
package telegram
