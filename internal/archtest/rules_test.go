package archtest

import (
	"fmt"
	"slices"
	"strings"
)

const mod = "github.com/tributary-hs/tributary"

// graph maps packages (full import paths) to their direct imports. Loaded
// with go list -deps it holds the module's packages and everything they
// depend on, so a transitive rule sees through external packages too.
type graph map[string][]string

// local returns a module package's path relative to the module root.
func local(p string) (string, bool) { return strings.CutPrefix(p, mod+"/") }

// under reports whether pkg is one of prefixes or inside one of them.
func under(pkg string, prefixes ...string) bool {
	for _, p := range prefixes {
		if pkg == p || strings.HasPrefix(pkg, p+"/") {
			return true
		}
	}
	return false
}

// localUnder reports whether imp is a module package under one of prefixes.
func localUnder(imp string, prefixes ...string) bool {
	rel, ok := local(imp)
	return ok && under(rel, prefixes...)
}

// localOutside reports whether imp is a module package under none of allowed.
func localOutside(imp string, allowed ...string) bool {
	rel, ok := local(imp)
	return ok && !under(rel, allowed...)
}

func isGin(imp string) bool { return under(imp, "github.com/gin-gonic/gin") }

// isStd reports whether p is a standard library package, which never
// imports this module or gin, so closures need not walk into it.
func isStd(p string) bool {
	first, _, _ := strings.Cut(p, "/")
	_, isLocal := local(p)
	return !isLocal && !strings.Contains(first, ".")
}

// handlers are the HTTP handler packages; edge adds their middleware. Only
// these may use gin.
var (
	handlers = []string{"core/clientapi", "core/admin", "federation/inbound", "appservice/routes"}
	edge     = append(slices.Clone(handlers), "core/httpx")
)

// network returns the bridges/<network> a package belongs to, if it is part
// of a bridge (bridges/manager and the bridges doc package are not).
func network(pkg string) (string, bool) {
	rest, ok := strings.CutPrefix(pkg, "bridges/")
	if !ok {
		return "", false
	}
	name, _, _ := strings.Cut(rest, "/")
	if name == "manager" {
		return "", false
	}
	return "bridges/" + name, true
}

// A rule is one line of DESIGN.md's "Dependency direction". It applies to
// module packages (pkg is relative to the module root) and forbids some of
// their imports (imp is a full import path): the direct ones, or, for a
// transitive rule, everything the package depends on.
type rule struct {
	id         string
	why        string
	transitive bool
	applies    func(pkg string) bool
	forbids    func(pkg, imp string) bool
}

var rules = []rule{{
	id:         "core-outward",
	why:        "core must not import federation, appservice, bridges, plugins or cmd",
	transitive: true,
	applies:    func(pkg string) bool { return under(pkg, "core") },
	forbids: func(_, imp string) bool {
		return localUnder(imp, "federation", "appservice", "bridges", "plugins", "cmd")
	},
}, {
	id:         "below-bridges",
	why:        "federation and appservice must not import bridges, plugins or cmd (bridges/manager builds on them, cmd wires them)",
	transitive: true,
	applies:    func(pkg string) bool { return under(pkg, "federation", "appservice") },
	forbids:    func(_, imp string) bool { return localUnder(imp, "bridges", "plugins", "cmd") },
}, {
	// Direct only: handlers call core services, which import storage.
	id:      "handler-storage",
	why:     "handlers (and core/httpx) must not import storage: they call core services",
	applies: func(pkg string) bool { return under(pkg, edge...) },
	forbids: func(_, imp string) bool { return localUnder(imp, "storage") },
}, {
	// Transitive: a helper package in between must not bring a service in.
	id:         "httpx-leaf",
	why:        "core/httpx depends on no core service: of this module only the leaf packages core/types, core/config and core/canonicaljson (services hand it a types.Principal through its Authenticator interface)",
	transitive: true,
	applies:    func(pkg string) bool { return pkg == "core/httpx" },
	forbids: func(_, imp string) bool {
		return localOutside(imp, "core/types", "core/config", "core/canonicaljson")
	},
}, {
	// Transitive: core/httpx, core/events and storage's callers check JSON
	// with it; it must stay below all of them.
	id:         "canonicaljson-leaf",
	why:        "core/canonicaljson imports nothing of this module",
	transitive: true,
	applies:    func(pkg string) bool { return pkg == "core/canonicaljson" },
	forbids:    func(_, imp string) bool { _, ok := local(imp); return ok },
}, {
	id:         "service-edge",
	why:        "core services, federation, appservice and bridges must not import the HTTP edge (handlers, core/httpx)",
	transitive: true,
	applies: func(pkg string) bool {
		return under(pkg, "core", "federation", "appservice", "bridges") && !under(pkg, edge...)
	},
	forbids: func(_, imp string) bool { return localUnder(imp, edge...) },
}, {
	id:         "storage-backend",
	why:        "core, federation, appservice, bridges and plugins use the storage interfaces, never a backend (only cmd opens storage)",
	transitive: true,
	applies: func(pkg string) bool {
		return under(pkg, "core", "federation", "appservice", "bridges", "plugins")
	},
	forbids: func(_, imp string) bool { return localUnder(imp, "storage") && imp != mod+"/storage" },
}, {
	id:         "storage-down",
	why:        "storage may import only storage and core/types of this module, and never gin",
	transitive: true,
	applies:    func(pkg string) bool { return under(pkg, "storage") },
	forbids: func(_, imp string) bool {
		return localOutside(imp, "storage", "core/types") || isGin(imp)
	},
}, {
	id:         "plugins-alone",
	why:        "plugins must not import anything else of this module",
	transitive: true,
	applies:    func(pkg string) bool { return under(pkg, "plugins") },
	forbids:    func(_, imp string) bool { return localOutside(imp, "plugins") },
}, {
	id:      "bridge-direct",
	why:     "a bridge imports only plugins/sdk of this module",
	applies: func(pkg string) bool { _, ok := network(pkg); return ok },
	forbids: func(pkg, imp string) bool {
		own, _ := network(pkg)
		return localOutside(imp, "plugins/sdk", own)
	},
}, {
	id:         "bridge-closure",
	why:        "a bridge depends on nothing of this module but plugins/sdk and what it imports",
	transitive: true,
	applies:    func(pkg string) bool { _, ok := network(pkg); return ok },
	forbids: func(pkg, imp string) bool {
		own, _ := network(pkg)
		return localOutside(imp, "plugins", own)
	},
}, {
	id:      "gin-edge",
	why:     "only handler packages and core/httpx may import gin",
	applies: func(pkg string) bool { return !under(pkg, edge...) },
	forbids: func(_, imp string) bool { return isGin(imp) },
}, {
	id:      "cmd",
	why:     "nothing imports cmd: cmd wires everything else",
	applies: func(pkg string) bool { return !under(pkg, "cmd") },
	forbids: func(_, imp string) bool { return localUnder(imp, "cmd") },
}}

