package archtest

import (
	"slices"
	"strings"
	"testing"
)

// fake builds a graph from lines "pkg: imp imp…". A name whose first element
// has a dot (github.com/…) is an external package; any other is a package of
// this module, relative to its root.
func fake(lines ...string) graph {
	full := func(p string) string {
		first, _, _ := strings.Cut(p, "/")
		if strings.Contains(first, ".") {
			return p
		}
		return mod + "/" + p
	}
	g := graph{}
	for _, l := range lines {
		pkg, imps, _ := strings.Cut(l, ":")
		pkg = full(strings.TrimSpace(pkg))
		if _, ok := g[pkg]; !ok {
			g[pkg] = nil
		}
		for _, imp := range strings.Fields(imps) {
			g[pkg] = append(g[pkg], full(imp))
			if _, ok := g[full(imp)]; !ok {
				g[full(imp)] = nil
			}
		}
	}
	return g
}

// designed is a module laid out as DESIGN.md draws it.
var designed = []string{
	"cmd/tributary: core/clientapi core/admin core/httpx core/rooms core/users core/config federation/inbound federation/outbound appservice/routes appservice/pusher bridges/manager storage storage/open",
	"core/types: maunium.net/go/mautrix/id",
	"core/httpx: github.com/gin-gonic/gin core/types core/canonicaljson",
	"core/canonicaljson:",
	"core/clientapi: github.com/gin-gonic/gin core/httpx core/rooms core/users core/sync core/types",
	"core/admin: github.com/gin-gonic/gin core/httpx core/users core/rooms",
	"core/rooms: core/types core/events core/state core/stream core/push storage",
	"core/sync: core/rooms core/stream storage",
	"core/users: core/types storage",
	"core/push: core/types storage",
	"federation/inbound: github.com/gin-gonic/gin core/httpx core/rooms federation/keys",
	"federation/keys: storage",
	"federation/outbound: core/rooms core/stream storage",
	"appservice/registry: core/types",
	"appservice/pusher: appservice/registry core/stream storage",
	"appservice/routes: github.com/gin-gonic/gin core/httpx appservice/registry core/users",
	"bridges/manager: plugins/host plugins/proto appservice/registry appservice/pusher core/rooms storage",
	"plugins/proto: google.golang.org/grpc",
	"plugins/sdk: plugins/proto maunium.net/go/mautrix/bridgev2",
	"plugins/host: plugins/proto github.com/hashicorp/go-plugin",
	"plugins/plugintest: plugins/sdk plugins/proto",
	"bridges/irc: plugins/sdk bridges/irc/connector",
	"bridges/irc/connector: maunium.net/go/mautrix/bridgev2 gopkg.in/irc.v4",
	"storage: core/types",
	"storage/open: storage storage/sqlite storage/postgres",
	"storage/sqldb: storage core/types",
	"storage/sqlite: storage/sqldb modernc.org/sqlite",
	"storage/postgres: storage/sqldb github.com/jackc/pgx/v5",
	"storage/storagetest: storage core/types",
	"internal/testserver: maunium.net/go/mautrix",
	"github.com/gin-gonic/gin: github.com/gin-gonic/gin/render",
}

