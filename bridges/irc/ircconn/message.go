package ircconn

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// MaxLineLen is the RFC 1459 limit of a line without its tags, CR-LF included.
const MaxLineLen = 512

// MaxClientTagsLen is the IRCv3 limit of the tags a client may send ("@",
// the tags and the space before the rest, in bytes).
const MaxClientTagsLen = 4096

// Errors of Parse and Message.Validate.
var (
	ErrEmptyMessage = errors.New("irc: empty message")
	ErrInvalid      = errors.New("irc: invalid message")
)

// Message is one IRC line: IRCv3 tags, an optional source (prefix), the
// command (upper-cased; a verb or a three-digit numeric) and its parameters.
// A parameter holds the text as sent: the colon that introduces a trailing
// parameter is syntax, not part of it.
type Message struct {
	// Tags maps tag keys to their unescaped values; a tag sent without a
	// value has "" (IRCv3 treats "a" and "a=" alike). Nil when there are none.
	Tags    map[string]string
	Source  string
	Command string
	Params  []string
}

// NewMessage builds a message without tags or source.
func NewMessage(command string, params ...string) *Message {
	return &Message{Command: strings.ToUpper(command), Params: params}
}

// Param returns the i-th parameter, or "" when there are fewer.
func (m *Message) Param(i int) string {
	if i < 0 || i >= len(m.Params) {
		return ""
	}
	return m.Params[i]
}

// Trailing returns the last parameter, or "".
func (m *Message) Trailing() string {
	if len(m.Params) == 0 {
		return ""
	}
	return m.Params[len(m.Params)-1]
}

// Prefix returns the parsed source.
func (m *Message) Prefix() Prefix { return ParsePrefix(m.Source) }

// Tag returns a tag's value and whether the message carries it.
func (m *Message) Tag(key string) (string, bool) {
	v, ok := m.Tags[key]
	return v, ok
}

// SetTag sets a tag, allocating the map on first use.
func (m *Message) SetTag(key, value string) {
	if m.Tags == nil {
		m.Tags = make(map[string]string)
	}
	m.Tags[key] = value
}

// Time returns the server-time tag ("time"), or the zero time when the
// message has none or it does not parse.
func (m *Message) Time() time.Time {
	v, ok := m.Tags["time"]
	if !ok {
		return time.Time{}
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return time.Time{}
	}
	return t
}

// MsgID returns the msgid tag, or "".
func (m *Message) MsgID() string { return m.Tags["msgid"] }

// Label returns the labeled-response label tag, or "".
func (m *Message) Label() string { return m.Tags["label"] }

// BatchRef returns the reference of the batch the message belongs to, or "".
func (m *Message) BatchRef() string { return m.Tags["batch"] }

// IsClientTag reports whether key is a client-only tag (prefixed with "+"),
// which servers relay between clients unchanged.
func IsClientTag(key string) bool { return strings.HasPrefix(key, "+") }

// ClientTags returns a copy of the message's client-only tags, or nil.
func (m *Message) ClientTags() map[string]string {
	var out map[string]string
	for k, v := range m.Tags {
		if IsClientTag(k) {
			if out == nil {
				out = make(map[string]string)
			}
			out[k] = v
		}
	}
	return out
}

// Clone returns a deep copy.
func (m *Message) Clone() *Message {
	c := &Message{Source: m.Source, Command: m.Command}
	if m.Tags != nil {
		c.Tags = make(map[string]string, len(m.Tags))
		for k, v := range m.Tags {
			c.Tags[k] = v
		}
	}
	if m.Params != nil {
		c.Params = append([]string(nil), m.Params...)
	}
	return c
}