// A violation is a module package depending on what a rule forbids it.
type violation struct {
	rule string
	why  string
	pkg  string   // relative to the module root
	imp  string   // full import path of the forbidden package
	via  []string // for a transitive dependency, the packages in between
}

func (v violation) String() string {
	imp := short(v.imp)
	if len(v.via) == 0 {
		return fmt.Sprintf("%s imports %s: %s [%s]", v.pkg, imp, v.why, v.rule)
	}
	chain := []string{v.pkg}
	for _, p := range v.via {
		chain = append(chain, short(p))
	}
	return fmt.Sprintf("%s depends on %s (%s → %s): %s [%s]", v.pkg, imp, strings.Join(chain, " → "), imp, v.why, v.rule)
}

// short names a module package relative to the module root.
func short(p string) string {
	if rel, ok := local(p); ok {
		return rel
	}
	return p
}

// check returns every violation of rules in g, in a stable order.
func check(g graph, rules []rule) []violation {
	var pkgs []string
	for p := range g {
		if _, ok := local(p); ok {
			pkgs = append(pkgs, p)
		}
	}
	slices.Sort(pkgs)
	var out []violation
	for _, p := range pkgs {
		rel, _ := local(p)
		direct := slices.Sorted(slices.Values(g[p]))
		var deps []string
		var parent map[string]string
		for _, r := range rules {
			if !r.applies(rel) {
				continue
			}
			if !r.transitive {
				for _, imp := range direct {
					if r.forbids(rel, imp) {
						out = append(out, violation{rule: r.id, why: r.why, pkg: rel, imp: imp})
					}
				}
				continue
			}
			if parent == nil {
				deps, parent = closure(g, p)
			}
			for _, imp := range deps {
				if r.forbids(rel, imp) {
					out = append(out, violation{rule: r.id, why: r.why, pkg: rel, imp: imp, via: path(parent, p, imp)})
				}
			}
		}
	}
	return out
}

// closure returns everything p depends on, in breadth-first order (so the
// recorded parents give a shortest chain), and each one's parent on that
// chain. It does not walk into the standard library.
func closure(g graph, p string) ([]string, map[string]string) {
	parent := map[string]string{p: ""}
	queue, deps := []string{p}, []string(nil)
	for len(queue) > 0 {
		cur := queue[0]
		queue = queue[1:]
		for _, imp := range slices.Sorted(slices.Values(g[cur])) {
			if _, seen := parent[imp]; seen {
				continue
			}
			parent[imp] = cur
			deps = append(deps, imp)
			if !isStd(imp) {
				queue = append(queue, imp)
			}
		}
	}
	return deps, parent
}

// path returns the packages between from and to on the recorded chain.
func path(parent map[string]string, from, to string) []string {
	var via []string
	for p := parent[to]; p != from; p = parent[p] {
		via = append(via, p)
	}
	slices.Reverse(via)
	return via
}
