// Package archtest keeps the dependency rules of shared/DESIGN.md
// ("Dependency direction") true: rules_test.go states them, check_test.go
// shows each one failing on a graph that breaks it, and this file applies
// them to the module as it is.
package archtest

import (
	"bytes"
	"os/exec"
	"strings"
	"testing"
)

// load returns the import graph of the module's packages and of everything
// they depend on (not their tests), as built with the goolm tag.
func load(t *testing.T) graph {
	t.Helper()
	cmd := exec.Command("go", "list", "-deps", "-tags", "goolm", "-f", `{{.ImportPath}} {{join .Imports " "}}`, "./...")
	cmd.Dir = "../.."
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.Bytes())
	}
	g := graph{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		g[f[0]] = f[1:]
	}
	return g
}

// named are the packages the rules name. If one is moved or renamed, a rule
// would quietly check nothing, so they must exist.
var named = append([]string{
	"core/types", "storage",
	"plugins", "plugins/proto", "plugins/sdk", "plugins/host", "plugins/plugintest",
	"bridges", "bridges/manager",
}, edge...)

func TestDependencyDirection(t *testing.T) {
	g := load(t)
	for _, p := range named {
		if _, ok := g[mod+"/"+p]; !ok {
			t.Errorf("package %s does not exist: the dependency rules name it (update DESIGN.md and rules_test.go together)", p)
		}
	}
	for _, v := range check(g, rules) {
		t.Error(v)
	}
}
