package types

// MaxPosition bounds the stream positions tokens carry: far beyond any
// stream (presence positions are millisecond timestamps), and small enough
// that a position plus one cannot overflow, nor lose precision in a client
// that reads numbers as doubles.
const MaxPosition = 1<<53 - 1

// ParsePosition reads a stream position as tokens write it: decimal digits
// without sign, leading zeros or anything after them, at most MaxPosition;
// with negative, a leading "-" is allowed (positions of history inserted
// before a room's start are negative).
func ParsePosition(s string, negative bool) (int64, bool) {
	neg := false
	if negative && len(s) > 1 && s[0] == '-' {
		neg, s = true, s[1:]
	}
	if s == "" || len(s) > 16 || (s[0] == '0' && (len(s) > 1 || neg)) {
		return 0, false
	}
	var v int64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + int64(c-'0')
	}
	if v > MaxPosition {
		return 0, false
	}
	if neg {
		v = -v
	}
	return v, true
}
