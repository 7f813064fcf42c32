package ircconn

import "strings"

// CaseMapping folds nicks and channel names for comparison, as the server's
// CASEMAPPING says.
type CaseMapping int

// The case mappings servers advertise.
const (
	// CaseMappingRFC1459 also folds []\~ onto {}|^ (the default).
	CaseMappingRFC1459 CaseMapping = iota
	// CaseMappingStrictRFC1459 folds []\ onto {}| but not ~ onto ^.
	CaseMappingStrictRFC1459
	// CaseMappingASCII folds only A-Z.
	CaseMappingASCII
)

// ParseCaseMapping maps a CASEMAPPING value to a CaseMapping; unknown values
// (rfc7613 and others) fall back to rfc1459, which folds a superset of ASCII.
func ParseCaseMapping(v string) CaseMapping {
	switch strings.ToLower(v) {
	case "ascii":
		return CaseMappingASCII
	case "strict-rfc1459":
		return CaseMappingStrictRFC1459
	default:
		return CaseMappingRFC1459
	}
}

// String returns the CASEMAPPING name.
func (c CaseMapping) String() string {
	switch c {
	case CaseMappingASCII:
		return "ascii"
	case CaseMappingStrictRFC1459:
		return "strict-rfc1459"
	default:
		return "rfc1459"
	}
}

// Fold returns s in its canonical lower case.
func (c CaseMapping) Fold(s string) string {
	var b []byte
	for i := 0; i < len(s); i++ {
		f := c.foldByte(s[i])
		if f != s[i] && b == nil {
			b = []byte(s)
		}
		if b != nil {
			b[i] = f
		}
	}
	if b == nil {
		return s
	}
	return string(b)
}

func (c CaseMapping) foldByte(ch byte) byte {
	switch {
	case ch >= 'A' && ch <= 'Z':
		return ch + 'a' - 'A'
	case c == CaseMappingASCII:
		return ch
	case ch == '[':
		return '{'
	case ch == ']':
		return '}'
	case ch == '\\':
		return '|'
	case ch == '~' && c == CaseMappingRFC1459:
		return '^'
	}
	return ch
}

// Equal reports whether a and b are the same name under this mapping.
func (c CaseMapping) Equal(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		if c.foldByte(a[i]) != c.foldByte(b[i]) {
			return false
		}
	}
	return true
}
