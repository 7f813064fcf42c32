package rooms

import (
	"testing"

	"github.com/tidwall/gjson"
)

// The rules of m.room.server_acl's schema, one case each.
func TestACLAllows(t *testing.T) {
	for _, tc := range []struct {
		name, content, server string
		want                  bool
	}{
		{"allow all", `{"allow":["*"]}`, "evil.com", true},
		{"no allow list denies", `{"deny":[]}`, "good.com", false},
		{"deny wins over allow", `{"allow":["*"],"deny":["evil.com"]}`, "evil.com", false},
		{"port not compared", `{"allow":["*"],"deny":["evil.com"]}`, "evil.com:8448", false},
		{"glob in deny", `{"allow":["*"],"deny":["*.evil.com"]}`, "a.evil.com", false},
		{"glob ? one char", `{"allow":["?.good.com"]}`, "ab.good.com", false},
		{"case-insensitive", `{"allow":["*"],"deny":["EVIL.com"]}`, "evil.COM", false},
		{"IP literal allowed by default", `{"allow":["*"]}`, "127.0.0.1:8448", true},
		{"IP literal denied", `{"allow":["*"],"allow_ip_literals":false}`, "127.0.0.1:8448", false},
		{"IPv6 literal denied", `{"allow":["*"],"allow_ip_literals":false}`, "[::1]:8448", false},
		{"allow_ip_literals not a boolean", `{"allow":["*"],"allow_ip_literals":"no"}`, "10.0.0.1", true},
		{"not listed", `{"allow":["good.com"]}`, "other.com", false},
		{"listed", `{"allow":["good.com"]}`, "good.com:443", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := aclAllows(gjson.Parse(tc.content), tc.server); got != tc.want {
				t.Fatalf("%s for %s: %v, want %v", tc.content, tc.server, got, tc.want)
			}
		})
	}
}
