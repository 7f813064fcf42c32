package ircconn

import (
	"strconv"
	"strings"
	"sync"
)

// ISupport holds the RPL_ISUPPORT (005) tokens a server advertised. The zero
// value is ready to use and answers with RFC 1459 defaults. It is safe for
// concurrent use.
type ISupport struct {
	mu     sync.RWMutex
	tokens map[string]string
}

// Apply records the tokens of one 005 message: params are the whole
// parameter list (the client's nick first, the "are supported" text last).
// "-KEY" removes a token; values are unescaped (\xHH).
func (s *ISupport) Apply(params []string) {
	if len(params) < 2 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tokens == nil {
		s.tokens = make(map[string]string)
	}
	for _, tok := range params[1 : len(params)-1] {
		if tok == "" {
			continue
		}
		if tok[0] == '-' {
			delete(s.tokens, strings.ToUpper(tok[1:]))
			continue
		}
		k, v, _ := strings.Cut(tok, "=")
		s.tokens[strings.ToUpper(k)] = unescapeISupport(v)
	}
}

func unescapeISupport(v string) string {
	if !strings.Contains(v, `\x`) {
		return v
	}
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		if v[i] == '\\' && i+4 <= len(v) && v[i+1] == 'x' {
			if n, err := strconv.ParseUint(v[i+2:i+4], 16, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(v[i])
	}
	return b.String()
}

// Get returns a token's value and whether the server advertised it.
func (s *ISupport) Get(key string) (string, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	v, ok := s.tokens[strings.ToUpper(key)]
	return v, ok
}

func (s *ISupport) intOr(key string, def int) int {
	v, ok := s.Get(key)
	if !ok {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		return def
	}
	return n
}

// Network returns the NETWORK name, or "".
func (s *ISupport) Network() string { v, _ := s.Get("NETWORK"); return v }

// CaseMapping returns the CASEMAPPING (rfc1459 when absent or unknown).
func (s *ISupport) CaseMapping() CaseMapping {
	v, _ := s.Get("CASEMAPPING")
	return ParseCaseMapping(v)
}

// LineLen returns LINELEN, the line limit without tags (512 by default).
func (s *ISupport) LineLen() int { return s.intOr("LINELEN", MaxLineLen) }

// NickLen returns NICKLEN (30 when absent: RFC 2812 says 9, but no network
// is that strict any more and a conservative value only costs message space).
func (s *ISupport) NickLen() int { return s.intOr("NICKLEN", 30) }

// UserLen returns USERLEN (10 by default, the common ident length).
func (s *ISupport) UserLen() int { return s.intOr("USERLEN", 10) }

// HostLen returns HOSTLEN (64 by default).
func (s *ISupport) HostLen() int { return s.intOr("HOSTLEN", 64) }

// ChanTypes returns CHANTYPES ("#&" by default).
func (s *ISupport) ChanTypes() string {
	if v, ok := s.Get("CHANTYPES"); ok {
		return v
	}
	return "#&"
}

// IsChannel reports whether target names a channel.
func (s *ISupport) IsChannel(target string) bool {
	return target != "" && strings.IndexByte(s.ChanTypes(), target[0]) >= 0
}

// ChanModes returns the four CHANMODES classes: A (list modes, always a
// parameter), B (always a parameter), C (a parameter when set) and D (never).
func (s *ISupport) ChanModes() (a, b, c, d string) {
	v, ok := s.Get("CHANMODES")
	if !ok {
		v = "beI,k,l,imnpst"
	}
	parts := strings.SplitN(v, ",", 5)
	for len(parts) < 4 {
		parts = append(parts, "")
	}
	return parts[0], parts[1], parts[2], parts[3]
}

// Prefix returns the PREFIX modes and their symbols, highest rank first
// ("ov" and "@+" by default).
func (s *ISupport) Prefix() (modes, symbols string) {
	v, ok := s.Get("PREFIX")
	if !ok {
		return "ov", "@+"
	}
	if v == "" {
		return "", ""
	}
	if v[0] != '(' {
		return "", ""
	}
	m, sym, ok := strings.Cut(v[1:], ")")
	if !ok || len(m) != len(sym) {
		return "", ""
	}
	return m, sym
}

// ChatHistory returns the CHATHISTORY limit (messages per request) and
// whether the server advertised the token; a limit of 0 means unlimited.
func (s *ISupport) ChatHistory() (int, bool) {
	v, ok := s.Get("CHATHISTORY")
	if !ok {
		return 0, false
	}
	n, _ := strconv.Atoi(v)
	return n, true
}

// MaxPrefixLen returns the longest source (nick!user@host) the server could
// put on a line from a client with this nick, for splitting long messages.
func (s *ISupport) MaxPrefixLen(nick string) int {
	n := len(nick)
	if n < 1 {
		n = s.NickLen()
	}
	// "~" is added to the user name when ident fails.
	return n + 1 + s.UserLen() + 1 + 1 + s.HostLen()
}
