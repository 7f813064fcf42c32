package e2eirc

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/bridges/irc"
	"github.com/tributary-hs/tributary/bridges/irc/ircconn"
	"github.com/tributary-hs/tributary/internal/irctest"
)

// BenchmarkIRCBridge measures the bridge between a Matrix client and a
// plain IRC client in a bridged channel, everything real on loopback
// (tributary, the bridge over the appservice API, InspIRCd):
//
//   - matrix-to-irc: a Matrix message sent (PUT /send) until the IRC
//     client reads the line; ns/op is the latency.
//   - irc-to-matrix: an IRC line sent until the Matrix client's /sync has
//     the message; ns/op is the latency.
//   - *-burst: b.N messages sent back to back, until the last arrives;
//     msgs/s is the throughput.
func BenchmarkIRCBridge(b *testing.B) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	e := startEnv(b)
	const channel = "#bench"
	bob := dialIRC(b, e.ircAdr, "bob")
	bob.join(channel)
	aliceMX := e.srv.Register(b, &mautrix.ReqRegister[any]{Username: "alice", Password: "correct horse battery"})
	w := newWatcher(b, aliceMX, e.logs)
	login, _ := e.login(ctx, aliceMX.UserID, "alice")
	if err := login.Client.(*irc.Client).JoinChannel(ctx, channel, ""); err != nil {
		b.Fatal(err)
	}
	roomID := w.waitInvite(ctx)
	if _, err := aliceMX.JoinRoomByID(ctx, roomID); err != nil {
		b.Fatal(err)
	}
	// Ready once a first message has crossed each way.
	bob.say(channel, "warm up")
	w.waitMessage(ctx, roomID, "warm up")
	if _, err := aliceMX.SendText(ctx, roomID, "warm up too"); err != nil {
		b.Fatal(err)
	}
	bob.awaitFrom("PRIVMSG", channel, "alice")
	benchBridge(ctx, b, aliceMX, w, roomID, bob, channel)
}

// BenchmarkIRCPlugin is BenchmarkIRCBridge through the plugin path: the
// real tributary-irc plugin binary, launched by tributary, its events over
// the plugin's gRPC stream instead of appservice transactions.
func BenchmarkIRCPlugin(b *testing.B) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	const channel = "#bench"
	var bob *ircUser
	p := startPluginSetup(ctx, b, irctest.Options{}, func(irc *irctest.Server) {
		bob = dialIRC(b, irc.Addr, "bob")
		bob.join(channel)
	})
	roomID := p.loginAndJoin(ctx, b, channel)
	bob.say(channel, "warm up")
	p.w.waitMessage(ctx, roomID, "warm up")
	if _, err := p.alice.SendText(ctx, roomID, "warm up too"); err != nil {
		b.Fatal(err)
	}
	bob.awaitFrom("PRIVMSG", channel, "alice")
	benchBridge(ctx, b, p.alice, p.w, roomID, bob, channel)
}

// benchBridge runs the latency and burst sub-benchmarks between alice on
// Matrix and bob on IRC in a bridged channel.
func benchBridge(ctx context.Context, b *testing.B, aliceMX *mautrix.Client, w *watcher, roomID id.RoomID, bob *ircUser, channel string) {
	seq := 0
	next := func() string { seq++; return "bench message " + strconv.Itoa(seq) }

	b.Run("matrix-to-irc", func(b *testing.B) {
		for b.Loop() {
			text := next()
			if _, err := aliceMX.SendText(ctx, roomID, text); err != nil {
				b.Fatal(err)
			}
			if m := bob.awaitFrom("PRIVMSG", channel, "alice"); m.Trailing() != text {
				b.Fatalf("got %q, want %q", m.Trailing(), text)
			}
		}
	})
	b.Run("irc-to-matrix", func(b *testing.B) {
		for b.Loop() {
			text := next()
			bob.say(channel, text)
			waitBody(ctx, b, w, roomID, text)
		}
	})
	b.Run("matrix-to-irc-burst", func(b *testing.B) {
		start := time.Now()
		var last string
		for range b.N {
			last = next()
			if _, err := aliceMX.SendText(ctx, roomID, last); err != nil {
				b.Fatal(err)
			}
		}
		for {
			if m := bob.awaitFrom("PRIVMSG", channel, "alice"); m.Trailing() == last {
				break
			}
		}
		b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
	})
	b.Run("irc-to-matrix-burst", func(b *testing.B) {
		start := time.Now()
		var last string
		for range b.N {
			last = next()
			bob.send(ircconn.NewMessage("PRIVMSG", channel, last))
		}
		waitBody(ctx, b, w, roomID, last)
		b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
	})
}

// waitBody syncs until the room has a message with the body; unlike
// watcher.wait it only looks at what each sync brings.
func waitBody(ctx context.Context, b *testing.B, w *watcher, roomID id.RoomID, body string) {
	b.Helper()
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for {
		from := len(w.seen[roomID])
		w.next(ctx)
		for _, evt := range w.seen[roomID][from:] {
			if evt.Type == event.EventMessage && strings.EqualFold(evt.Content.AsMessage().Body, body) {
				return
			}
		}
		if ctx.Err() != nil {
			b.Fatalf("waiting for %q: %v; bridge errors: %v", body, ctx.Err(), w.logs.errorLines())
		}
	}
}
