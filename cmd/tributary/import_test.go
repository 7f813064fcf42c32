package main

import (
	"os"
	"path/filepath"
	"testing"

	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/core/config"
)

// The Slack import acts as its own silent appservice, unless a plugin has
// its ghost prefix: then it acts as that plugin, so that the live bridge
// and the import share ghosts and rooms.
func TestImportIdentities(t *testing.T) {
	cfg := config.Default()
	cfg.ServerName = "hs.example"
	regs, ids, err := importIdentities(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(regs) != 2 || regs[1].Reg.ID != "import:slack" || !regs[1].Silent || regs[1].Reg.SenderLocalpart != "slackbot" ||
		regs[1].Reg.Namespaces.UserIDs[0].Regex != `@slack_.*:hs\.example` || !regs[1].Reg.Namespaces.UserIDs[0].Exclusive {
		t.Fatalf("registrations %+v", regs)
	}
	if regs[0].Reg.ID != "import:discord" || regs[0].Reg.Namespaces.UserIDs[0].Regex != `@discord_.*:hs\.example` {
		t.Fatalf("registrations %+v", regs)
	}
	if ident := ids["slack"]; ident.AppServiceID != "import:slack" || ident.Bot != id.UserID("@slackbot:hs.example") {
		t.Fatalf("identity %+v", ident)
	}
	cfg.Plugins = []config.Plugin{{Name: "slack", Binary: "/bin/true", GhostPrefix: "slack_", BotLocalpart: "slackbridge"}}
	regs, ids, err = importIdentities(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(regs) != 1 || ids["slack"].AppServiceID != "plugin:slack" || ids["slack"].Bot != "@slackbridge:hs.example" {
		t.Fatalf("with a plugin of the same prefix: registrations %+v, identity %+v", regs, ids["slack"])
	}
}

func TestReadUserMap(t *testing.T) {
	path := filepath.Join(t.TempDir(), "map.txt")
	write := func(s string) {
		if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("# Slack people on Matrix\nU012AB3CD @ada:hs\n\nAda.Lovelace@Example.com,\t@ada:hs # by e-mail\n")
	m, err := readUserMap(path, "hs")
	if err != nil {
		t.Fatal(err)
	}
	if len(m) != 2 || m["U012AB3CD"] != "@ada:hs" || m["ada.lovelace@example.com"] != "@ada:hs" {
		t.Fatalf("map %v", m)
	}
	for _, bad := range []string{"U1\n", "U1 @ada:other\n", "U1 ada\n", "U1 @a:hs extra\n"} {
		write(bad)
		if _, err := readUserMap(path, "hs"); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}
