package canonicaljson

import (
	"bytes"
	"math"
	"slices"
	"strconv"
)

// Canonical returns the canonical JSON of a JSON text: no insignificant
// white space, object keys sorted by code point, strings with only the
// escapes the spec's grammar has (\" \\ \b \t \n \f \r and \u00xx in lower
// case for the other control characters), everything else as UTF-8.
//
// It refuses text that is not JSON in valid UTF-8, lone surrogates (which no
// UTF-8 can hold) and numbers too large for a float64; it does not apply
// Validate's rules, so that events of room versions 1–5 from other servers,
// whose numbers and depth no rule bounded, are hashed as their senders did.
// Its work grows with n·log n of the text's size, whatever its depth.
func Canonical(data []byte) ([]byte, error) {
	return AppendCanonical(make([]byte, 0, len(data)), data)
}

// AppendCanonical appends the canonical JSON of data to dst.
func AppendCanonical(dst, data []byte) ([]byte, error) {
	b := getBuffers()
	defer b.put()
	s := scanner{data: data, record: true, stack: b.stack[:0], nodes: slices.Grow(b.nodes[:0], len(data)/8+1)}
	err := s.run()
	b.stack, b.nodes = s.stack, s.nodes
	if err != nil {
		return nil, err
	}
	e := emitter{data: data, nodes: s.nodes, out: dst, members: b.members[:0], arena: b.earena[:0], scratch: b.scratch[:0]}
	err = e.value(0)
	b.members, b.earena, b.scratch = e.members, e.arena, e.scratch
	if err != nil {
		return nil, err
	}
	return e.out, nil
}

// member is an object member being written: its decoded key is
// data[off:off+n], or arena[off:off+n] when the key had escapes.
type member struct {
	off, n  int32
	inArena bool
	idx     int32 // the key's node; the value's is idx+1
}

type emitter struct {
	data    []byte
	nodes   []node
	out     []byte
	members []member // the members of the objects being written, innermost last
	arena   []byte   // decoded keys that had escapes
	scratch []byte
}

func (e *emitter) key(m member) []byte {
	if m.inArena {
		return e.arena[m.off : m.off+m.n]
	}
	return e.data[m.off : m.off+m.n]
}

// next is the index of the node after the value at i.
func (e *emitter) next(i int32) int32 {
	if k := e.nodes[i].kind; k == '{' || k == '[' {
		return e.nodes[i].end
	}
	return i + 1
}

func (e *emitter) value(i int32) error {
	n := e.nodes[i]
	switch n.kind {
	case '{':
		return e.object(i)
	case '[':
		e.out = append(e.out, '[')
		for c := i + 1; c < n.end; c = e.next(c) {
			if c > i+1 {
				e.out = append(e.out, ',')
			}
			if err := e.value(c); err != nil {
				return err
			}
		}
		e.out = append(e.out, ']')
	case '"':
		e.str(n)
	case '0':
		return e.number(n)
	default:
		e.out = append(e.out, e.data[n.start:n.end]...)
	}
	return nil
}

func (e *emitter) object(i int32) error {
	base := len(e.members)
	sorted := true
	for c := i + 1; c < e.nodes[i].end; c = e.next(c + 1) {
		k := e.nodes[c]
		m := member{off: k.start + 1, n: k.end - k.start - 2, idx: c}
		if k.esc {
			off := len(e.arena)
			e.arena = appendUnquoted(e.arena, e.data[k.start:k.end])
			m = member{off: int32(off), n: int32(len(e.arena) - off), inArena: true, idx: c}
		}
		if len(e.members) > base && bytes.Compare(e.key(e.members[len(e.members)-1]), e.key(m)) >= 0 {
			sorted = false
		}
		e.members = append(e.members, m)
	}
	ms := e.members[base:]
	if !sorted {
		// Stable, so that of equal keys the last one written stays last.
		slices.SortStableFunc(ms, func(a, b member) int { return bytes.Compare(e.key(a), e.key(b)) })
	}
	e.out = append(e.out, '{')
	first := true
	for j, m := range ms {
		if j+1 < len(ms) && bytes.Equal(e.key(m), e.key(ms[j+1])) {
			continue // a duplicate key: the last one wins, as in Python's json
		}
		if !first {
			e.out = append(e.out, ',')
		}
		first = false
		e.str(e.nodes[m.idx])
		e.out = append(e.out, ':')
		if err := e.value(m.idx + 1); err != nil {
			return err
		}
	}
	e.out = append(e.out, '}')
	e.members = e.members[:base]
	return nil
}

