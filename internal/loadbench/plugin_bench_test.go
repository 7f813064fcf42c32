package loadbench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/internal/testserver"
	"github.com/tributary-hs/tributary/plugins/plugintest"
	"github.com/tributary-hs/tributary/plugins/plugintest/fakenet"
)

// A bridge plugin under load: the fake network's bridgev2 connector run by
// sdk.Serve (plugins/plugintest/fakebridge), a user logged in through its
// bot, one portal with a ghost.

const benchBot = id.UserID("@fakenetbot:localhost")

type pluginBench struct {
	net    *fakenet.Network
	alice  *mautrix.Client
	portal id.RoomID
	since  string
}

func startPluginBench(b *testing.B) *pluginBench {
	b.Helper()
	net, err := fakenet.New()
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(net.Close)
	net.AddUser("alice", "Alice", "alice-password")
	net.AddUser("bob", "Bob", "bob-password")
	net.AddChat("bench", "Bench", "", "alice", "bob")
	bin, err := plugintest.BuildInto(b.TempDir(), "github.com/tributary-hs/tributary/plugins/plugintest/fakebridge")
	if err != nil {
		b.Fatal(err)
	}
	cfg := filepath.Join(b.TempDir(), "tributary.yaml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(`plugins:
  - name: fakenet
    binary: %q
    ghost_prefix: fakenet_
    bot_localpart: fakenetbot
    config:
      network: {address: %q}
`, bin, net.URL())), 0o600); err != nil {
		b.Fatal(err)
	}
	srv := testserver.Start(b, testserver.Options{Args: []string{"--config", cfg, "--enable-registration",
		"--disable-rate-limits"}})
	pb := &pluginBench{net: net}
	pb.alice = srv.Register(b, &mautrix.ReqRegister[any]{Username: "alice", Password: "benchmark-password"})
	ctx := context.Background()
	deadline := time.Now().Add(time.Minute)
	for {
		if _, err := pb.alice.GetProfile(ctx, benchBot); err == nil {
			break
		} else if time.Now().After(deadline) {
			b.Fatalf("the plugin's bot never appeared: %v", err)
		}
		time.Sleep(20 * time.Millisecond) // polling a condition
	}
	mgmt, err := pb.alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "trusted_private_chat", IsDirect: true,
		Invite: []id.UserID{benchBot}})
	if err != nil {
		b.Fatal(err)
	}
	pb.waitEvent(b, func(ev *event.Event) bool {
		return ev.Sender == benchBot && strings.Contains(msgBody(ev), "management room")
	})
	for _, step := range [][2]string{{"login", "Username"}, {"alice", "Password"}, {"alice-password", "Logged in"}} {
		if _, err := pb.alice.SendText(ctx, mgmt.RoomID, step[0]); err != nil {
			b.Fatal(err)
		}
		pb.waitEvent(b, func(ev *event.Event) bool { return ev.Sender == benchBot && strings.Contains(msgBody(ev), step[1]) })
	}
	// The portal is ready once the ghost is in it.
	pb.waitEvent(b, func(ev *event.Event) bool {
		if ev.Type == event.StateMember && ev.GetStateKey() == "@fakenet_bob:localhost" &&
			ev.Content.AsMember().Membership == event.MembershipJoin {
			pb.portal = ev.RoomID
			return true
		}
		return false
	})
	return pb
}

func msgBody(ev *event.Event) string {
	if m, ok := ev.Content.Parsed.(*event.MessageEventContent); ok {
		return m.Body
	}
	return ""
}

// waitEvent long-polls alice's /sync until an event matches.
func (pb *pluginBench) waitEvent(b *testing.B, match func(*event.Event) bool) {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for {
		resp, err := pb.alice.SyncRequest(ctx, 30_000, pb.since, "", false, event.PresenceOnline)
		if err != nil {
			b.Fatalf("sync: %v", err)
		}
		pb.since = resp.NextBatch
		found := false
		for roomID, room := range resp.Rooms.Join {
			for _, ev := range append(room.State.Events, room.Timeline.Events...) {
				ev.RoomID = roomID
				_ = ev.Content.ParseRaw(ev.Type)
				if !found && match(ev) {
					found = true
				}
			}
		}
		if found {
			return
		}
	}
}

func reportLatency(b *testing.B, lat []time.Duration) {
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
}

// BenchmarkPluginMatrixToNetwork: a Matrix user's message until the
// network has it (client send → host queue → gRPC stream → bridgev2 →
// connector → network), one at a time.
func BenchmarkPluginMatrixToNetwork(b *testing.B) {
	pb := startPluginBench(b)
	ctx := context.Background()
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := range b.N {
		text := fmt.Sprintf("m2n %d", i)
		t0 := time.Now()
		if _, err := pb.alice.SendText(ctx, pb.portal, text); err != nil {
			b.Fatal(err)
		}
		for e := range pb.net.Actions() {
			if e.Type == "message" && e.Message.Text == text {
				break
			}
		}
		lat = append(lat, time.Since(t0))
	}
	b.StopTimer()
	reportLatency(b, lat)
}

// BenchmarkPluginNetworkToMatrix: a network message until the Matrix user's
// /sync has it (connector → bridgev2 → MatrixHost gRPC → core → sync), one
// at a time.
func BenchmarkPluginNetworkToMatrix(b *testing.B) {
	pb := startPluginBench(b)
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := range b.N {
		text := fmt.Sprintf("n2m %d", i)
		t0 := time.Now()
		pb.net.Post("bench", "bob", text)
		pb.waitEvent(b, func(ev *event.Event) bool { return ev.RoomID == pb.portal && msgBody(ev) == text })
		lat = append(lat, time.Since(t0))
	}
	b.StopTimer()
	reportLatency(b, lat)
}

// BenchmarkPluginThroughput: messages per second through the bridge, each
// way: b.N messages sent back to back, until the last one arrives.
func BenchmarkPluginThroughput(b *testing.B) {
	b.Run("matrix-to-network", func(b *testing.B) {
		pb := startPluginBench(b)
		ctx := context.Background()
		b.ResetTimer()
		start := time.Now()
		for i := range b.N {
			if _, err := pb.alice.SendText(ctx, pb.portal, fmt.Sprintf("burst %d", i)); err != nil {
				b.Fatal(err)
			}
		}
		last := fmt.Sprintf("burst %d", b.N-1)
		for e := range pb.net.Actions() {
			if e.Type == "message" && e.Message.Text == last {
				break
			}
		}
		b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
	})
	b.Run("network-to-matrix", func(b *testing.B) {
		pb := startPluginBench(b)
		b.ResetTimer()
		start := time.Now()
		for i := range b.N {
			pb.net.Post("bench", "bob", fmt.Sprintf("burst %d", i))
		}
		last := fmt.Sprintf("burst %d", b.N-1)
		pb.waitEvent(b, func(ev *event.Event) bool { return ev.RoomID == pb.portal && msgBody(ev) == last })
		b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
	})
}
