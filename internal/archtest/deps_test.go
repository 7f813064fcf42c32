// Package archtest keeps the dependency rules of shared/DESIGN.md true.
package archtest

import (
	"os/exec"
	"strings"
	"testing"
)

const mod = "github.com/tributary-hs/tributary/"

// packages maps each package of the module to its direct imports.
func packages(t *testing.T) map[string][]string {
	t.Helper()
	cmd := exec.Command("go", "list", "-f", `{{.ImportPath}} {{join .Imports " "}}`, mod+"...")
	cmd.Dir = "../.."
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	pkgs := map[string][]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		pkgs[strings.TrimPrefix(f[0], mod)] = f[1:]
	}
	return pkgs
}

func under(pkg string, prefixes ...string) bool {
	for _, p := range prefixes {
		if pkg == p || strings.HasPrefix(pkg, p+"/") {
			return true
		}
	}
	return false
}

// handlerPackages are the only packages allowed to use gin.
var handlerPackages = []string{"core/httpx", "core/clientapi", "core/admin", "federation/inbound", "appservice/routes"}

func TestDependencyDirection(t *testing.T) {
	pkgs := packages(t)
	if len(pkgs) < 5 {
		t.Fatalf("go list found only %d packages", len(pkgs))
	}
	for pkg, imports := range pkgs {
		for _, imp := range imports {
			local, isLocal := strings.CutPrefix(imp, mod)
			switch {
			case under(pkg, "core") && isLocal && under(local, "federation", "appservice", "bridges", "plugins", "cmd"):
				t.Errorf("%s imports %s: core must not import federation, appservice, bridges, plugins or cmd", pkg, imp)
			case under(pkg, "core/clientapi", "core/admin") && isLocal && under(local, "storage"):
				t.Errorf("%s imports %s: handlers must not import storage", pkg, imp)
			case under(pkg, "storage") && isLocal && under(local, "core") && local != "core/types":
				t.Errorf("%s imports %s: storage may import only core/types of core", pkg, imp)
			case under(pkg, "plugins") && isLocal && !under(local, "plugins"):
				t.Errorf("%s imports %s: plugins must not import the rest of the module", pkg, imp)
			case strings.HasPrefix(imp, "github.com/gin-gonic/gin") && !under(pkg, handlerPackages...):
				t.Errorf("%s imports gin: only handler packages and core/httpx may", pkg)
			}
		}
	}
}
