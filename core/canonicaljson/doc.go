// Package canonicaljson holds Matrix's rules for JSON (content/appendices.md
// "Canonical JSON"): Validate checks what a client sends before anything is
// stored, Canonical encodes a JSON text in the canonical form that event
// hashes and signatures are computed over.
//
// Validate refuses, in one pass and before any decoding: text that is not
// JSON or not valid UTF-8 (a Syntax error), and JSON that breaks a rule
// Matrix needs (an Invalid error): lone UTF-16 surrogates in escapes,
// duplicate keys at any depth, integers beyond ±(2^53−1), other numbers beyond
// the range of a double (1e999, which decodes as infinity), nesting deeper than
// MaxDepth, and for ValidateCanonical (event content) any number with a
// fraction or exponent. The spec sets no depth limit; MaxDepth bounds the work
// of every later pass over a request body.
//
// Canonical replaces maunium.net/go/mautrix's crypto/canonicaljson and the
// check in its federation/pdu, which disagree with each other (and the first
// with the spec's grammar) on control characters: the spec escapes U+000B,
// U+000E, U+000F and U+001A–U+001F as \u000b…\u001f in lower case. It
// sorts keys by code point (not by UTF-16 unit, as RFC 8785 does), keeps
// integers of any size as written (Python's json, which Synapse signs with,
// does), writes other numbers (room versions 1–5 only) as Python's repr
// does, and, like Python's json, keeps the last of duplicate keys.
//
// It imports nothing of this module.
package canonicaljson
