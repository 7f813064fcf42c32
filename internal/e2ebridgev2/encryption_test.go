package e2ebridgev2

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/bridgev2/bridgeconfig"
	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/internal/testserver"
)

const devicesRoute = "/_matrix/client/v3/devices/:deviceId"

// TestBridgev2Encryption starts a stock bridgev2 bridge with end-to-bridge
// encryption, the two ways its bot gets a device: logging in with
// m.login.application_service (the bridge exits at start unless GET /login
// lists that flow), and MSC4190, where the appservice creates the device
// with PUT /devices/{deviceId} and acts as it with ?device_id= (syncing
// that way too) — with self-signing, which uploads cross-signing keys as
// the appservice. Either way the bot's device keys end up on the server
// for users to encrypt to; an MSC4190 bridge started again finds its
// device (200, not 201) and keys.
//
// Not in appservice-mode encryption (MSC2409/MSC3202, which
// internal/e2eappservice covers): mautrix v0.26.0 registers its device
// list handler after its event processor starts, a data race the race
// detector reports when the server's first transaction comes quickly.
func TestBridgev2Encryption(t *testing.T) {
	for _, tc := range []struct {
		name       string
		encryption bridgeconfig.EncryptionConfig
	}{
		{"appservice login", bridgeconfig.EncryptionConfig{Allow: true, Default: true}},
		{"MSC4190", bridgeconfig.EncryptionConfig{Allow: true, Default: true, MSC4190: true, SelfSign: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
			defer cancel()
			asURL, serveAS := listenAppService(t)
			tmp, err := os.MkdirTemp("", "e2ebridgev2-")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = os.RemoveAll(tmp) })
			cfg := bridgeConfig(asURL, tmp, 10, 10)
			cfg.Encryption = tc.encryption
			cfg.Encryption.PickleKey = "e2ebridgev2 pickle key"
			reg := cfg.GenerateRegistration()
			regPath := filepath.Join(tmp, "registration.yaml")
			if err := reg.Save(regPath); err != nil {
				t.Fatal(err)
			}
			srv := testserver.Start(t, testserver.Options{Args: []string{"--appservice", regPath,
				"--enable-registration", "--disable-rate-limits"}})
			cfg.Homeserver.Address = srv.URL
			alice := srv.Register(t, &mautrix.ReqRegister[any]{Username: "alice", Password: "correct horse battery"})
			bot := id.NewUserID(cfg.AppService.Bot.Username, "localhost")

			br, _, logs := startBridge(ctx, t, cfg, newTestNetwork(1), serveAS)
			device := botDevice(ctx, t, alice, bot)
			if tc.encryption.MSC4190 {
				if got := serverRequests(t, srv.Logs(), devicesRoute); len(got) != 1 || got[0] != http.StatusCreated {
					t.Fatalf("PUT /devices/{deviceId} answered %v, want one 201", got)
				}
				keys, err := alice.QueryKeys(ctx, &mautrix.ReqQueryKeys{DeviceKeys: mautrix.DeviceKeysRequest{bot: {}}})
				if err != nil || keys.MasterKeys[bot].Keys == nil || keys.SelfSigningKeys[bot].Keys == nil {
					t.Fatalf("the bot's cross-signing keys: %v %+v", err, keys)
				}
				// Started again, the bridge finds its device and keys.
				stopBridge(br)
				startBridge(ctx, t, cfg, newTestNetwork(1), serveAS)
				if got := serverRequests(t, srv.Logs(), devicesRoute); len(got) != 2 || got[1] != http.StatusOK {
					t.Fatalf("PUT /devices/{deviceId} answered %v, want 201 then 200", got)
				}
				if again := botDevice(ctx, t, alice, bot); again != device {
					t.Fatalf("the bot's device is %s after a restart, was %s", again, device)
				}
			}
			if errs := logs.errorLines(); len(errs) > 0 {
				t.Fatalf("the bridge logged errors: %v", errs)
			}
		})
	}
}

// botDevice is the one device of the bridge bot that has keys on the
// server, as a user querying keys sees it.
func botDevice(ctx context.Context, t *testing.T, cli *mautrix.Client, bot id.UserID) id.DeviceID {
	t.Helper()
	keys, err := cli.QueryKeys(ctx, &mautrix.ReqQueryKeys{DeviceKeys: mautrix.DeviceKeysRequest{bot: {}}})
	if err != nil {
		t.Fatalf("query the bot's keys: %v", err)
	}
	devs := keys.DeviceKeys[bot]
	if len(devs) != 1 {
		t.Fatalf("the bot has %d devices with keys, want 1: %+v", len(devs), keys)
	}
	for d, k := range devs {
		if k.Keys.GetEd25519(d) == "" || k.Keys.GetCurve25519(d) == "" {
			t.Fatalf("the bot's device %s lacks identity keys: %+v", d, k)
		}
		return d
	}
	return ""
}