// str writes a string node canonically. Without escapes the input already
// is: the scanner refused raw control characters.
func (e *emitter) str(n node) {
	raw := e.data[n.start:n.end]
	if !n.esc {
		e.out = append(e.out, raw...)
		return
	}
	e.scratch = appendUnquoted(e.scratch[:0], raw)
	e.out = AppendString(e.out, e.scratch)
}

// AppendString appends s (valid UTF-8) to dst as a canonical JSON string.
func AppendString(dst, s []byte) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	start := 0
	for i, c := range s {
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		dst = append(dst, s[start:i]...)
		start = i + 1
		switch c {
		case '"', '\\':
			dst = append(dst, '\\', c)
		case '\b':
			dst = append(dst, '\\', 'b')
		case '\t':
			dst = append(dst, '\\', 't')
		case '\n':
			dst = append(dst, '\\', 'n')
		case '\f':
			dst = append(dst, '\\', 'f')
		case '\r':
			dst = append(dst, '\\', 'r')
		default:
			dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xF])
		}
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

func (e *emitter) number(n node) error {
	raw := e.data[n.start:n.end]
	if n.int {
		if string(raw) == "-0" {
			raw = raw[1:] // the spec: "negative zero -0 MUST NOT appear"
		}
		e.out = append(e.out, raw...)
		return nil
	}
	out, ok := appendPythonFloat(e.out, raw)
	if !ok {
		return &Error{Kind: Invalid, Offset: int(n.start), Reason: "number " + string(raw) + " is too large"}
	}
	e.out = out
	return nil
}

// appendPythonFloat writes a JSON number with a fraction or exponent as
// Python's repr writes the float it denotes, which is what Synapse hashes
// and signs: the shortest digits that read back the same, positional for
// decimal exponents from -4 to 15 (always with a fraction), else in
// scientific notation with a signed exponent of at least two digits.
func appendPythonFloat(dst, raw []byte) ([]byte, bool) {
	f, _ := strconv.ParseFloat(string(raw), 64) // the scanner checked the syntax
	if math.IsInf(f, 0) {
		return dst, false // Python reads inf, which its json cannot write
	}
	if f == 0 {
		if math.Signbit(f) {
			return append(dst, "-0.0"...), true
		}
		return append(dst, "0.0"...), true
	}
	// d.ddde±x, the shortest form that rounds back to f.
	sci := strconv.AppendFloat(nil, f, 'e', -1, 64)
	if sci[0] == '-' {
		dst = append(dst, '-')
		sci = sci[1:]
	}
	mant, expPart, _ := bytes.Cut(sci, []byte("e"))
	exp, _ := strconv.Atoi(string(expPart))
	digits := append([]byte{mant[0]}, bytes.TrimPrefix(mant[1:], []byte("."))...)
	if exp >= -4 && exp < 16 {
		if exp < 0 {
			dst = append(dst, '0', '.')
			for range -exp - 1 {
				dst = append(dst, '0')
			}
			return append(dst, digits...), true
		}
		whole := exp + 1
		for len(digits) < whole {
			digits = append(digits, '0')
		}
		dst = append(dst, digits[:whole]...)
		dst = append(dst, '.')
		if frac := digits[whole:]; len(frac) > 0 {
			return append(dst, frac...), true
		}
		return append(dst, '0'), true
	}
	dst = append(dst, digits[0])
	if len(digits) > 1 {
		dst = append(dst, '.')
		dst = append(dst, digits[1:]...)
	}
	dst = append(dst, 'e')
	if exp < 0 {
		dst = append(dst, '-')
		exp = -exp
	} else {
		dst = append(dst, '+')
	}
	if exp < 10 {
		dst = append(dst, '0')
	}
	return strconv.AppendInt(dst, int64(exp), 10), true
}
