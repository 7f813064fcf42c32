package canonicaljson

import (
	"bytes"
	"fmt"
	"math"
	"slices"
	"strconv"
	"sync"
	"unicode/utf8"
	"unsafe"
)

// MaxDepth is how deeply Validate lets arrays and objects nest: the body
// {"a":[1]} has depth 2.
const MaxDepth = 100

// MaxInt is the largest magnitude of an integer canonical JSON allows.
const MaxInt = 1<<53 - 1

// Kind tells the two ways a text can fail apart: the spec answers the first
// with M_NOT_JSON, the second with M_BAD_JSON.
type Kind uint8

const (
	// Syntax: the text is not JSON (RFC 8259) in valid UTF-8.
	Syntax Kind = iota + 1
	// Invalid: the text is JSON but breaks one of Matrix's rules.
	Invalid
)

// Error is a text Validate or Canonical refuses.
type Error struct {
	Kind Kind
	// Offset is the byte at which the problem was found.
	Offset int
	Reason string
}

func (e *Error) Error() string { return fmt.Sprintf("%s (at byte %d)", e.Reason, e.Offset) }

// Validate checks a JSON text as the server accepts it from clients (see the
// package comment). Numbers with a fraction or exponent are allowed.
func Validate(data []byte) error {
	return validate(data, false)
}

// ValidateCanonical is Validate for JSON that becomes event content:
// canonical JSON has no fractions or exponents.
func ValidateCanonical(data []byte) error {
	return validate(data, true)
}

func validate(data []byte, intsOnly bool) error {
	b := getBuffers()
	s := scanner{data: data, maxDepth: MaxDepth, strict: true, intsOnly: intsOnly,
		stack: b.stack[:0], keys: b.keys[:0], arena: b.arena[:0]}
	err := s.run()
	b.stack, b.keys, b.arena = s.stack, s.keys, s.arena
	b.put()
	return err
}

// buffers are the working slices of a scan and an emit, kept for the next
// call: every message sent is validated and canonicalised a few times, and
// growing these anew each time was a tenth of the bytes a send into a room
// allocated.
type buffers struct {
	stack   []frame
	keys    []keyRef
	arena   []byte
	nodes   []node
	members []member
	earena  []byte
	scratch []byte
}

var pool = sync.Pool{New: func() any { return new(buffers) }}

// maxPooled bounds, in bytes, the slices of buffers kept: those a big
// text grew are left to the collector.
const maxPooled = 256 << 10

func getBuffers() *buffers { return pool.Get().(*buffers) }

func (b *buffers) put() {
	size := cap(b.stack)*int(unsafe.Sizeof(frame{})) + cap(b.keys)*int(unsafe.Sizeof(keyRef{})) + cap(b.arena) +
		cap(b.nodes)*int(unsafe.Sizeof(node{})) + cap(b.members)*int(unsafe.Sizeof(member{})) + cap(b.earena) + cap(b.scratch)
	if size > maxPooled {
		return
	}
	pool.Put(b)
}

// class sorts bytes inside a JSON string: what may be copied as it is, and
// what needs a closer look.
var class = func() (t [256]byte) {
	for b := range 0x20 {
		t[b] = clsControl
	}
	t['"'] = clsQuote
	t['\\'] = clsEscape
	for b := 0x80; b < 0x100; b++ {
		t[b] = clsMultibyte
	}
	return t
}()

const (
	clsPlain = iota
	clsControl
	clsQuote
	clsEscape
	clsMultibyte
)

// A node is one value of a text, recorded for Canonical in document order;
// an object's members are a key node followed by a value node.
type node struct {
	kind byte // '{', '[', '"', '0' (number) or 'l' (true, false, null)
	// esc: a string with escapes; int: a number without fraction or exponent.
	esc, int bool
	// start is the value's first byte. end is, for a scalar, the offset after
	// its last byte and, for a container, the index of the node after it.
	start, end int32
}

// keyRef is a decoded object key: in the input (no escapes) or in the arena.
type keyRef struct {
	off, n  int32
	inArena bool
}

type frame struct {
	kind     byte  // '{' or '['
	keysBase int32 // where this object's keys start in scanner.keys
	node     int32 // the container's node (record mode)
}

