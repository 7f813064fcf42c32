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

	"github.com/tributary-hs/tributary/internal/slackfake"
	"github.com/tributary-hs/tributary/internal/testserver"
	"github.com/tributary-hs/tributary/plugins/plugintest"
)

const slackBenchBot = id.UserID("@slackbot:localhost")

// BenchmarkSlackBridge measures the Slack plugin's latency against the
// fake Slack (internal/slackfake), one message at a time:
//   - slack_to_matrix: a Slack message's event on the Socket Mode
//     connection until a Matrix /sync long-poll has it;
//   - matrix_to_slack: a Matrix client's send until Slack has the
//     chat.postMessage.
//
// The real tributary runs the real tributary-slack binary; alice is logged
// in with a user token (puppeting), one channel.
func BenchmarkSlackBridge(b *testing.B) {
	fake := slackfake.New()
	b.Cleanup(fake.Close)
	token := fake.AddUser("U0ALICE", "alice", "Alice")
	fake.AddUser("U0BOB", "bob", "Bob")
	const channel = "C0BENCH"
	fake.AddChannel(slackfake.Channel{ID: channel, Name: "bench", Kind: "channel",
		Members: []string{slackfake.BotUserID, "U0ALICE", "U0BOB"}})
	bin, err := plugintest.BuildInto(b.TempDir(), "github.com/tributary-hs/tributary/bridges/slack/cmd/tributary-slack")
	if err != nil {
		b.Fatal(err)
	}
	cfg := filepath.Join(b.TempDir(), "tributary.yaml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(`plugins:
  - name: slack
    binary: %q
    ghost_prefix: slack_
    bot_localpart: slackbot
    config:
      network: {api_url: %q}
`, bin, fake.APIURL())), 0o600); err != nil {
		b.Fatal(err)
	}
	srv := testserver.Start(b, testserver.Options{Args: []string{"--config", cfg, "--enable-registration",
		"--disable-rate-limits"}})
	pb := &pluginBench{}
	pb.alice = srv.Register(b, &mautrix.ReqRegister[any]{Username: "alice", Password: "benchmark-password"})
	ctx := context.Background()
	deadline := time.Now().Add(time.Minute)
	for {
		if _, err := pb.alice.GetProfile(ctx, slackBenchBot); err == nil {
			break
		} else if time.Now().After(deadline) {
			b.Fatalf("the plugin's bot never appeared: %v", err)
		}
		time.Sleep(20 * time.Millisecond) // polling a condition
	}
	mgmt, err := pb.alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "trusted_private_chat", IsDirect: true,
		Invite: []id.UserID{slackBenchBot}})
	if err != nil {
		b.Fatal(err)
	}
	pb.waitEvent(b, func(ev *event.Event) bool {
		return ev.Sender == slackBenchBot && strings.Contains(msgBody(ev), "management room")
	})
	// The tokens go with the command: bridgev2 prompts for each before it
	// is ready for the answer, which a fast client can beat.
	if _, err := pb.alice.SendText(ctx, mgmt.RoomID, "login user "+token+" "+slackfake.AppToken); err != nil {
		b.Fatal(err)
	}
	pb.waitEvent(b, func(ev *event.Event) bool {
		return ev.Sender == slackBenchBot && strings.Contains(msgBody(ev), "Logged in")
	})
	waitSocket(b, fake)
	// The first message makes the portal (alice's double puppet is joined).
	fake.Say(channel, "U0BOB", "portal please", "")
	pb.waitEvent(b, func(ev *event.Event) bool {
		if msgBody(ev) == "portal please" {
			pb.portal = ev.RoomID
			return true
		}
		return false
	})

	b.Run("slack_to_matrix", func(b *testing.B) {
		lat := make([]time.Duration, 0, b.N)
		for i := range b.N {
			text := fmt.Sprintf("s2m %d", i)
			t0 := time.Now()
			fake.Say(channel, "U0BOB", text, "")
			pb.waitEvent(b, func(ev *event.Event) bool { return msgBody(ev) == text })
			lat = append(lat, time.Since(t0))
		}
		reportLatency(b, lat)
	})
	b.Run("matrix_to_slack", func(b *testing.B) {
		lat := make([]time.Duration, 0, b.N)
		seen := len(fake.Calls())
		for i := range b.N {
			text := fmt.Sprintf("m2s %d", i)
			t0 := time.Now()
			if _, err := pb.alice.SendText(ctx, pb.portal, text); err != nil {
				b.Fatal(err)
			}
			seen = waitPosted(b, fake, seen, text)
			lat = append(lat, time.Since(t0))
		}
		reportLatency(b, lat)
	})
}

// waitPosted waits for the chat.postMessage of text among the calls after
// the first seen; it returns how many calls it has looked at.
func waitPosted(b *testing.B, fake *slackfake.Server, seen int, text string) int {
	b.Helper()
	timeout := time.After(time.Minute)
	for {
		changed := fake.Changed()
		calls := fake.Calls()
		for ; seen < len(calls); seen++ {
			if c := calls[seen]; c.Method == "chat.postMessage" && c.Args.Get("text") == text {
				return seen + 1
			}
		}
		select {
		case <-changed:
		case <-timeout:
			b.Fatalf("Slack never got %q", text)
		}
	}
}

func waitSocket(b *testing.B, fake *slackfake.Server) {
	b.Helper()
	timeout := time.After(time.Minute)
	for {
		changed := fake.Changed()
		if fake.Sockets() > 0 {
			return
		}
		select {
		case <-changed:
		case <-timeout:
			b.Fatal("the plugin never opened Socket Mode")
		}
	}
}
