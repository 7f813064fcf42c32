package rooms

import (
	"strings"
	"testing"

	"github.com/tributary-hs/tributary/core/types"
)

// FuzzParsePaginationToken: ParseToken never panics and answers with a
// Matrix error; a token it accepts is "s<pos>" as Token writes it (read as
// pos) or a sync token (read as its events position plus one), within
// ±MaxPosition+1.
func FuzzParsePaginationToken(f *testing.F) {
	for _, s := range []string{"s0", "s-5", "s12_3_4", "s9223372036854775807_0", "s5_garbage", "s+5", "s05", "s-0"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, tok string) {
		pos, err := ParseToken(tok)
		if err != nil {
			if _, ok := types.AsError(err); !ok {
				t.Fatalf("ParseToken(%q): %v is not a Matrix error", tok, err)
			}
			return
		}
		if pos > types.MaxPosition+1 || pos < -types.MaxPosition {
			t.Fatalf("ParseToken(%q) = %d, out of range", tok, pos)
		}
		first, _, synced := strings.Cut(tok, "_")
		switch {
		case !synced && Token(pos) != tok:
			t.Fatalf("ParseToken(%q) = %d, which Token writes %q", tok, pos, Token(pos))
		case synced && Token(pos-1) != first:
			t.Fatalf("sync token %q read as %d", tok, pos)
		}
	})
}
