// Package slackexport writes synthetic Slack workspace exports, the zip
// files Slack's "Export data" gives an admin: users.json (people and bots),
// channels.json, groups.json (private channels), dms.json, mpims.json
// (group DMs), and one folder per conversation of YYYY-MM-DD.json day
// files. Messages have what real exports have: ts, user, bot_id, subtypes
// (joins, leaves, topics, purposes, renames, bot messages, thread
// broadcasts, file shares, pins and subtypes an importer will not know),
// mrkdwn text with mentions, channel references and links, rich_text
// blocks, threads (thread_ts, replies, reply_count), edits, reactions,
// files, attachments and user_profile.
//
// The same Options (Seed included) always give the same bytes, so tests and
// benchmarks (the Slack importer's, `make bench`) import exactly the same
// workspace; the Manifest says what was written. It imports only the
// standard library.
package slackexport
