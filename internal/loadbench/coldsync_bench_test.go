package loadbench

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tributary-hs/tributary/internal/pgtest"
	"github.com/tributary-hs/tributary/internal/testserver"
	"github.com/tributary-hs/tributary/storage"
	"github.com/tributary-hs/tributary/storage/postgres"
	"github.com/tributary-hs/tributary/storage/sqlite"
	"github.com/tributary-hs/tributary/storage/storagetest"
)

// BenchmarkFirstSync is issue 14's first sync of a big account on a server
// holding ~520,000 state group entries, on each database: "cold500" is the
// first /sync of a user in 500 rooms (10 messages each) right after the
// server started, with nothing cached (goal < 1 s); "warm10" an initial
// /sync of a user in 10 rooms, repeated on a running server (goal < 10
// ms). Each reports the wall time and the server's CPU time per sync (on
// a busy machine the second says more).
//
// The two users' rooms are made over HTTP. The rest of the server's state,
// 60 rooms of 1,000 members that join one after the other (a snapshot every
// 64 joins, deltas between, as core/rooms writes them) and 1,000 messages
// each, is written into the stopped server's database through the storage
// layer (storagetest.FillRooms): made over HTTP it would take many minutes.
// Those rooms' events are not signed PDUs; neither user is in them, so the
// server never reads them but as the rows every query of the state tables
// must not wade through.
func BenchmarkFirstSync(b *testing.B) {
	for _, db := range []string{"sqlite", "postgres"} {
		b.Run(db, func(b *testing.B) {
			args := []string{"--enable-registration", "--disable-rate-limits"}
			var dsn string
			if db == "postgres" {
				dsn = pgtest.URL(b)
				args = append(args, "--database-url", dsn)
			}
			srv := testserver.Start(b, testserver.Options{Args: args})
			if dsn == "" {
				dsn = filepath.Join(srv.DataDir, "tributary.db")
			}
			t0 := time.Now()
			busy := userInRooms(b, srv, "busy", 500, 10)
			light := userInRooms(b, srv, "light", 10, 10)
			b.Logf("two users in 510 rooms after %v", time.Since(t0).Round(time.Second))
			srv.Stop()

			t0 = time.Now()
			fill(b, db, dsn, 60, 1000)
			b.Logf("60 rooms of 1,000 members written in %v", time.Since(t0).Round(time.Second))

			b.Run("cold500", func(b *testing.B) {
				var total, cpu time.Duration
				n := 0
				for b.Loop() {
					b.StopTimer()
					opts := srv.Opts
					prof := profileFile(b, db, n)
					if prof != "" {
						opts.Env = append(append([]string(nil), opts.Env...), "TRIBUTARY_PPROF_ADDR="+pprofAddr)
					}
					srv = testserver.Start(b, opts)
					done := profile(b, prof)
					b.StartTimer()
					start, cpu0 := time.Now(), processCPU(b, srv.Pid())
					initialSync(b, srv, busy, 500)
					total += time.Since(start)
					cpu += processCPU(b, srv.Pid()) - cpu0
					b.StopTimer()
					<-done
					b.StartTimer()
					n++
					b.StopTimer()
					srv.Stop()
					b.StartTimer()
				}
				b.ReportMetric(float64(total.Microseconds())/1000/float64(n), "ms/sync")
				b.ReportMetric(float64(cpu.Microseconds())/1000/float64(n), "server-CPU-ms/sync")
			})
			b.Run("warm10", func(b *testing.B) {
				opts := srv.Opts
				prof := profileFile(b, db+"-warm", 0)
				if prof != "" {
					opts.Env = append(append([]string(nil), opts.Env...), "TRIBUTARY_PPROF_ADDR="+pprofAddr)
				}
				srv = testserver.Start(b, opts)
				initialSync(b, srv, light, 10)
				done := profile(b, prof)
				defer func() { <-done }()
				start, cpu0 := time.Now(), processCPU(b, srv.Pid())
				n := 0
				for b.Loop() {
					initialSync(b, srv, light, 10)
					n++
				}
				b.ReportMetric(float64(time.Since(start).Microseconds())/1000/float64(n), "ms/sync")
				b.ReportMetric(float64((processCPU(b, srv.Pid())-cpu0).Microseconds())/1000/float64(n), "server-CPU-ms/sync")
			})
		})
	}
}

