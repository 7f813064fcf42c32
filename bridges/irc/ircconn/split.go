package ircconn

import (
	"strings"
	"unicode/utf8"
)

// TextBudget returns how many bytes of text fit in one line
// ":SOURCE COMMAND TARGET :TEXT\r\n" as the server relays it to others, when
// the line limit is lineLen (ISupport.LineLen) and the source the server will
// add is at most sourceLen bytes (ISupport.MaxPrefixLen, or the length of the
// client's own nick!user@host when it is known). Tags do not count: they have
// their own limit.
func TextBudget(lineLen, sourceLen int, command, target string) int {
	// ":" source " " command " " target " :" text "\r\n"
	return lineLen - (1 + sourceLen + 1 + len(command) + 1 + len(target) + 2 + 2)
}

// SplitText cuts text into lines of at most max bytes each. Newlines always
// end a line (and are dropped, as are empty lines: IRC cannot send them); a
// longer line is cut on a UTF-8 boundary, preferably just after a space
// (the space stays at the end of the first part, so concatenating the parts
// of one line gives it back), and never inside an mIRC colour code. A max
// smaller than one character still makes progress, one character a line.
func SplitText(text string, max int) []string {
	var out []string
	for _, line := range strings.Split(strings.ReplaceAll(text, "\r\n", "\n"), "\n") {
		line = strings.TrimSuffix(line, "\r")
		for line != "" {
			n := splitPoint(line, max)
			out = append(out, line[:n])
			line = line[n:]
		}
	}
	return out
}

// splitPoint returns how many bytes of s go on the current line.
func splitPoint(s string, max int) int {
	if len(s) <= max {
		return len(s)
	}
	if max < 1 {
		max = 1
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	cut = avoidColourCode(s, cut)
	if cut == 0 {
		// Not even one character or colour code fits: send it alone.
		if s[0] == '\x03' || s[0] == '\x04' {
			return colourCodeLen(s)
		}
		_, size := utf8.DecodeRuneInString(s)
		return size
	}
	// Prefer the last space, unless that leaves the line less than half full.
	if sp := strings.LastIndexByte(s[:cut], ' '); sp >= 0 && sp+1 >= cut/2 {
		return sp + 1
	}
	return cut
}

// avoidColourCode moves cut back to the start of a colour code (\x03NN,MM or
// \x04RRGGBB,RRGGBB) that would otherwise be cut in two, so the second part
// does not begin with what looks like plain digits.
func avoidColourCode(s string, cut int) int {
	from := max(cut-14, 0)
	for i := cut - 1; i >= from; i-- {
		if s[i] != '\x03' && s[i] != '\x04' {
			continue
		}
		if i+colourCodeLen(s[i:]) > cut {
			return i
		}
		return cut
	}
	return cut
}

// colourCodeLen returns the length of the colour code s starts with (s[0] is
// \x03 or \x04).
func colourCodeLen(s string) int {
	if s[0] == '\x03' {
		n := 1 + digits(s[1:], 2)
		if n > 1 && n < len(s) && s[n] == ',' {
			if d := digits(s[n+1:], 2); d > 0 {
				n += 1 + d
			}
		}
		return n
	}
	n := 1
	if hexRun(s[1:]) >= 6 {
		n += 6
		if n < len(s) && s[n] == ',' && hexRun(s[n+1:]) >= 6 {
			n += 7
		}
	}
	return n
}

func digits(s string, limit int) int {
	n := 0
	for n < len(s) && n < limit && isDigit(s[n]) {
		n++
	}
	return n
}

func hexRun(s string) int {
	n := 0
	for n < len(s) && n < 6 && (isDigit(s[n]) || (s[n] >= 'a' && s[n] <= 'f') || (s[n] >= 'A' && s[n] <= 'F')) {
		n++
	}
	return n
}
