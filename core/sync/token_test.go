package sync

import (
	"testing"

	"github.com/tributary-hs/tributary/core/stream"
)

func TestTokens(t *testing.T) {
	p := stream.Positions{12, 3, 4, 1795000000000, 7, 0, 9}
	tok := FormatToken(p)
	if tok != "s12_3_4_1795000000000_7_0_9" {
		t.Fatalf("token %q", tok)
	}
	back, err := ParseToken(tok)
	if err != nil || back != p {
		t.Fatalf("round trip: %v %v", back, err)
	}
	short, err := ParseToken("s5_6")
	if err != nil || short[stream.Events] != 5 || short[stream.AccountData] != 6 || short[stream.Presence] != 0 {
		t.Fatalf("short token: %v %v", short, err)
	}
	for _, bad := range []string{"", "s", "12", "s1_x", "s-1", "s1_2_3_4_5_6_7_8", "s+1", "s01", "s1_", "s1__2", "s1_2x",
		"s1 ", "s9223372036854775807", "s9223372036854775808", "s9007199254740992", "s1_9007199254740992", "S1"} {
		if _, err := ParseToken(bad); err == nil {
			t.Errorf("ParseToken(%q) accepted", bad)
		}
	}
}
