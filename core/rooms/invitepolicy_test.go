package rooms

import (
	"testing"

	"maunium.net/go/mautrix/id"
)

// The order of MSC4155's rules, its globs, and how the spec's blocking and
// the ignored users list come before them.
func TestInvitePolicyJudge(t *testing.T) {
	for _, tc := range []struct {
		name                      string
		ignored, permission, rule string
		inviter                   id.UserID
		want                      InviteVerdict
	}{
		{name: "nothing set", inviter: "@a:x.org", want: InviteAllowed},
		{name: "ignored user", ignored: `{"ignored_users":{"@a:x.org":{}}}`, inviter: "@a:x.org", want: InviteIgnored},
		{name: "spec block", permission: `{"default_action":"block"}`, inviter: "@a:x.org", want: InviteBlocked},
		{name: "spec unknown action", permission: `{"default_action":"allow"}`, inviter: "@a:x.org", want: InviteAllowed},
		{name: "ignored before blocked", ignored: `{"ignored_users":{"@a:x.org":{}}}`, permission: `{"default_action":"block"}`,
			inviter: "@a:x.org", want: InviteIgnored},
		{name: "block all servers", rule: `{"blocked_servers":["*"]}`, inviter: "@a:x.org", want: InviteBlocked},
		{name: "allowed user beats blocked server", rule: `{"allowed_users":["@good:bad.org"],"blocked_servers":["bad.org"]}`,
			inviter: "@good:bad.org", want: InviteAllowed},
		{name: "blocked user beats allowed server", rule: `{"blocked_users":["@no:good.org"],"allowed_servers":["good.org"],"blocked_servers":["*"]}`,
			inviter: "@no:good.org", want: InviteBlocked},
		{name: "ignored server", rule: `{"allowed_servers":["good.org"],"ignored_servers":["worse.org"],"blocked_servers":["*"]}`,
			inviter: "@a:worse.org", want: InviteIgnored},
		{name: "server glob without port", rule: `{"blocked_servers":["*.bad.org"]}`, inviter: "@a:h.bad.org:8448", want: InviteBlocked},
		{name: "question mark", rule: `{"blocked_users":["@?:x.org"]}`, inviter: "@ab:x.org", want: InviteAllowed},
		{name: "dots are literal", rule: `{"blocked_servers":["x.org"]}`, inviter: "@a:xzorg", want: InviteAllowed},
		{name: "disabled", rule: `{"enabled":false,"blocked_servers":["*"]}`, inviter: "@a:x.org", want: InviteAllowed},
		{name: "not a list", rule: `{"blocked_servers":"*"}`, inviter: "@a:x.org", want: InviteAllowed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := ParseInvitePolicy(bytesOrNil(tc.ignored), bytesOrNil(tc.permission), bytesOrNil(tc.rule))
			if got := p.Judge(tc.inviter); got != tc.want {
				t.Fatalf("Judge(%s) = %d, want %d", tc.inviter, got, tc.want)
			}
		})
	}
}

func bytesOrNil(s string) []byte {
	if s == "" {
		return nil
	}
	return []byte(s)
}