// IsNumeric reports whether the command is a three-digit numeric reply.
func (m *Message) IsNumeric() bool {
	c := m.Command
	return len(c) == 3 && isDigit(c[0]) && isDigit(c[1]) && isDigit(c[2])
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func isAlnum(c byte) bool {
	return isDigit(c) || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')
}

// Parse parses one line. A trailing "\r\n" or "\n" is removed; any other CR,
// LF or NUL makes the line invalid. Runs of spaces between parts are accepted
// as one, and empty tags ("@a;;b") are ignored.
func Parse(line string) (*Message, error) {
	line = strings.TrimSuffix(line, "\n")
	line = strings.TrimSuffix(line, "\r")
	if strings.ContainsAny(line, "\r\n\x00") {
		return nil, fmt.Errorf("%w: CR, LF or NUL inside the line", ErrInvalid)
	}
	m := &Message{}
	rest := strings.TrimLeft(line, " ")
	if rest == "" {
		return nil, ErrEmptyMessage
	}
	if rest[0] == '@' {
		var raw string
		raw, rest = cut(rest[1:])
		if raw == "" {
			return nil, fmt.Errorf("%w: empty tags", ErrInvalid)
		}
		m.Tags = parseTags(raw)
	}
	if rest != "" && rest[0] == ':' {
		m.Source, rest = cut(rest[1:])
		if m.Source == "" {
			return nil, fmt.Errorf("%w: empty source", ErrInvalid)
		}
	}
	m.Command, rest = cut(rest)
	if m.Command == "" {
		return nil, fmt.Errorf("%w: no command", ErrInvalid)
	}
	for i := 0; i < len(m.Command); i++ {
		if !isAlnum(m.Command[i]) {
			return nil, fmt.Errorf("%w: command %q", ErrInvalid, m.Command)
		}
	}
	m.Command = strings.ToUpper(m.Command)
	for rest != "" {
		if rest[0] == ':' {
			m.Params = append(m.Params, rest[1:])
			break
		}
		var p string
		p, rest = cut(rest)
		m.Params = append(m.Params, p)
	}
	return m, nil
}

// cut splits s at the first space, dropping the run of spaces that follows.
func cut(s string) (string, string) {
	i := strings.IndexByte(s, ' ')
	if i < 0 {
		return s, ""
	}
	return s[:i], strings.TrimLeft(s[i+1:], " ")
}

func parseTags(raw string) map[string]string {
	var tags map[string]string
	for raw != "" {
		var tag string
		if i := strings.IndexByte(raw, ';'); i >= 0 {
			tag, raw = raw[:i], raw[i+1:]
		} else {
			tag, raw = raw, ""
		}
		k, v, _ := strings.Cut(tag, "=")
		if k == "" {
			continue
		}
		if tags == nil {
			tags = make(map[string]string)
		}
		tags[k] = UnescapeTagValue(v) // a repeated key: the last one wins
	}
	return tags
}

// EscapeTagValue escapes a tag value for the wire (IRCv3 message-tags).
func EscapeTagValue(v string) string {
	if !strings.ContainsAny(v, "; \\\r\n") {
		return v
	}
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		switch c := v[i]; c {
		case ';':
			b.WriteString(`\:`)
		case ' ':
			b.WriteString(`\s`)
		case '\\':
			b.WriteString(`\\`)
		case '\r':
			b.WriteString(`\r`)
		case '\n':
			b.WriteString(`\n`)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// UnescapeTagValue reverses EscapeTagValue. As the specification says, a
// backslash before any other character is dropped and a lone trailing
// backslash is removed.
func UnescapeTagValue(v string) string {
	if strings.IndexByte(v, '\\') < 0 {
		return v
	}
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c != '\\' {
			b.WriteByte(c)
			continue
		}
		i++
		if i == len(v) {
			break
		}
		switch v[i] {
		case ':':
			b.WriteByte(';')
		case 's':
			b.WriteByte(' ')
		case 'r':
			b.WriteByte('\r')
		case 'n':
			b.WriteByte('\n')
		default:
			b.WriteByte(v[i])
		}
	}
	return b.String()
}

func validTagKey(k string) bool {
	return k != "" && !strings.ContainsAny(k, "=; \r\n\x00")
}

// Validate reports whether the message can be written as one line: a valid
// command, tag keys and source without separators, no CR, LF or NUL, and
// only the last parameter empty, containing spaces or starting with ':'.
func (m *Message) Validate() error {
	if m.Command == "" {
		return fmt.Errorf("%w: no command", ErrInvalid)
	}
	for i := 0; i < len(m.Command); i++ {
		if !isAlnum(m.Command[i]) {
			return fmt.Errorf("%w: command %q", ErrInvalid, m.Command)
		}
	}
	if strings.ContainsAny(m.Source, " \r\n\x00") {
		return fmt.Errorf("%w: source %q", ErrInvalid, m.Source)
	}
	for k, v := range m.Tags {
		if !validTagKey(k) {
			return fmt.Errorf("%w: tag key %q", ErrInvalid, k)
		}
		if strings.IndexByte(v, 0) >= 0 {
			return fmt.Errorf("%w: NUL in tag %q", ErrInvalid, k)
		}
	}
	for i, p := range m.Params {
		if strings.ContainsAny(p, "\r\n\x00") {
			return fmt.Errorf("%w: CR, LF or NUL in parameter %d", ErrInvalid, i)
		}
		if i < len(m.Params)-1 && (p == "" || p[0] == ':' || strings.IndexByte(p, ' ') >= 0) {
			return fmt.Errorf("%w: parameter %d (%q) must be the last one", ErrInvalid, i, p)
		}
	}
	return nil
}

// String serialises the message without the final CR-LF. It does not
// validate: call Validate first for messages built from untrusted input
// (Conn.Send does).
func (m *Message) String() string {
	var b strings.Builder
	m.writeTo(&b)
	return b.String()
}

// Bytes serialises the message with the final CR-LF.
func (m *Message) Bytes() []byte {
	var b strings.Builder
	m.writeTo(&b)
	b.WriteString("\r\n")
	return []byte(b.String())
}

func (m *Message) writeTo(b *strings.Builder) {
	if len(m.Tags) > 0 {
		b.WriteByte('@')
		for i, k := range sortedKeys(m.Tags) {
			if i > 0 {
				b.WriteByte(';')
			}
			b.WriteString(k)
			if v := m.Tags[k]; v != "" {
				b.WriteByte('=')
				b.WriteString(EscapeTagValue(v))
			}
		}
		b.WriteByte(' ')
	}
	if m.Source != "" {
		b.WriteByte(':')
		b.WriteString(m.Source)
		b.WriteByte(' ')
	}
	b.WriteString(m.Command)
	for i, p := range m.Params {
		b.WriteByte(' ')
		if i == len(m.Params)-1 && (p == "" || p[0] == ':' || strings.IndexByte(p, ' ') >= 0) {
			b.WriteByte(':')
		}
		b.WriteString(p)
	}
}

// tagsLen returns the bytes the tags take on the wire: "@", the tags and the
// separating space; 0 without tags.
func (m *Message) tagsLen() int {
	if len(m.Tags) == 0 {
		return 0
	}
	n := 1 // "@", then the separators (";" between tags, " " after) count one per tag
	for k, v := range m.Tags {
		n += len(k) + 1
		if v != "" {
			n += 1 + len(EscapeTagValue(v))
		}
	}
	return n
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys) // a stable output, for tests and logs
	return keys
}

// Prefix is a message source: a server name, or nick!user@host.
type Prefix struct {
	Name string // nick, or server name
	User string
	Host string
}

// ParsePrefix splits nick!user@host; parts that are absent are "".
func ParsePrefix(s string) Prefix {
	var p Prefix
	rest := s
	if i := strings.IndexByte(rest, '@'); i >= 0 {
		p.Host = rest[i+1:]
		rest = rest[:i]
	}
	if i := strings.IndexByte(rest, '!'); i >= 0 {
		p.User = rest[i+1:]
		rest = rest[:i]
	}
	p.Name = rest
	return p
}

// String reassembles the prefix.
func (p Prefix) String() string {
	s := p.Name
	if p.User != "" {
		s += "!" + p.User
	}
	if p.Host != "" {
		s += "@" + p.Host
	}
	return s
}

// IsServer reports whether the prefix looks like a server name rather than a
// user: no user or host part and a dot in the name.
func (p Prefix) IsServer() bool {
	return p.User == "" && p.Host == "" && strings.IndexByte(p.Name, '.') >= 0
}
