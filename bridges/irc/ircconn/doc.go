// Package ircconn is a small IRC client library for the IRC bridge: RFC
// 1459/2812 with the IRCv3 extensions the bridge needs. It imports nothing
// of this module (only the standard library and golang.org/x/net/html), so
// the bridge's bridgev2 connector can use it freely.
//
// Lines:
//
//   - Message is one line (tags, source, command, params); Parse and
//     Message.String/Bytes convert, with IRCv3 tag escaping;
//     Parse(m.String()) gives m back for every m that Validate accepts.
//     Prefix splits nick!user@host; numerics are named constants (RPL_*,
//     ERR_*).
//   - ISupport keeps RPL_ISUPPORT tokens (CASEMAPPING, CHANMODES, PREFIX,
//     NETWORK, LINELEN, CHATHISTORY…); CaseMapping folds nicks and channels
//     (rfc1459, strict-rfc1459, ascii).
//   - SplitText and TextBudget cut long text so each line, with the source
//     the server adds, fits the 512-byte limit; CTCP, Action and ParseCTCP
//     handle CTCP bodies.
//   - ParseFormatting/Format convert mIRC formatting codes to and from Span
//     (text with a Style); ToHTML and FromHTML convert to and from the Matrix
//     HTML subset, escaping everything else.
//
// Connections:
//
//   - Dial(ctx, Config) connects (TCP or TLS), negotiates capabilities (CAP
//     LS 302, REQ of DefaultCaps that are offered), authenticates with SASL
//     PLAIN when configured, registers (falling back to other nicks when the
//     nick is taken) and returns once the MOTD has ended.
//   - Conn.Events delivers every line, except PING/PONG (answered) and
//     labeled responses claimed by Request; lines of a batch are grouped into
//     one Event when the outermost batch ends. Conn.Done/Err tell when and why
//     the connection ended: a keepalive PINGs a silent server and gives up
//     after Config.PingTimeout.
//   - Conn.Send queues a line; a writer goroutine paces lines with a token
//     bucket (Config.Flood). Conn.Request labels a line and waits for its
//     labeled response; Privmsg/Notice/Action split text and, with
//     echo-message and labeled-response, return the server's echo (msgid,
//     time) of each line; ChatHistory sends CHATHISTORY and returns the batch.
//   - Tracker follows channels (names with prefix modes, topic, modes) from
//     events and keeps them across connections; Tracker.Rejoin joins them
//     again on a new Conn, after which names, topic and modes are replaced by
//     the server's, and DiffMembers tells who came and went meanwhile.
//
// Every goroutine of a Conn ends in Close, which must always be called.
package ircconn
