// Package telegram is the Telegram bridge: a mautrix bridgev2
// NetworkConnector run as a Tributary plugin (plugins/sdk), in bot-API
// mode through github.com/go-telegram/bot and in user-account mode over
// MTProto through github.com/gotd/td.
//
// Bot mode:
//
//   - A login is a bot: a Matrix user gives the bot's token, the bridge
//     checks it (getMe) and long-polls getUpdates. The Bot API's base URL
//     is configurable (network.api_url): a self-hosted telegram-bot-api
//     server, or a fake in tests. The update offset is saved in the login
//     after each batch is bridged, so a restart neither loses nor repeats
//     updates (bridgev2 drops a message it already has).
//   - Each chat the bot sees (private chat, group, supergroup, channel) is
//     a portal (ID: the chat ID), created with its first message. Private
//     chats are DM portals with the bot's login as receiver; groups,
//     supergroups and channels have no receiver: one room per chat,
//     shared by every login (bot or user account) in it. The bot is the
//     relay of its portals (network.relay, with bridge.relay.enabled), so
//     Matrix users without a login of their own talk through it as
//     "name: text".
//   - A Telegram user is a ghost named from their first and last name
//     (network.displayname_template), with their profile photo
//     (getUserProfilePhotos, looked up at most every 6 hours); a message
//     sent as a chat (channel posts, anonymous admins) comes from a ghost
//     of that chat. The Bot API cannot look users up, so names come from
//     the updates.
//   - Text with entities ↔ Matrix HTML (format.go, UTF-16 offsets, nested
//     and overlapping entities); photos, documents, stickers, voice notes,
//     audio, video and animations ↔ Matrix media (getFile and the file
//     download URL one way, multipart uploads the other); replies, edits
//     (editMessageText/editMessageCaption), deletions, reactions
//     (message_reaction updates; setMessageReaction, one per message as
//     bots may); polls, locations, venues, contacts and dice as text.
//     Album items are one Matrix message each, in Telegram's order.
//   - A 429 answer with retry_after delays the call by it (doubling for
//     each further 429 of the same call, up to network.max_retry_wait) and
//     retries it until Telegram takes it; meanwhile the login's bridge
//     state is TRANSIENT_DISCONNECT (tg-rate-limited), the sender sees a
//     PENDING message status and the room a notice.
//   - A group that becomes a supergroup (migrate_to_chat_id) keeps its
//     room: the portal is re-IDed to the supergroup's chat ID.
//
// User mode (network.api_id and api_hash set; user*.go):
//
//   - The "phone" login flow asks for the phone number, the code Telegram
//     sends and the two-step password (SRP, package mtproto) over a
//     connection of its own; gotd's session (auth key, DC) is then kept
//     in the login's metadata, and so is the account's update state (pts,
//     qts, date, seq, each channel's pts and access hash): a restarted
//     plugin connects without logging in again, and gotd's update manager
//     asks Telegram for what came meanwhile (updates.getDifference,
//     updates.getChannelDifference) and fills gaps.
//   - Portals have the bot mode's IDs: chats are named by their Bot API IDs
//     (a basic group -id, a channel or supergroup -10^12-id), forum
//     topics "<chat>/<topic>", messages "<chat>:<id>"; and the same
//     receivers (the login for private chats, none for the others), so a
//     group bridged by a bot and by user accounts is one room.
//   - New messages, edits, deletions (outside channels MTProto names no
//     chat: the message is found by its ID among those this process
//     queued, else in the bridge's database), reactions (synced from the
//     message's reaction list), typing, read states, joins, leaves,
//     titles, topics and migrations become bridgev2 remote events; users
//     and chats that come with updates are remembered with their access
//     hashes (and the recent dialogs are read at connect). Messages are
//     converted through the bot mode's code (an MTProto message is put in
//     the Bot API's shape, its file downloaded over upload.getFile); ghosts
//     get the users' profile photos.
//   - Matrix messages, media (uploaded, then messages.sendMedia), edits,
//     reactions, deletions, read receipts and typing go out over MTProto; a
//     sent message's own echo is not bridged back.
//   - Backfill (FetchMessages) pages through messages.getHistory, oldest
//     first, with the original senders and times; the senders are joined
//     to the room before the batch.
//   - FLOOD_WAIT is waited out as the bot mode's 429 is (same state,
//     notice and PENDING status; package mtproto's Retry).
//   - network.dc_address, dc_id and public_key point user mode at another
//     MTProto server: the e2e tests run gotd's test server.
//
// Of this module the package imports only its own mtproto package; its
// plugin main imports plugins/sdk.
package telegram
