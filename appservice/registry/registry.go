// Package registry loads application service registrations (YAML files as
// mautrix's appservice.Registration reads them), checks them, and answers
// which appservice owns a token, a user or an alias. It imports mautrix and
// nothing of core but what its callers hand it.
package registry

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"regexp"

	"maunium.net/go/mautrix/appservice"
	"maunium.net/go/mautrix/id"
)

// AppService is one registration, compiled.
type AppService struct {
	Reg    *appservice.Registration
	Sender id.UserID
	// Silent: the appservice is sent no events (an import's identity: its
	// namespace is exclusive, but nothing consumes a queue of its rooms).
	Silent  bool
	users   []namespace
	aliases []namespace
	rooms   []namespace
}

type namespace struct {
	re        *regexp.Regexp
	exclusive bool
}

// Registry holds every configured appservice.
type Registry struct {
	list []*AppService
}

// Load reads and checks registration files; the error is one line naming
// the file and the problem.
func Load(paths []string, serverName string) (*Registry, error) {
	return LoadWith(paths, serverName, nil)
}

// Internal is a registration made by the server itself (a bridge plugin's:
// bridges/manager), named Source in errors.
type Internal struct {
	Source string
	Reg    *appservice.Registration
	// Silent registrations are sent no events (AppService.Silent).
	Silent bool
}

// LoadWith is Load with internal registrations besides the files; they
// meet the same checks (unique ID and tokens, valid namespaces).
func LoadWith(paths []string, serverName string, internal []Internal) (*Registry, error) {
	regs := make([]Internal, 0, len(paths)+len(internal))
	for _, p := range paths {
		reg, err := appservice.LoadRegistration(p)
		if err != nil {
			return nil, fmt.Errorf("appservice %s: %w", p, err)
		}
		regs = append(regs, Internal{Source: p, Reg: reg})
	}
	regs = append(regs, internal...)
	r := &Registry{}
	ids, asTokens, hsTokens := map[string]string{}, map[string]string{}, map[string]string{}
	for _, in := range regs {
		p, reg := in.Source, in.Reg
		switch {
		case reg.ID == "":
			return nil, fmt.Errorf("appservice %s: id is required", p)
		case reg.AppToken == "" || reg.ServerToken == "":
			return nil, fmt.Errorf("appservice %s: as_token and hs_token are required", p)
		case reg.SenderLocalpart == "":
			return nil, fmt.Errorf("appservice %s: sender_localpart is required", p)
		}
		if other, dup := ids[reg.ID]; dup {
			return nil, fmt.Errorf("appservice %s: id %q is also used by %s", p, reg.ID, other)
		}
		if other, dup := asTokens[reg.AppToken]; dup {
			return nil, fmt.Errorf("appservice %s: as_token is also used by %s", p, other)
		}
		if other, dup := hsTokens[reg.ServerToken]; dup {
			return nil, fmt.Errorf("appservice %s: hs_token is also used by %s", p, other)
		}
		ids[reg.ID], asTokens[reg.AppToken], hsTokens[reg.ServerToken] = p, p, p
		as := &AppService{Reg: reg, Sender: id.NewUserID(reg.SenderLocalpart, serverName), Silent: in.Silent}
		for _, part := range []struct {
			name string
			in   []appservice.Namespace
			out  *[]namespace
		}{{"users", reg.Namespaces.UserIDs, &as.users}, {"aliases", reg.Namespaces.RoomAliases, &as.aliases},
			{"rooms", reg.Namespaces.RoomIDs, &as.rooms}} {
			for _, ns := range part.in {
				re, err := regexp.Compile("^(?:" + ns.Regex + ")$")
				if err != nil {
					return nil, fmt.Errorf("appservice %s: namespaces.%s: invalid regex %q", p, part.name, ns.Regex)
				}
				*part.out = append(*part.out, namespace{re: re, exclusive: ns.Exclusive})
			}
		}
		r.list = append(r.list, as)
	}
	return r, nil
}

