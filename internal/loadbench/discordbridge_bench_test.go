package loadbench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/internal/fakediscord"
	"github.com/tributary-hs/tributary/internal/testserver"
	"github.com/tributary-hs/tributary/plugins/plugintest"
)

// BenchmarkDiscordBridge: the tributary-discord plugin in front of a fake
// Discord (internal/fakediscord), a bot logged in, one channel's portal.
// Discord→Matrix is a gateway MESSAGE_CREATE until alice's /sync has the
// ghost's message; Matrix→Discord a message alice sends until the fake's
// webhook receives it.
func BenchmarkDiscordBridge(b *testing.B) {
	const token = "bench-token"
	fake := fakediscord.New(b, token)
	bin, err := plugintest.BuildInto(b.TempDir(), "github.com/tributary-hs/tributary/bridges/discord/cmd/tributary-discord")
	if err != nil {
		b.Fatal(err)
	}
	cfg := filepath.Join(b.TempDir(), "tributary.yaml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(`plugins:
  - name: discord
    binary: %q
    ghost_prefix: discord_
    bot_localpart: discordbot
    config:
      network: {api_url: %q}
`, bin, fake.URL())), 0o600); err != nil {
		b.Fatal(err)
	}
	srv := testserver.Start(b, testserver.Options{Args: []string{"--config", cfg, "--enable-registration", "--disable-rate-limits"}})
	alice := srv.Register(b, &mautrix.ReqRegister[any]{Username: "alice", Password: "benchmark-password"})
	const bot = id.UserID("@discordbot:localhost")
	ctx := context.Background()
	ds := &discordSync{b: b, cli: alice}
	deadline := time.Now().Add(time.Minute)
	for {
		if _, err := alice.GetProfile(ctx, bot); err == nil {
			break
		} else if time.Now().After(deadline) {
			b.Fatalf("the plugin's bot never appeared: %v", err)
		}
		time.Sleep(20 * time.Millisecond) // polling a condition
	}
	mgmt, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "trusted_private_chat", IsDirect: true, Invite: []id.UserID{bot}})
	if err != nil {
		b.Fatal(err)
	}
	ds.until(func(ev *event.Event) bool {
		return ev.Sender == bot && strings.Contains(msgBody(ev), "management room")
	})
	// The token goes with the command: bridgev2 prompts for it before it
	// is ready for the answer.
	for _, step := range [][2]string{{"login bot " + token, "Logged in"}} {
		if _, err := alice.SendText(ctx, mgmt.RoomID, step[0]); err != nil {
			b.Fatal(err)
		}
		ds.until(func(ev *event.Event) bool { return ev.Sender == bot && strings.Contains(msgBody(ev), step[1]) })
	}
	fake.Message("warm-up", nil)
	var portal id.RoomID
	ds.until(func(ev *event.Event) bool {
		if msgBody(ev) == "warm-up" {
			portal = ev.RoomID
			return true
		}
		return false
	})

	b.Run("discord-to-matrix", func(b *testing.B) {
		lat := make([]time.Duration, 0, b.N)
		for i := range b.N {
			text := fmt.Sprintf("from discord %d", i)
			start := time.Now()
			fake.Message(text, nil)
			ds.until(func(ev *event.Event) bool { return msgBody(ev) == text })
			lat = append(lat, time.Since(start))
		}
		reportLatency(b, lat)
	})
	b.Run("matrix-to-discord", func(b *testing.B) {
		lat := make([]time.Duration, 0, b.N)
		for i := range b.N {
			text := fmt.Sprintf("from matrix %d", i)
			start := time.Now()
			if _, err := alice.SendText(ctx, portal, text); err != nil {
				b.Fatal(err)
			}
			fake.Await("the webhook post", func(c fakediscord.Call) bool { return c.JSON["content"] == text })
			lat = append(lat, time.Since(start))
		}
		reportLatency(b, lat)
	})
}

// discordSync long-polls a user's /sync, joining the rooms it is invited
// to and the children of the spaces it is in.
type discordSync struct {
	b     *testing.B
	cli   *mautrix.Client
	since string
}

func (ds *discordSync) until(match func(*event.Event) bool) {
	ds.b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for {
		resp, err := ds.cli.SyncRequest(ctx, 30_000, ds.since, "", false, event.PresenceOnline)
		if err != nil {
			ds.b.Fatalf("sync: %v", err)
		}
		ds.since = resp.NextBatch
		for roomID := range resp.Rooms.Invite {
			if _, err := ds.cli.JoinRoomByID(ctx, roomID); err != nil {
				ds.b.Fatal(err)
			}
		}
		found := false
		for roomID, room := range resp.Rooms.Join {
			for _, ev := range append(room.State.Events, room.Timeline.Events...) {
				ev.RoomID = roomID
				_ = ev.Content.ParseRaw(ev.Type)
				if !found && match(ev) {
					found = true
				}
				// The plugin invites to a guild's space only: its channels'
				// rooms are joined from there.
				if ev.Type == event.StateSpaceChild && len(ev.Content.Raw) > 0 {
					if _, err := ds.cli.JoinRoomByID(ctx, id.RoomID(ev.GetStateKey())); err != nil {
						ds.b.Fatal(err)
					}
				}
			}
		}
		if found {
			return
		}
	}
}
