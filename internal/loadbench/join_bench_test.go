package loadbench

import (
	"context"
	"fmt"
	"net/http/httptest"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/appservice"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/internal/pgtest"
	"github.com/tributary-hs/tributary/internal/testserver"
)

// BenchmarkJoin10k measures a bridge filling a room: 10,000 ghost users of
// an appservice join one public room, each join its own request through the
// client API as the appservice masquerading as the ghost (mautrix's
// IntentAPI, as a bridge does it), from 16 concurrent workers. The ghosts are
// registered before the clock starts; the appservice is mautrix's own
// transaction handler, so the joins are also delivered to it. Every join is a
// state event of a room whose state grows to 10k members: the room's state
// snapshots (a full one every few dozen state events) and current state rows
// dominate what is written. Each iteration fills a new room.
func BenchmarkJoin10k(b *testing.B) {
	const (
		ghosts  = 10_000
		workers = 16
	)
	for _, db := range []string{"sqlite", "postgres"} {
		b.Run(db, func(b *testing.B) {
			as := appservice.Create()
			as.HomeserverDomain = "localhost"
			as.Registration = &appservice.Registration{ID: "bench", AppToken: benchASToken,
				ServerToken: "bench-hs-token-0123456789", SenderLocalpart: "benchbot"}
			// mautrix's NewMemoryStateStore leaves JoinRules nil: the
			// transaction with the room's join rules would panic.
			store := mautrix.NewMemoryStateStore().(*mautrix.MemoryStateStore)
			store.JoinRules = map[id.RoomID]*event.JoinRulesEventContent{}
			as.StateStore = store
			// Closed after the server stops (cleanups run last in, first
			// out), so that no delivery is in flight.
			asSrv := httptest.NewServer(as.Router)
			b.Cleanup(asSrv.Close)
			done := make(chan struct{})
			b.Cleanup(func() { close(done) })
			go func() {
				for {
					select {
					case <-as.Events:
					case <-done:
						return
					}
				}
			}()
			args := []string{"--appservice", writeRegistration(b, asSrv.URL), "--disable-rate-limits"}
			if db == "postgres" {
				args = append(args, "--database-url", pgtest.URL(b))
			}
			srv := testserver.Start(b, testserver.Options{Args: args})
			if err := as.SetHomeserverURL(srv.URL); err != nil {
				b.Fatal(err)
			}
			// Keep-alive connections for all the workers (the default
			// transport keeps two per host).
			as.HTTPClient.Transport = httpClient.Transport
			as.DefaultHTTPRetries = 0
			ctx := context.Background()

			intents := make([]*appservice.IntentAPI, ghosts)
			for i := range intents {
				intents[i] = as.Intent(id.UserID(fmt.Sprintf("@_bench_g%05d:localhost", i)))
			}
			// parallel runs fn for every ghost on the workers and returns
			// the latency of each call.
			parallel := func(what string, fn func(*appservice.IntentAPI) error) []time.Duration {
				var next atomic.Int64
				var mu sync.Mutex
				lat := make([]time.Duration, 0, ghosts)
				var wg sync.WaitGroup
				for range workers {
					wg.Go(func() {
						for {
							i := next.Add(1) - 1
							if i >= ghosts {
								return
							}
							t0 := time.Now()
							if err := fn(intents[i]); err != nil {
								b.Errorf("%s %s: %v", what, intents[i].UserID, err)
								return
							}
							d := time.Since(t0)
							mu.Lock()
							lat = append(lat, d)
							mu.Unlock()
						}
					})
				}
				wg.Wait()
				if b.Failed() {
					b.FailNow()
				}
				return lat
			}
			parallel("register", func(in *appservice.IntentAPI) error { return in.Register(ctx) })

			var lat []time.Duration
			var elapsed time.Duration
			b.ResetTimer()
			for range b.N {
				b.StopTimer()
				room, err := as.BotIntent().CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat"})
				if err != nil {
					b.Fatalf("createRoom: %v", err)
				}
				b.StartTimer()
				start := time.Now()
				lat = append(lat, parallel("join", func(in *appservice.IntentAPI) error {
					_, err := in.JoinRoomByID(ctx, room.RoomID)
					return err
				})...)
				elapsed += time.Since(start)
			}
			b.StopTimer()
			slices.Sort(lat)
			b.ReportMetric(float64(len(lat))/elapsed.Seconds(), "joins/s")
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
		})
	}
}
