package rooms

import (
	"context"
	"errors"
	"net/http"
	"regexp"
	"strings"

	"maunium.net/go/mautrix/id"

	"github.com/tidwall/gjson"

	"github.com/tributary-hs/tributary/core/types"
	"github.com/tributary-hs/tributary/storage"
)

// The account data that decides who may invite a user.
const (
	// IgnoredUserListType hides everything of the users it lists, their
	// invites included (client-server API, "Ignoring users").
	IgnoredUserListType = "m.ignored_user_list"
	// InvitePermissionType is the spec's invite blocking (v1.18, MSC4380):
	// "default_action": "block" refuses every invite.
	InvitePermissionType = "m.invite_permission_config"
	// InviteFilterType is MSC4155's invite filtering: globs of users and
	// servers to allow, ignore or block.
	InviteFilterType = "org.matrix.msc4155.invite_permission_config"
)

// Error codes of a refused invite: the spec's (v1.18) and MSC4155's
// unstable one, which its implementations answer until it is merged.
const (
	codeInviteBlocked        = "M_INVITE_BLOCKED"
	codeInviteBlockedMSC4155 = "ORG.MATRIX.MSC4155.M_INVITE_BLOCKED"
)

// InviteVerdict is what an invitee's settings say of an invite.
type InviteVerdict int

const (
	// InviteAllowed: the invite is made and shown.
	InviteAllowed InviteVerdict = iota
	// InviteIgnored: the invite is made, as if accepted, but never shown to
	// the invitee's clients (nor counted for notifications).
	InviteIgnored
	// InviteBlocked: the invite is refused (403 M_INVITE_BLOCKED) and, if it
	// exists anyway (made before the setting, or over federation), hidden.
	InviteBlocked
)

// InvitePolicy is a user's invite settings, read from their account data.
type InvitePolicy struct {
	ignored  map[id.UserID]bool
	blockAll bool
	// filter is MSC4155's configuration; nil when absent or disabled.
	filter *inviteFilter
}

type inviteFilter struct {
	allowedUsers, ignoredUsers, blockedUsers       []*regexp.Regexp
	allowedServers, ignoredServers, blockedServers []*regexp.Regexp
}

// ParseInvitePolicy reads the three account data contents (nil for those
// the user has not set).
func ParseInvitePolicy(ignoredList, permission, filter []byte) *InvitePolicy {
	p := &InvitePolicy{ignored: map[id.UserID]bool{}}
	gjson.GetBytes(ignoredList, "ignored_users").ForEach(func(k, _ gjson.Result) bool {
		p.ignored[id.UserID(k.Str)] = true
		return true
	})
	// "A missing, invalid or unsupported value means that the user wants
	// to receive invites as normal."
	p.blockAll = gjson.GetBytes(permission, "default_action").Str == "block"
	if f := gjson.ParseBytes(filter); f.IsObject() && f.Get("enabled").Type != gjson.False {
		globs := func(key string) []*regexp.Regexp {
			var out []*regexp.Regexp
			list := f.Get(key)
			if !list.IsArray() {
				return nil // "optional arrays": anything else is as if missing
			}
			for _, g := range list.Array() {
				if g.Type == gjson.String {
					out = append(out, compileGlob(g.Str))
				}
			}
			return out
		}
		p.filter = &inviteFilter{
			allowedUsers: globs("allowed_users"), ignoredUsers: globs("ignored_users"), blockedUsers: globs("blocked_users"),
			allowedServers: globs("allowed_servers"), ignoredServers: globs("ignored_servers"),
			blockedServers: globs("blocked_servers"),
		}
	}
	return p
}

// compileGlob turns a glob of the spec's appendix (* any run, ? one
// character) into an anchored regular expression.
func compileGlob(g string) *regexp.Regexp {
	var b strings.Builder
	b.WriteString("^")
	for _, r := range g {
		switch r {
		case '*':
			b.WriteString(".*")
		case '?':
			b.WriteString(".")
		default:
			b.WriteString(regexp.QuoteMeta(string(r)))
		}
	}
	b.WriteString("$")
	return regexp.MustCompile(b.String()) // quoted: always compiles
}

func anyMatch(globs []*regexp.Regexp, s string) bool {
	for _, g := range globs {
		if g.MatchString(s) {
			return true
		}
	}
	return false
}

// Judge decides an invite from inviter: first the ignored users, then
// the spec's blocking of every invite, then MSC4155's rules in its order
// (users before servers; allow, then ignore, then block).
func (p *InvitePolicy) Judge(inviter id.UserID) InviteVerdict {
	if p == nil {
		return InviteAllowed
	}
	if p.ignored[inviter] {
		return InviteIgnored
	}
	if p.blockAll {
		return InviteBlocked
	}
	f := p.filter
	if f == nil {
		return InviteAllowed
	}
	user := inviter.String()
	// Server globs match the server name without its port, as server ACLs do.
	server := inviter.Homeserver()
	if strings.HasPrefix(server, "[") { // an IPv6 literal: the port follows the bracket
		if i := strings.Index(server, "]"); i > 0 {
			server = server[:i+1]
		}
	} else if h, _, ok := strings.Cut(server, ":"); ok {
		server = h
	}
	switch {
	case anyMatch(f.allowedUsers, user):
		return InviteAllowed
	case anyMatch(f.ignoredUsers, user):
		return InviteIgnored
	case anyMatch(f.blockedUsers, user):
		return InviteBlocked
	case anyMatch(f.allowedServers, server):
		return InviteAllowed
	case anyMatch(f.ignoredServers, server):
		return InviteIgnored
	case anyMatch(f.blockedServers, server):
		return InviteBlocked
	}
	return InviteAllowed
}

// blockedError is the answer to an inviter whose invite is refused: the
// spec's code when the spec's setting refused it, MSC4155's otherwise.
func (p *InvitePolicy) blockedError(invitee id.UserID) error {
	code := codeInviteBlockedMSC4155
	if p.blockAll {
		code = codeInviteBlocked
	}
	return types.NewError(http.StatusForbidden, code, "%s does not accept invites from you", invitee)
}

// AccountDataGetter reads one account data entry (storage.AccountData's).
type AccountDataGetter interface {
	GetAccountData(ctx context.Context, userID id.UserID, roomID id.RoomID, dataType string) (*storage.AccountDataEntry, error)
}

// LoadInvitePolicy reads a user's invite settings.
func LoadInvitePolicy(ctx context.Context, store AccountDataGetter, user id.UserID) (*InvitePolicy, error) {
	var contents [3][]byte
	for i, t := range []string{IgnoredUserListType, InvitePermissionType, InviteFilterType} {
		e, err := store.GetAccountData(ctx, user, "", t)
		if errors.Is(err, storage.ErrNotFound) {
			continue
		} else if err != nil {
			return nil, err
		}
		contents[i] = e.Content
	}
	return ParseInvitePolicy(contents[0], contents[1], contents[2]), nil
}

// checkInvite refuses an invite from inviter to a local invitee who blocks
// it. Invites to other servers' users are theirs to refuse.
func (s *Service) checkInvite(ctx context.Context, inviter, invitee id.UserID) error {
	if s.opts.AccountData == nil || invitee.Homeserver() != s.opts.ServerName || inviter == invitee {
		return nil
	}
	p, err := LoadInvitePolicy(ctx, s.opts.AccountData, invitee)
	if err != nil {
		return err
	}
	if p.Judge(inviter) == InviteBlocked {
		return p.blockedError(invitee)
	}
	return nil
}