// All lists the appservices.
func (r *Registry) All() []*AppService {
	if r == nil {
		return nil
	}
	return r.list
}

// ByASToken finds the appservice whose as_token this is. Every token is
// compared in constant time.
func (r *Registry) ByASToken(token string) *AppService {
	var found *AppService
	for _, as := range r.All() {
		if subtle.ConstantTimeCompare([]byte(as.Reg.AppToken), []byte(token)) == 1 {
			found = as
		}
	}
	return found
}

// ByID finds an appservice by its id.
func (r *Registry) ByID(asID string) *AppService {
	for _, as := range r.All() {
		if as.Reg.ID == asID {
			return as
		}
	}
	return nil
}

// Sender is the user of the appservice asID; "" when there is none.
func (r *Registry) Sender(asID string) id.UserID {
	if as := r.ByID(asID); as != nil {
		return as.Sender
	}
	return ""
}

// OwnsUser reports whether the user is the sender of the appservice asID or
// in its namespace.
func (r *Registry) OwnsUser(asID string, u id.UserID) bool {
	as := r.ByID(asID)
	return as != nil && as.OwnsUser(u)
}

func matches(list []namespace, s string, exclusiveOnly bool) bool {
	for _, ns := range list {
		if (!exclusiveOnly || ns.exclusive) && ns.re.MatchString(s) {
			return true
		}
	}
	return false
}

// OwnsUser reports whether the user is the appservice's sender or in its namespace.
func (a *AppService) OwnsUser(u id.UserID) bool {
	return u == a.Sender || matches(a.users, string(u), false)
}

// OwnsAlias reports whether the alias is in the appservice's namespace.
func (a *AppService) OwnsAlias(alias string) bool { return matches(a.aliases, alias, false) }

// ExclusiveUser returns the appservice that claims the user exclusively, if any.
func (r *Registry) ExclusiveUser(u id.UserID) *AppService {
	for _, as := range r.All() {
		if u == as.Sender || matches(as.users, string(u), true) {
			return as
		}
	}
	return nil
}

// ExclusiveAlias returns the appservice that claims the alias exclusively, if any.
func (r *Registry) ExclusiveAlias(alias string) *AppService {
	for _, as := range r.All() {
		if matches(as.aliases, alias, true) {
			return as
		}
	}
	return nil
}

// ErrNoAppService: a token names no appservice.
var ErrNoAppService = errors.New("no such appservice")

// Owners, RoomOwners and AliasOwners say which appservices an event
// concerns (appservice/pusher.Interest), so they leave silent ones out.

// Owners lists the appservices whose namespace (or sender) holds the user.
func (r *Registry) Owners(u id.UserID) []string {
	return r.ids(func(as *AppService) bool { return as.OwnsUser(u) })
}

// RoomOwners lists the appservices whose room namespace holds the room.
func (r *Registry) RoomOwners(roomID id.RoomID) []string {
	return r.ids(func(as *AppService) bool { return matches(as.rooms, string(roomID), false) })
}

// AliasOwners lists the appservices whose alias namespace holds the alias.
func (r *Registry) AliasOwners(alias string) []string {
	return r.ids(func(as *AppService) bool { return as.OwnsAlias(alias) })
}

// ids lists the IDs of the appservices match accepts.
func (r *Registry) ids(match func(*AppService) bool) []string {
	var out []string
	for _, as := range r.All() {
		if match(as) && !as.Silent {
			out = append(out, as.Reg.ID)
		}
	}
	return out
}

// AnyAliases reports whether any appservice has an alias namespace.
func (r *Registry) AnyAliases() bool {
	for _, as := range r.All() {
		if len(as.aliases) > 0 {
			return true
		}
	}
	return false
}

// Any reports whether any appservice is configured.
func (r *Registry) Any() bool { return len(r.All()) > 0 }
