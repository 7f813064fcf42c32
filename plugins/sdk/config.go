package sdk

import (
	"fmt"

	"gopkg.in/yaml.v3"
	"maunium.net/go/mautrix/bridgev2"
	"maunium.net/go/mautrix/bridgev2/bridgeconfig"
	"maunium.net/go/mautrix/event"
)

// Config is a bridgev2 plugin's block of the homeserver configuration
// (plugins[].config), with the sections of a standalone bridge's
// config.yaml that still mean something inside Tributary. The homeserver
// hands it over as JSON, which is YAML too: each section decodes with the
// yaml tags of bridgev2's own config types, as in a bridge's config file.
//
//	network:  the connector's own section (NetworkConnector.GetConfig)
//	bridge:   bridgev2's bridge section (command_prefix, permissions…)
//	backfill: bridgev2's backfill section
//	matrix:   message status events, error notices, delivery receipts
//	bot:      the bot's display name and avatar
//	log_level: trace, debug, info (the default), warn or error
//
// What a standalone bridge configures besides (homeserver, appservice,
// database, provisioning, encryption, double puppeting) is the homeserver's
// business here.
type Config struct {
	Network  yaml.Node                   `yaml:"network"`
	Bridge   bridgeconfig.BridgeConfig   `yaml:"bridge"`
	Backfill bridgeconfig.BackfillConfig `yaml:"backfill"`
	Matrix   bridgeconfig.MatrixConfig   `yaml:"matrix"`
	Bot      BotConfig                   `yaml:"bot"`
	LogLevel string                      `yaml:"log_level"`
}

// BotConfig is the bot's profile; "remove" clears a field.
type BotConfig struct {
	Displayname string `yaml:"displayname"`
	Avatar      string `yaml:"avatar"`
}

// defaultConfig is what a plugin runs with when its block says nothing:
// the values of bridgev2's example config, with the homeserver's users
// allowed to use the bridge, portal events handled as they arrive (so an
// event is acknowledged once bridged) and the backfill queue on (batch
// sending is there).
func defaultConfig(net bridgev2.NetworkConnector, serverName string) *Config {
	name := net.GetName()
	prefix := name.DefaultCommandPrefix
	if prefix == "" {
		prefix = "!" + name.NetworkID
	}
	return &Config{
		Bridge: bridgeconfig.BridgeConfig{
			CommandPrefix:       prefix,
			BridgeStatusNotices: "errors",
			PortalEventBuffer:   0,
			BridgeNotices:       true,
			Permissions: bridgeconfig.PermissionConfig{
				serverName: &bridgeconfig.PermissionLevelUser,
			},
			Relay: defaultRelay(),
		},
		Backfill: bridgeconfig.BackfillConfig{
			Enabled:              true,
			MaxInitialMessages:   50,
			MaxCatchupMessages:   500,
			UnreadHoursThreshold: 720,
			Queue: bridgeconfig.BackfillQueueConfig{Enabled: true, BatchSize: 100, BatchDelay: 20,
				MaxBatches: -1},
		},
		Matrix: bridgeconfig.MatrixConfig{MessageErrorNotices: true, FederateRooms: true},
		Bot:    BotConfig{Displayname: name.DisplayName + " bridge bot"},
	}
}

// loadConfig reads the plugin's block over the defaults, and the network
// section over the connector's example config into the connector's own
// config value.
func loadConfig(raw []byte, net bridgev2.NetworkConnector, serverName string) (*Config, error) {
	cfg := defaultConfig(net, serverName)
	if len(raw) > 0 && string(raw) != "null" {
		if err := yaml.Unmarshal(raw, cfg); err != nil {
			return nil, fmt.Errorf("plugin config: %w", err)
		}
	}
	if cfg.Bridge.PortalEventBuffer != 0 {
		// Events must be bridged before they are acknowledged.
		return nil, fmt.Errorf("plugin config: bridge.portal_event_buffer must be 0 in a plugin")
	}
	// As mxmain does: the backfill section is the bridge's.
	cfg.Bridge.Backfill = cfg.Backfill
	if err := parseRelayTemplates(&cfg.Bridge.Relay); err != nil {
		return nil, fmt.Errorf("plugin config: bridge.relay: %w", err)
	}
	example, data, _ := net.GetConfig()
	if data != nil {
		if example != "" {
			if err := yaml.Unmarshal([]byte(example), data); err != nil {
				return nil, fmt.Errorf("the connector's example config: %w", err)
			}
		}
		if cfg.Network.Kind != 0 {
			if err := cfg.Network.Decode(data); err != nil {
				return nil, fmt.Errorf("plugin config: network: %w", err)
			}
		}
	}
	return cfg, nil
}

// defaultRelay is bridgev2's example relay section: relay mode (set-relay)
// off, its message formats and name template there for a connector that
// turns relaying on for its own logins.
func defaultRelay() bridgeconfig.RelayConfig {
	const name = "<b>{{ .Sender.DisambiguatedName }}</b>"
	const caption = "{{ if .Caption }}: {{ .Caption }}{{ end }}"
	return bridgeconfig.RelayConfig{
		AdminOnly: true, PreferDefault: true, AllowBridge: true,
		MessageFormats: map[event.MessageType]string{
			event.MsgText:     name + ": {{ .Message }}",
			event.MsgNotice:   name + ": {{ .Message }}",
			event.MsgEmote:    "* " + name + " {{ .Message }}",
			event.MsgFile:     name + " sent a file" + caption,
			event.MsgImage:    name + " sent an image" + caption,
			event.MsgAudio:    name + " sent an audio file" + caption,
			event.MsgVideo:    name + " sent a video" + caption,
			event.MsgLocation: name + " sent a location" + caption,
		},
		DisplaynameFormat: "{{ .DisambiguatedName }}",
	}
}

// parseRelayTemplates parses the relay section's templates, which
// bridgev2 does only when it decodes the section from YAML: a config that
// does not name bridge.relay would leave them nil, and bridgev2 panics
// relaying a message with them.
func parseRelayTemplates(rc *bridgeconfig.RelayConfig) error {
	var node yaml.Node
	if err := node.Encode(rc); err != nil {
		return err
	}
	return rc.UnmarshalYAML(&node)
}
