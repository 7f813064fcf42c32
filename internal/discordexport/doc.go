// Package discordexport writes synthetic DiscordChatExporter exports: one
// JSON file per channel, as `DiscordChatExporter.Cli export --format Json`
// writes them ("<guild> - <category> - <channel> [<id>].json"), each with
// its guild, its channel (id, type, categoryId, category, name, topic) and
// its messages. A guild has text channels in categories, threads exported
// as channels of their own (their category is the channel they branch off,
// their ID the ID of the message they start at, or of a ThreadCreated
// notice when they start at none), and a direct-message channel. Messages
// have what real exports have: replies (type Reply, reference), edits
// (timestampEdited), reactions with the users who reacted (Unicode and
// custom emoji, some counts naming fewer users than they count),
// attachments, stickers, embeds, bots, mentions, pins, members joining,
// renames, and a message type an importer will not know; content in
// Discord's markdown.
//
// The same Options (Seed included) always give the same bytes, so tests and
// benchmarks import exactly the same guild; the Manifest says what was
// written. It imports only the standard library.
package discordexport
