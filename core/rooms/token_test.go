package rooms

import (
	"strings"
	"testing"
)

func TestParseToken(t *testing.T) {
	for tok, want := range map[string]int64{
		"s0": 0, "s12": 12, "s-5": -5, "s12_3_4": 13, "s9007199254740990_1": 9007199254740991,
	} {
		if got, err := ParseToken(tok); err != nil || got != want {
			t.Errorf("ParseToken(%q) = %d, %v; want %d", tok, got, err, want)
		}
		if !strings.Contains(tok, "_") {
			if back := Token(want); back != tok {
				t.Errorf("Token(%d) = %q, want %q", want, back, tok)
			}
		}
	}
	// The overflow: s9223372036854775807_… read as the position
	// after it, which wrapped to -9223372036854775808.
	for _, tok := range []string{"", "s", "5", "s9223372036854775807_0", "s9223372036854775807",
		"s5garbage", "s5_garbage", "s5_1x", "s5_", "s+5", "s05", "s-0", "s-5_1", "s1_2_3_4_5_6_7_8", "s 5", "s5\n"} {
		if got, err := ParseToken(tok); err == nil {
			t.Errorf("ParseToken(%q) = %d, want an error", tok, got)
		}
	}
}
