package ircconn

import "strings"

// CTCP builds a CTCP message body (for PRIVMSG or NOTICE): \x01COMMAND args\x01.
func CTCP(command, args string) string {
	if args == "" {
		return "\x01" + strings.ToUpper(command) + "\x01"
	}
	return "\x01" + strings.ToUpper(command) + " " + args + "\x01"
}

// Action builds a CTCP ACTION (/me) body.
func Action(text string) string { return CTCP("ACTION", text) }

// ParseCTCP splits a CTCP body into its command (upper-cased) and arguments.
// The closing \x01 is optional, as several clients omit it.
func ParseCTCP(text string) (command, args string, ok bool) {
	if len(text) < 2 || text[0] != '\x01' {
		return "", "", false
	}
	body := strings.TrimSuffix(text[1:], "\x01")
	command, args, _ = strings.Cut(body, " ")
	if command == "" {
		return "", "", false
	}
	return strings.ToUpper(command), args, true
}

// ParseAction returns the text of a CTCP ACTION body.
func ParseAction(text string) (string, bool) {
	cmd, args, ok := ParseCTCP(text)
	if !ok || cmd != "ACTION" {
		return "", false
	}
	return args, true
}
