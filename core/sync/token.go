// Package sync builds /sync answers: it reads what changed for a user between
// two sets of stream positions (a since token and now) from the room service
// and storage, and long-polls on core/stream's notifier until there is
// something to say. It imports core/rooms, core/stream, core/types,
// core/canonicaljson and the storage interfaces.
package sync

import (
	"strconv"
	"strings"

	"github.com/tributary-hs/tributary/core/stream"
	"github.com/tributary-hs/tributary/core/types"
)

// FormatToken renders positions as a sync token: "s" then the positions of
// every stream joined by "_" (the first is the events position, so /messages
// accepts sync tokens too).
func FormatToken(p stream.Positions) string {
	var b strings.Builder
	b.WriteByte('s')
	for i, v := range p {
		if i > 0 {
			b.WriteByte('_')
		}
		b.WriteString(strconv.FormatInt(v, 10))
	}
	return b.String()
}

// ParseToken reads a sync token, strictly: each position as
// types.ParsePosition reads it, nothing else. Missing trailing positions
// are 0, so tokens from before a stream existed stay valid.
func ParseToken(tok string) (stream.Positions, error) {
	var p stream.Positions
	rest, ok := strings.CutPrefix(tok, "s")
	if !ok || rest == "" {
		return p, types.InvalidParam("Invalid sync token")
	}
	parts := strings.Split(rest, "_")
	if len(parts) > len(p) {
		return p, types.InvalidParam("Invalid sync token")
	}
	for i, part := range parts {
		v, ok := types.ParsePosition(part, false)
		if !ok {
			return p, types.InvalidParam("Invalid sync token")
		}
		p[i] = v
	}
	return p, nil
}
