// Package slackfmt converts Slack text to Matrix and back: mrkdwn (with
// blocks' rich text) to HTML, Matrix HTML to mrkdwn, and Slack emoji names
// to unicode. The live bridge (bridges/slack) and the export importer
// (importer/slack) share it, so that a message reads the same whichever
// way it came. It imports nothing of this module.
package slackfmt