// pprofAddr is where a benchmarked server serves pprof; TRIBUTARY_BENCH_PPROF_ADDR
// moves it when several benchmarks run on one machine.
var pprofAddr = cmp.Or(os.Getenv("TRIBUTARY_BENCH_PPROF_ADDR"), "127.0.0.1:16061")

// profileFile is where to write the CPU profile of cold sync n:
// TRIBUTARY_BENCH_PROFILE names a directory for them.
func profileFile(b *testing.B, db string, n int) string {
	dir := os.Getenv("TRIBUTARY_BENCH_PROFILE")
	if dir == "" {
		return ""
	}
	return filepath.Join(dir, fmt.Sprintf("firstsync-%s-%d.pprof", db, n))
}

// profile records 4 s of the server's CPU into file ("" for none).
func profile(b *testing.B, file string) <-chan struct{} {
	done := make(chan struct{})
	if file == "" {
		close(done)
		return done
	}
	ready := make(chan struct{})
	go func() {
		defer close(done)
		close(ready)
		resp, err := http.Get("http://" + pprofAddr + "/debug/pprof/profile?seconds=4")
		if err != nil {
			b.Error(err)
			return
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		if err := os.WriteFile(file, raw, 0o644); err != nil {
			b.Error(err)
		}
	}()
	<-ready
	time.Sleep(50 * time.Millisecond) // the profile starts with the request
	return done
}

// userInRooms registers a user who creates rooms rooms and sends messages
// messages to each, and returns its access token.
func userInRooms(b *testing.B, srv *testserver.Server, name string, rooms, messages int) string {
	code, body, err := call("POST", srv.URL+"/_matrix/client/v3/register", "", map[string]any{
		"username": name, "password": "benchmark-password", "auth": map[string]any{"type": "m.login.dummy"}})
	if err != nil || code != 200 {
		b.Fatalf("register: %d %v", code, err)
	}
	tok := body["access_token"].(string)
	base := srv.URL + "/_matrix/client/v3"
	var next atomic.Int64
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for {
				r := next.Add(1)
				if r > int64(rooms) {
					return
				}
				code, body, err := call("POST", base+"/createRoom", tok, map[string]any{"preset": "private_chat",
					"name": fmt.Sprintf("room %d", r)})
				if err != nil || code != 200 {
					b.Errorf("createRoom: %d %v", code, err)
					return
				}
				rid := url.PathEscape(body["room_id"].(string))
				for m := range messages {
					if code, _, err := call("PUT", base+"/rooms/"+rid+fmt.Sprintf("/send/m.room.message/r%dm%d", r, m), tok,
						map[string]any{"msgtype": "m.text", "body": "filler"}); err != nil || code != 200 {
						b.Errorf("send: %d %v", code, err)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	if b.Failed() {
		b.FailNow()
	}
	return tok
}

// fill writes rooms rooms of members members into the database at dsn.
func fill(b *testing.B, db, dsn string, rooms, members int) {
	ctx := context.Background()
	var s storage.Store
	var err error
	if db == "postgres" {
		s, err = postgres.Open(ctx, dsn)
	} else {
		s, err = sqlite.Open(ctx, dsn)
	}
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	if _, err := storagetest.FillRooms(ctx, s, "localhost", "fill", rooms, members); err != nil {
		b.Fatal(err)
	}
}

// slowClient waits for answers as long as a slow server takes to give
// them (the first sync took minutes before issue 14).
var slowClient = &http.Client{Transport: httpClient.Transport}

// initialSync runs a /sync without a since token and checks its rooms.
func initialSync(b *testing.B, srv *testserver.Server, tok string, rooms int) {
	req, _ := http.NewRequest("GET", srv.URL+"/_matrix/client/v3/sync?timeout=0", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := slowClient.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || resp.StatusCode != 200 {
		b.Fatalf("sync: %d %v", resp.StatusCode, err)
	}
	if join := body["rooms"].(map[string]any)["join"].(map[string]any); len(join) != rooms {
		b.Fatalf("initial sync has %d rooms, want %d", len(join), rooms)
	}
}