// scanner checks a text in one pass without recursion. In strict mode it
// applies the rules of Validate; in record mode (for Canonical) it only
// checks that the text is well-formed JSON in UTF-8 without lone surrogates,
// and records its nodes.
type scanner struct {
	data     []byte
	i        int
	maxDepth int  // 0: unlimited
	strict   bool // refuse duplicate keys and integers beyond ±MaxInt
	intsOnly bool // refuse fractions and exponents
	record   bool

	stack []frame
	keys  []keyRef // strict: the keys of the open objects
	arena []byte   // strict: keys that had escapes, decoded
	nodes []node   // record
}

func (s *scanner) fail(kind Kind, at int, format string, args ...any) *Error {
	return &Error{Kind: kind, Offset: at, Reason: fmt.Sprintf(format, args...)}
}

func (s *scanner) syntax(format string, args ...any) *Error {
	if s.i >= len(s.data) {
		return s.fail(Syntax, s.i, "unexpected end of JSON")
	}
	return s.fail(Syntax, s.i, format, args...)
}

func (s *scanner) skipSpace() {
	for s.i < len(s.data) {
		switch s.data[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// run scans the whole text: one value with optional white space around it.
func (s *scanner) run() error {
	if len(s.data) > math.MaxInt32 {
		return s.fail(Invalid, 0, "JSON text larger than 2 GiB")
	}
	if s.stack == nil {
		s.stack = make([]frame, 0, 16)
	}
	if s.strict && s.keys == nil {
		s.keys = make([]keyRef, 0, 32)
	}
	for {
		// A value is expected.
		s.skipSpace()
		if s.i >= len(s.data) {
			return s.syntax("")
		}
		switch c := s.data[s.i]; {
		case c == '{' || c == '[':
			if s.maxDepth > 0 && len(s.stack) == s.maxDepth {
				return s.fail(Invalid, s.i, "JSON nested deeper than %d levels", s.maxDepth)
			}
			f := frame{kind: c, keysBase: int32(len(s.keys)), node: int32(len(s.nodes))}
			s.push(c, false, false, s.i, 0)
			s.stack = append(s.stack, f)
			s.i++
			s.skipSpace()
			if s.i < len(s.data) && s.data[s.i] == c+2 { // '{'+2 is '}', '['+2 is ']'
				s.i++
				s.close()
				break
			}
			if c == '{' {
				if err := s.key(); err != nil {
					return err
				}
			}
			continue
		case c == '"':
			start := s.i
			esc, err := s.str()
			if err != nil {
				return err
			}
			s.push('"', esc, false, start, s.i)
		case c == '-' || (c >= '0' && c <= '9'):
			start := s.i
			isInt, err := s.number()
			if err != nil {
				return err
			}
			s.push('0', false, isInt, start, s.i)
		case c == 't' || c == 'f' || c == 'n':
			start := s.i
			if err := s.literal(); err != nil {
				return err
			}
			s.push('l', false, false, start, s.i)
		default:
			return s.syntax("invalid character %q looking for a value", c)
		}
		// After a value: a comma, the end of containers, or the end of the text.
		for {
			s.skipSpace()
			if len(s.stack) == 0 {
				if s.i != len(s.data) {
					return s.syntax("invalid character %q after the top-level value", s.data[s.i])
				}
				return nil
			}
			if s.i >= len(s.data) {
				return s.syntax("")
			}
			top := s.stack[len(s.stack)-1].kind
			c := s.data[s.i]
			if c == top+2 {
				s.i++
				if err := s.close(); err != nil {
					return err
				}
				continue
			}
			if c != ',' {
				return s.syntax("invalid character %q after a value in an %s", c, kindName(top))
			}
			s.i++
			if top == '{' {
				s.skipSpace()
				if err := s.key(); err != nil {
					return err
				}
			}
			break
		}
	}
}

func kindName(c byte) string {
	if c == '{' {
		return "object"
	}
	return "array"
}

// push records a node.
func (s *scanner) push(kind byte, esc, isInt bool, start, end int) {
	if s.record {
		s.nodes = append(s.nodes, node{kind: kind, esc: esc, int: isInt, start: int32(start), end: int32(end)})
	}
}

// close ends the innermost container: an object's keys must differ.
func (s *scanner) close() *Error {
	f := s.stack[len(s.stack)-1]
	s.stack = s.stack[:len(s.stack)-1]
	if s.record {
		s.nodes[f.node].end = int32(len(s.nodes))
	}
	if f.kind != '{' || !s.strict {
		return nil
	}
	keys := s.keys[f.keysBase:]
	s.keys = s.keys[:f.keysBase]
	if dup, ok := s.duplicate(keys); ok {
		return s.fail(Invalid, s.i-1, "duplicate key %q in an object", dup)
	}
	if len(s.keys) == 0 {
		s.arena = s.arena[:0] // no open object's key is in it
	}
	return nil
}

func (s *scanner) keyBytes(k keyRef) []byte {
	if k.inArena {
		return s.arena[k.off : k.off+k.n]
	}
	return s.data[k.off : k.off+k.n]
}

// duplicate finds a key that appears twice: pairwise for small objects,
// else by sorting.
func (s *scanner) duplicate(keys []keyRef) (string, bool) {
	if len(keys) <= 12 {
		for a := range keys {
			for b := a + 1; b < len(keys); b++ {
				if bytes.Equal(s.keyBytes(keys[a]), s.keyBytes(keys[b])) {
					return string(s.keyBytes(keys[a])), true
				}
			}
		}
		return "", false
	}
	slices.SortFunc(keys, func(a, b keyRef) int { return bytes.Compare(s.keyBytes(a), s.keyBytes(b)) })
	for a := 1; a < len(keys); a++ {
		if bytes.Equal(s.keyBytes(keys[a-1]), s.keyBytes(keys[a])) {
			return string(s.keyBytes(keys[a])), true
		}
	}
	return "", false
}

// key scans an object key and the colon after it.
func (s *scanner) key() *Error {
	if s.i >= len(s.data) || s.data[s.i] != '"' {
		return s.syntax("object key is not a string")
	}
	start := s.i
	esc, err := s.str()
	if err != nil {
		return err
	}
	s.push('"', esc, false, start, s.i)
	if s.strict {
		if !esc {
			s.keys = append(s.keys, keyRef{off: int32(start + 1), n: int32(s.i - start - 2)})
		} else {
			off := len(s.arena)
			s.arena = appendUnquoted(s.arena, s.data[start:s.i])
			s.keys = append(s.keys, keyRef{off: int32(off), n: int32(len(s.arena) - off), inArena: true})
		}
	}
	s.skipSpace()
	if s.i >= len(s.data) || s.data[s.i] != ':' {
		return s.syntax("missing ':' after an object key")
	}
	s.i++
	return nil
}

// str scans a string starting at its opening quote and reports whether it
// has escapes.
func (s *scanner) str() (bool, *Error) {
	data := s.data
	i := s.i + 1
	esc := false
	for {
		// The common case: plain ASCII.
		for i < len(data) && class[data[i]] == clsPlain {
			i++
		}
		if i >= len(data) {
			s.i = i
			return false, s.syntax("")
		}
		switch class[data[i]] {
		case clsQuote:
			s.i = i + 1
			return esc, nil
		case clsControl:
			s.i = i
			return false, s.syntax("control character U+%04X in a string must be escaped", data[i])
		case clsMultibyte:
			r, n := utf8.DecodeRune(data[i:])
			if r == utf8.RuneError && n <= 1 {
				s.i = i
				return false, s.fail(Syntax, i, "invalid UTF-8")
			}
			i += n
		case clsEscape:
			esc = true
			if i+1 >= len(data) {
				s.i = i + 1
				return false, s.syntax("")
			}
			switch data[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				r, ok := hex4(data, i+2)
				if !ok {
					s.i = i
					return false, s.syntax("invalid \\u escape")
				}
				switch {
				case r >= 0xDC00 && r < 0xE000:
					return false, s.fail(Invalid, i, "lone UTF-16 surrogate \\u%04x", r)
				case r >= 0xD800 && r < 0xDC00:
					lo, ok := rune(0), false
					if i+8 <= len(data) && data[i+6] == '\\' && data[i+7] == 'u' {
						lo, ok = hex4(data, i+8)
					}
					if !ok || lo < 0xDC00 || lo >= 0xE000 {
						return false, s.fail(Invalid, i, "lone UTF-16 surrogate \\u%04x", r)
					}
					i += 12
				default:
					i += 6
				}
			default:
				s.i = i
				return false, s.syntax("invalid escape \\%c", data[i+1])
			}
		}
	}
}

// hex4 reads the four hex digits of a \u escape at data[i:].
func hex4(data []byte, i int) (rune, bool) {
	if i+4 > len(data) {
		return 0, false
	}
	var r rune
	for _, c := range data[i : i+4] {
		switch {
		case c >= '0' && c <= '9':
			r = r<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	return r, true
}

// number scans a number and reports whether it is an integer (no fraction
// or exponent).
func (s *scanner) number() (bool, *Error) {
	data := s.data
	start := s.i
	i := s.i
	if data[i] == '-' {
		i++
	}
	digits := i
	switch {
	case i < len(data) && data[i] == '0':
		i++
	case i < len(data) && data[i] >= '1' && data[i] <= '9':
		for i < len(data) && data[i] >= '0' && data[i] <= '9' {
			i++
		}
	default:
		s.i = i
		return false, s.syntax("invalid number")
	}
	intEnd := i
	isInt := true
	if i < len(data) && data[i] == '.' {
		isInt = false
		i++
		if i >= len(data) || data[i] < '0' || data[i] > '9' {
			s.i = i
			return false, s.syntax("invalid number: no digit after the decimal point")
		}
		for i < len(data) && data[i] >= '0' && data[i] <= '9' {
			i++
		}
	}
	if i < len(data) && (data[i] == 'e' || data[i] == 'E') {
		isInt = false
		i++
		if i < len(data) && (data[i] == '+' || data[i] == '-') {
			i++
		}
		if i >= len(data) || data[i] < '0' || data[i] > '9' {
			s.i = i
			return false, s.syntax("invalid number: no digit in the exponent")
		}
		for i < len(data) && data[i] >= '0' && data[i] <= '9' {
			i++
		}
	}
	s.i = i
	if !isInt && s.intsOnly {
		return false, s.fail(Invalid, start, "number %s is not an integer: canonical JSON has no fractions or exponents", data[start:i])
	}
	if isInt && s.strict && !inRange(data[digits:intEnd]) {
		return false, s.fail(Invalid, start, "integer %s is beyond ±(2^53-1)", data[start:i])
	}
	if !isInt && s.strict && !finite(data[start:i]) {
		return false, s.fail(Invalid, start, "number %s is beyond the range of a double", data[start:i])
	}
	return isInt, nil
}

// inRange reports whether the digits of an integer are at most MaxInt.
func inRange(digits []byte) bool {
	const maxDigits = 16 // MaxInt is 9007199254740991
	if len(digits) < maxDigits {
		return true
	}
	if len(digits) > maxDigits {
		return false
	}
	var n uint64
	for _, c := range digits {
		n = n*10 + uint64(c-'0')
	}
	return n <= MaxInt
}

// finite reports whether a number with a fraction or exponent is within
// the range of an IEEE 754 double: 1e999 would be read as infinity, which
// JSON cannot write back (a client would get Infinity, or a 500 from a
// server that re-encodes it). Underflow (1e-999) reads as 0 and is fine.
func finite(num []byte) bool {
	_, err := strconv.ParseFloat(string(num), 64)
	return err == nil
}

// literal scans true, false or null.
func (s *scanner) literal() *Error {
	for _, lit := range [...]string{"true", "false", "null"} {
		if end := s.i + len(lit); end <= len(s.data) && string(s.data[s.i:end]) == lit {
			s.i += len(lit)
			return nil
		}
	}
	return s.syntax("invalid literal")
}

// appendUnquoted appends the value of a scanned JSON string (quotes
// included, escapes valid, surrogates paired) to dst.
func appendUnquoted(dst, raw []byte) []byte {
	raw = raw[1 : len(raw)-1]
	for i := 0; i < len(raw); {
		j := bytes.IndexByte(raw[i:], '\\')
		if j < 0 {
			return append(dst, raw[i:]...)
		}
		dst = append(dst, raw[i:i+j]...)
		i += j
		switch c := raw[i+1]; c {
		case 'b':
			dst = append(dst, '\b')
		case 'f':
			dst = append(dst, '\f')
		case 'n':
			dst = append(dst, '\n')
		case 'r':
			dst = append(dst, '\r')
		case 't':
			dst = append(dst, '\t')
		case 'u':
			r, _ := hex4(raw, i+2)
			if r >= 0xD800 && r < 0xDC00 {
				lo, _ := hex4(raw, i+8)
				r = 0x10000 + (r-0xD800)<<10 + (lo - 0xDC00)
				i += 6
			}
			dst = utf8.AppendRune(dst, r)
			i += 4
		default: // '"', '\\', '/'
			dst = append(dst, c)
		}
		i += 2
	}
	return dst
}
