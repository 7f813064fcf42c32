package sdk

import (
	"errors"
	"testing"

	"go.mau.fi/util/configupgrade"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/bridgev2"
	"maunium.net/go/mautrix/bridgev2/bridgeconfig"
	"maunium.net/go/mautrix/bridgev2/database"
	"maunium.net/go/mautrix/bridgev2/networkid"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

func testMatrix() *Matrix {
	env := &Env{ServerName: "hs", BotUserID: "@netbot:hs", GhostLocalpartPrefix: "net_", Name: "net",
		DefaultRoomVersion: "12"}
	return NewMatrix(nil, env, &Config{})
}

// Ghost IDs: the prefix, then the network ID encoded as a localpart, and
// back; the bot and other users are no ghosts.
func TestGhostMXIDs(t *testing.T) {
	m := testMatrix()
	for _, nid := range []networkid.UserID{"bob", "Bob Smith", "ünïcode", "a/b:c@d", "_x_"} {
		mxid := m.FormatGhostMXID(nid)
		if _, _, err := mxid.ParseAndValidateStrict(); err != nil {
			t.Errorf("%q → %s: %v", nid, mxid, err)
		}
		back, ok := m.ParseGhostMXID(mxid)
		if !ok || back != nid {
			t.Errorf("%q → %s → %q, %v", nid, mxid, back, ok)
		}
	}
	for _, u := range []id.UserID{"@netbot:hs", "@alice:hs", "@net_bob:elsewhere", "@other_bob:hs"} {
		if _, ok := m.ParseGhostMXID(u); ok {
			t.Errorf("%s parsed as a ghost", u)
		}
	}
	if m.fromBridge("@alice:hs") || !m.fromBridge("@netbot:hs") || !m.fromBridge("@net_bob:hs") {
		t.Error("fromBridge")
	}
}

// The host's Matrix errors come back as mautrix's, as an HTTP homeserver's
// would; transport errors stay what they are.
func TestHostError(t *testing.T) {
	err := hostError("getting state", status.Error(codes.NotFound, "M_NOT_FOUND: No m.room.topic state event"))
	if !errors.Is(err, mautrix.MNotFound) {
		t.Errorf("%v is not M_NOT_FOUND", err)
	}
	var re mautrix.RespError
	if !errors.As(err, &re) || re.StatusCode != 404 || re.Err != "No m.room.topic state event" {
		t.Errorf("%#v", re)
	}
	if err := hostError("x", status.Error(codes.PermissionDenied, "M_FORBIDDEN: no")); !errors.Is(err, mautrix.MForbidden) {
		t.Errorf("%v is not M_FORBIDDEN", err)
	}
	unavailable := status.Error(codes.Unavailable, "connection reset")
	if err := hostError("x", unavailable); errors.Is(err, mautrix.MNotFound) || status.Code(errors.Unwrap(err)) != codes.Unavailable {
		t.Errorf("transport error became %v", err)
	}
	if hostError("x", nil) != nil {
		t.Error("nil error")
	}
}

// Events the bridge sent as a double-puppeted user are not bridged back:
// marked content whose timestamp is the one asked for, or a redaction it
// remembers.
func TestIsEcho(t *testing.T) {
	m := testMatrix()
	content := &event.Content{Raw: map[string]any{"body": "hi"}}
	m.markDoublePuppeted(content, 1234)
	evt := &event.Event{ID: "$1", Timestamp: 1234, Content: event.Content{Raw: map[string]any{
		doublePuppetKey: content.Raw[doublePuppetKey], doublePuppetTSKey: float64(1234)}}}
	if !m.isEcho(evt) {
		t.Error("marked event not an echo")
	}
	evt.Content.Raw[doublePuppetKey] = "another bridge"
	if m.isEcho(evt) {
		t.Error("another bridge's event taken for an echo")
	}
	m.rememberPuppetEvent("$redaction")
	if !m.isEcho(&event.Event{ID: "$redaction"}) || m.isEcho(&event.Event{ID: "$other"}) {
		t.Error("remembered events")
	}
}

// From room version 12 the creator may not be in the power levels.
func TestCreateRoomDropsCreators(t *testing.T) {
	m := testMatrix()
	in := &intent{m: m, user: "@netbot:hs", kind: kindBot}
	pl := &event.PowerLevelsEventContent{Users: map[id.UserID]int{"@netbot:hs": 9001, "@net_bob:hs": 50}}
	req := &mautrix.ReqCreateRoom{PowerLevelOverride: pl}
	in.dropCreatorsFromPowerLevels(req)
	if _, ok := pl.Users["@netbot:hs"]; ok || pl.Users["@net_bob:hs"] != 50 {
		t.Errorf("v12 power levels %v", pl.Users)
	}
	pl = &event.PowerLevelsEventContent{Users: map[id.UserID]int{"@netbot:hs": 9001}}
	in.dropCreatorsFromPowerLevels(&mautrix.ReqCreateRoom{RoomVersion: "11", PowerLevelOverride: pl})
	if pl.Users["@netbot:hs"] != 9001 {
		t.Errorf("v11 power levels %v", pl.Users)
	}
}

// testNet is the least a NetworkConnector is, with a config section.
type testNet struct {
	bridgev2.NetworkConnector
	cfg struct {
		Address string `yaml:"address"`
		Retries int    `yaml:"retries"`
	}
}

func (n *testNet) GetName() bridgev2.BridgeName {
	return bridgev2.BridgeName{DisplayName: "Test", NetworkID: "testnet"}
}

func (n *testNet) GetConfig() (string, any, configupgrade.Upgrader) {
	return "address: example:1\nretries: 3\n", &n.cfg, nil
}

func (n *testNet) GetDBMetaTypes() database.MetaTypes { return database.MetaTypes{} }

// The plugin's block of the server config: bridgev2's sections over
// defaults, the network section over the connector's example config.
func TestLoadConfig(t *testing.T) {
	net := &testNet{}
	cfg, err := loadConfig([]byte(`{"network": {"address": "net:2"}, "bridge": {"command_prefix": "!t",
		"permissions": {"*": "relay", "@admin:hs": "admin"}}, "backfill": {"max_initial_messages": 7}, "log_level": "debug"}`),
		net, "hs")
	if err != nil {
		t.Fatal(err)
	}
	if net.cfg.Address != "net:2" || net.cfg.Retries != 3 {
		t.Errorf("network config %+v", net.cfg)
	}
	if cfg.Bridge.CommandPrefix != "!t" || cfg.Bridge.Backfill.MaxInitialMessages != 7 || !cfg.Bridge.Backfill.Enabled ||
		cfg.LogLevel != "debug" || cfg.Bridge.BridgeStatusNotices != "errors" {
		t.Errorf("bridge config %+v", cfg.Bridge)
	}
	if p := cfg.Bridge.Permissions.Get("@admin:hs"); !p.Admin {
		t.Errorf("admin permissions %+v", p)
	}
	if p := cfg.Bridge.Permissions.Get("@x:other"); p != bridgeconfig.PermissionLevelRelay {
		t.Errorf("others' permissions %+v", p)
	}

	cfg, err = loadConfig(nil, &testNet{}, "hs")
	if err != nil {
		t.Fatal(err)
	}
	if p := cfg.Bridge.Permissions.Get("@alice:hs"); p != bridgeconfig.PermissionLevelUser {
		t.Errorf("default permissions of the server's users %+v", p)
	}
	if p := cfg.Bridge.Permissions.Get("@alice:elsewhere"); p != bridgeconfig.PermissionLevelBlock {
		t.Errorf("default permissions of other servers' users %+v", p)
	}
	if cfg.Bridge.CommandPrefix != "!testnet" || cfg.Bot.Displayname != "Test bridge bot" {
		t.Errorf("defaults %q %q", cfg.Bridge.CommandPrefix, cfg.Bot.Displayname)
	}

	for _, bad := range []string{`{"bridge": {"portal_event_buffer": 64}}`, `{"network": {"retries": "many"}}`, `[1`} {
		if _, err := loadConfig([]byte(bad), &testNet{}, "hs"); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
}

// A config that does not name bridge.relay still relays: bridgev2's name
// and message templates are there (they were nil, and bridgev2 panicked
// formatting a relayed sender's name); a relay section given replaces
// what it names.
func TestLoadConfigRelayTemplates(t *testing.T) {
	sender := &bridgev2.OrigSender{DisambiguatedName: "Carol"}
	cfg, err := loadConfig(nil, &testNet{}, "hs")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Bridge.Relay.Enabled {
		t.Error("relay mode (set-relay) is on by default")
	}
	if got := cfg.Bridge.Relay.FormatName(sender); got != "Carol" {
		t.Errorf("relayed name %q", got)
	}
	out, err := cfg.Bridge.Relay.FormatMessage(&event.MessageEventContent{MsgType: event.MsgText, Body: "hi"}, sender)
	if err != nil || out.FormattedBody != "<b>Carol</b>: hi" {
		t.Errorf("relayed message %+v (%v)", out, err)
	}
	cfg, err = loadConfig([]byte(`{"bridge": {"relay": {"enabled": true, "displayname_format": "{{ .DisambiguatedName }} (M)"}}}`), &testNet{}, "hs")
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.Bridge.Relay.FormatName(sender); !cfg.Bridge.Relay.Enabled || got != "Carol (M)" {
		t.Errorf("configured relay: enabled %v, name %q", cfg.Bridge.Relay.Enabled, got)
	}
	if _, err := loadConfig([]byte(`{"bridge": {"relay": {"displayname_format": "{{ .Oops"}}}`), &testNet{}, "hs"); err == nil {
		t.Error("a broken relay template was taken")
	}
}
