package types

import (
	"strings"
	"unicode/utf8"
)

// ValidText reports whether s is text both storage engines keep alike:
// valid UTF-8 without U+0000. PostgreSQL's text columns hold neither NUL nor
// invalid UTF-8 (and fail the statement), where SQLite stores any bytes, so
// whatever becomes a column of its own (an identifier, a type, a device
// name) must be ValidText. JSON kept as JSON may hold "\u0000": its escape
// is text.
func ValidText[S ~string](s S) bool {
	return strings.IndexByte(string(s), 0) < 0 && utf8.ValidString(string(s))
}

// ErrInvalidText is the answer to text that is not ValidText.
func ErrInvalidText(what string) *Error {
	return InvalidParam("%s must be valid UTF-8 without NUL characters", what)
}

// MaxTxnIDBytes bounds client transaction IDs. The spec sets no limit; 255
// bytes, the limit of Matrix identifiers, keeps the rows of the transaction
// tables within what a PostgreSQL index can hold (a random 4 KB ID failed
// the insert there, while SQLite stored it).
const MaxTxnIDBytes = 255

// CheckTxnID refuses transaction IDs that are too long or not ValidText.
func CheckTxnID(txnID string) error {
	if len(txnID) > MaxTxnIDBytes {
		return InvalidParam("Transaction IDs are at most %d bytes", MaxTxnIDBytes)
	}
	if !ValidText(txnID) {
		return ErrInvalidText("The transaction ID")
	}
	return nil
}