func TestRules(t *testing.T) {
	for _, tc := range []struct {
		name  string
		extra []string // added to the designed layout
		want  []string // "rule pkg imp"
	}{
		{name: "as designed"},
		{
			name:  "core imports federation",
			extra: []string{"core/rooms: federation/outbound"},
			want: []string{
				"core-outward core/admin federation/outbound",
				"core-outward core/clientapi federation/outbound",
				"core-outward core/rooms federation/outbound",
				"core-outward core/sync federation/outbound",
			},
		},
		{
			name:  "core reaches appservice through a package no rule covers",
			extra: []string{"core/users: internal/helper", "internal/helper: appservice/pusher"},
			want: []string{
				"core-outward core/admin appservice/pusher",
				"core-outward core/admin appservice/registry",
				"core-outward core/clientapi appservice/pusher",
				"core-outward core/clientapi appservice/registry",
				"core-outward core/users appservice/pusher",
				"core-outward core/users appservice/registry",
			},
		},
		{
			name:  "core imports cmd",
			extra: []string{"core/config: cmd/tool"},
			want:  []string{"core-outward core/config cmd/tool", "cmd core/config cmd/tool"},
		},
		{
			name:  "appservice imports bridges",
			extra: []string{"appservice/registry: bridges/manager"},
			want: []string{
				// bridges/manager and appservice/registry now import each other.
				"below-bridges appservice/pusher bridges/manager",
				"below-bridges appservice/pusher plugins/host",
				"below-bridges appservice/pusher plugins/proto",
				"below-bridges appservice/registry bridges/manager",
				"below-bridges appservice/registry plugins/host",
				"below-bridges appservice/registry plugins/proto",
				"below-bridges appservice/routes bridges/manager",
				"below-bridges appservice/routes plugins/host",
				"below-bridges appservice/routes plugins/proto",
			},
		},
		{
			name: "handlers import storage",
			extra: []string{
				"federation/inbound: storage",
				"appservice/routes: storage/open",
				"core/admin: storage/sqldb",
			},
			want: []string{
				"handler-storage appservice/routes storage/open",
				"storage-backend appservice/routes storage/open",
				"storage-backend appservice/routes storage/postgres",
				"storage-backend appservice/routes storage/sqldb",
				"storage-backend appservice/routes storage/sqlite",
				"handler-storage core/admin storage/sqldb",
				"storage-backend core/admin storage/sqldb",
				"handler-storage federation/inbound storage",
			},
		},
		{
			name:  "core/httpx imports a core service",
			extra: []string{"core/httpx: core/users"},
			want: []string{
				"httpx-leaf core/httpx core/users",
				"httpx-leaf core/httpx storage",
			},
		},
		{
			name:  "core/canonicaljson imports the module",
			extra: []string{"core/canonicaljson: core/types"},
			want:  []string{"canonicaljson-leaf core/canonicaljson core/types"},
		},
		{
			name:  "core/httpx reaches a service through a helper",
			extra: []string{"core/httpx: internal/helper", "internal/helper: core/rooms"},
			want: []string{
				"httpx-leaf core/httpx core/events",
				"httpx-leaf core/httpx core/push",
				"httpx-leaf core/httpx core/rooms",
				"httpx-leaf core/httpx core/state",
				"httpx-leaf core/httpx core/stream",
				"httpx-leaf core/httpx internal/helper",
				"httpx-leaf core/httpx storage",
			},
		},
		{
			name:  "a service imports a handler",
			extra: []string{"core/push: core/clientapi"},
			want: []string{
				"service-edge core/push core/clientapi",
				"service-edge core/push core/httpx",
				"service-edge core/rooms core/clientapi",
				"service-edge core/rooms core/httpx",
				"service-edge core/sync core/clientapi",
				"service-edge core/sync core/httpx",
				"service-edge federation/outbound core/clientapi",
				"service-edge federation/outbound core/httpx",
				"service-edge bridges/manager core/clientapi",
				"service-edge bridges/manager core/httpx",
			},
		},
		{
			name:  "a service opens a backend",
			extra: []string{"federation/keys: storage/open"},
			want: []string{
				"storage-backend federation/inbound storage/open",
				"storage-backend federation/inbound storage/postgres",
				"storage-backend federation/inbound storage/sqldb",
				"storage-backend federation/inbound storage/sqlite",
				"storage-backend federation/keys storage/open",
				"storage-backend federation/keys storage/postgres",
				"storage-backend federation/keys storage/sqldb",
				"storage-backend federation/keys storage/sqlite",
			},
		},
		{
			name:  "storage reaches a core service",
			extra: []string{"storage/sqldb: internal/helper", "internal/helper: core/rooms"},
			want: func() []string {
				var w []string
				for _, p := range []string{"storage/open", "storage/postgres", "storage/sqldb", "storage/sqlite"} {
					for _, imp := range []string{"core/events", "core/push", "core/rooms", "core/state", "core/stream", "internal/helper"} {
						w = append(w, "storage-down "+p+" "+imp)
					}
				}
				return w
			}(),
		},
		{
			name:  "storage reaches gin through an external package",
			extra: []string{"storage/postgres: github.com/example/web", "github.com/example/web: github.com/gin-gonic/gin"},
			want: []string{
				"storage-down storage/open github.com/gin-gonic/gin",
				"storage-down storage/open github.com/gin-gonic/gin/render",
				"storage-down storage/postgres github.com/gin-gonic/gin",
				"storage-down storage/postgres github.com/gin-gonic/gin/render",
			},
		},
		{
			name:  "plugins reach the homeserver",
			extra: []string{"plugins/proto: core/types"},
			want: []string{
				"plugins-alone plugins/host core/types",
				"plugins-alone plugins/plugintest core/types",
				"plugins-alone plugins/proto core/types",
				"plugins-alone plugins/sdk core/types",
				"bridge-closure bridges/irc core/types",
			},
		},
		{
			name:  "a bridge imports the plugin host",
			extra: []string{"bridges/irc: plugins/host"},
			want:  []string{"bridge-direct bridges/irc plugins/host"},
		},
		{
			name: "a bridge imports another bridge and the homeserver",
			extra: []string{
				"bridges/slack: plugins/sdk bridges/slack/connector",
				"bridges/slack/connector: bridges/irc/connector core/types",
			},
			want: []string{
				"bridge-closure bridges/slack bridges/irc/connector",
				"bridge-closure bridges/slack core/types",
				"bridge-direct bridges/slack/connector bridges/irc/connector",
				"bridge-closure bridges/slack/connector bridges/irc/connector",
				"bridge-direct bridges/slack/connector core/types",
				"bridge-closure bridges/slack/connector core/types",
			},
		},
		{
			name:  "gin outside the edge",
			extra: []string{"core/users: github.com/gin-gonic/gin", "bridges/manager: github.com/gin-gonic/gin/binding"},
			want: []string{
				"gin-edge bridges/manager github.com/gin-gonic/gin/binding",
				"gin-edge core/users github.com/gin-gonic/gin",
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, v := range check(fake(append(slices.Clone(designed), tc.extra...)...), rules) {
				got = append(got, v.rule+" "+v.pkg+" "+short(v.imp))
			}
			slices.Sort(got)
			want := slices.Sorted(slices.Values(tc.want))
			if !slices.Equal(got, want) {
				t.Errorf("violations:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
			}
		})
	}
}

// A transitive violation names the chain that leads to the forbidden package.
func TestViolationNamesTheChain(t *testing.T) {
	g := fake("core/sync: core/rooms", "core/rooms: internal/helper", "internal/helper: appservice/pusher")
	var msgs []string
	for _, v := range check(g, rules) {
		if v.pkg == "core/sync" {
			msgs = append(msgs, v.String())
		}
	}
	want := "core/sync depends on appservice/pusher (core/sync → core/rooms → internal/helper → appservice/pusher): " +
		"core must not import federation, appservice, bridges, plugins or cmd [core-outward]"
	if len(msgs) != 1 || msgs[0] != want {
		t.Fatalf("got %q,\nwant %q", msgs, want)
	}
}

// No rule is dead: in a graph that breaks them all, each one finds something.
func TestEveryRuleCanFail(t *testing.T) {
	bad := fake(append(slices.Clone(designed),
		"core/rooms: federation/outbound",
		"appservice/registry: bridges/manager",
		"core/admin: storage/sqldb",
		"core/push: core/clientapi",
		"core/httpx: core/users",
		"storage/sqldb: core/rooms github.com/gin-gonic/gin",
		"plugins/proto: core/types",
		"bridges/irc: plugins/host",
		"core/config: cmd/tool",
		"core/canonicaljson: core/types",
	)...)
	seen := map[string]bool{}
	for _, v := range check(bad, rules) {
		seen[v.rule] = true
	}
	for _, r := range rules {
		if !seen[r.id] {
			t.Errorf("rule %s found nothing in a graph that breaks it", r.id)
		}
	}
}
