package loadbench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tributary-hs/tributary/internal/pgtest"
	"github.com/tributary-hs/tributary/internal/testserver"
)

// BenchmarkSyncDelivery measures how long a message takes from the start of
// its send to its arrival in the long-polls of 100 clients in the room, on
// each database, and the CPU the server spent per message (user and
// system, which a loaded machine does not inflate as it does latency). On
// PostgreSQL it also reports the CPU of the server's PostgreSQL sessions
// per message, and the sessions the server opened in its life (setup
// included): a pool that keeps its connections opens no more than its size.
func BenchmarkSyncDelivery(b *testing.B) {
	for _, db := range []string{"sqlite", "postgres"} {
		b.Run(db, func(b *testing.B) {
			var dsn string
			var extra []string
			if db == "postgres" {
				dsn = pgtest.URL(b)
				extra = []string{"--database-url", dsn}
			}
			sessions0 := pgSessions(b, dsn)
			srv := syncDelivery(b, dsn, extra...)
			if dsn != "" {
				srv.Stop()
				// The monitoring connections (the first count's, and
				// pgBackendsCPU's two) are three more.
				b.ReportMetric(float64(pgSessions(b, dsn)-sessions0-3), "pg-sessions")
			}
		})
	}
}

// pgMonitor opens a monitoring connection to the database at dsn, for 30 s
// at most; done closes it.
func pgMonitor(b *testing.B, dsn string) (context.Context, *pgx.Conn, func()) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		cancel()
		b.Fatal(err)
	}
	return ctx, conn, func() { conn.Close(ctx); cancel() }
}

// pgSessions is pg_stat_database.sessions of the database at dsn once
// every other connection to it has closed (a session is counted when its
// backend reports its statistics, at the latest when it exits); 0 for "".
func pgSessions(b *testing.B, dsn string) int64 {
	if dsn == "" {
		return 0
	}
	ctx, conn, done := pgMonitor(b, dsn)
	defer done()
	for {
		var others int
		if err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
			WHERE datname = current_database() AND pid <> pg_backend_pid()`).Scan(&others); err != nil {
			b.Fatal(err)
		}
		if others == 0 {
			break
		}
		select {
		case <-ctx.Done():
			b.Fatalf("%d connections to the database stayed open", others)
		case <-time.After(10 * time.Millisecond):
		}
	}
	var n int64
	if err := conn.QueryRow(ctx, `SELECT sessions FROM pg_stat_database WHERE datname = current_database()`).Scan(&n); err != nil {
		b.Fatal(err)
	}
	return n
}

func syncDelivery(b *testing.B, dsn string, extraArgs ...string) *testserver.Server {
	const clients = 100
	srv, roomID, tokens := roomWithUsers(b, clients, extraArgs...)
	base := srv.URL + "/_matrix/client/v3"
	var mu sync.Mutex
	arrivals := map[int][]time.Time{}
	var stop atomic.Bool
	var wg sync.WaitGroup
	ready := make(chan struct{}, clients)
	for i := 1; i < clients; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			code, body, err := call("GET", base+"/sync?timeout=0", tokens[i], nil)
			if err != nil || code != 200 {
				b.Errorf("initial sync: %d %v", code, err)
				ready <- struct{}{}
				return
			}
			since := body["next_batch"].(string)
			ready <- struct{}{}
			for !stop.Load() {
				resp, now, err := longPoll(base+"/sync?timeout=30000&since="+url.QueryEscape(since), tokens[i])
				if err != nil {
					if !stop.Load() {
						b.Errorf("sync: %v", err)
					}
					return
				}
				since = resp.NextBatch
				mu.Lock()
				for _, e := range resp.Rooms.Join[roomID].Timeline.Events {
					var seq int
					if _, err := fmt.Sscanf(e.Content.Body, "seq %d", &seq); err == nil {
						arrivals[seq] = append(arrivals[seq], now)
					}
				}
				mu.Unlock()
			}
		}()
	}
	for i := 1; i < clients; i++ {
		<-ready
	}
	var lat []time.Duration
	b.ResetTimer()
	cpu0, pgCPU0 := processCPU(b, srv.Pid()), pgBackendsCPU(b, dsn)
	for n := 0; n < b.N; n++ {
		start := time.Now()
		code, body, err := call("PUT", base+"/rooms/"+url.PathEscape(roomID)+fmt.Sprintf("/send/m.room.message/d%d", n),
			tokens[0], map[string]any{"msgtype": "m.text", "body": fmt.Sprintf("seq %d", n)})
		if err != nil || code != 200 {
			b.Fatalf("send: %d %v %v", code, body, err)
		}
		deadline := time.Now().Add(30 * time.Second)
		for {
			mu.Lock()
			got := len(arrivals[n])
			mu.Unlock()
			if got >= clients-1 {
				break
			}
			if time.Now().After(deadline) {
				b.Fatalf("message %d reached %d of %d clients", n, got, clients-1)
			}
			time.Sleep(100 * time.Microsecond)
		}
		mu.Lock()
		for _, at := range arrivals[n] {
			lat = append(lat, at.Sub(start))
		}
		mu.Unlock()
	}
	b.StopTimer()
	cpu, pgCPU := processCPU(b, srv.Pid())-cpu0, pgBackendsCPU(b, dsn)-pgCPU0
	stop.Store(true)
	// Wake the long-polls so they see stop.
	call("PUT", base+"/rooms/"+url.PathEscape(roomID)+"/send/m.room.message/stop", tokens[0], map[string]any{"msgtype": "m.text", "body": "stop"})
	wg.Wait()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
	b.ReportMetric(rssMiB(b, srv.Pid()), "RSS-MiB")
	b.ReportMetric(float64(cpu.Microseconds())/1000/float64(b.N), "server-CPU-ms/msg")
	if dsn != "" {
		b.ReportMetric(float64(pgCPU.Microseconds())/1000/float64(b.N), "pg-CPU-ms/msg")
	}
	return srv
}

// pgBackendsCPU is the CPU time so far of the PostgreSQL sessions (other
// than its own) connected to the database at dsn, when they run on this
// machine; 0 for "". A session that ended is not counted: the pool keeps
// its sessions (pg-sessions says whether it did).
func pgBackendsCPU(b *testing.B, dsn string) time.Duration {
	if dsn == "" {
		return 0
	}
	ctx, conn, done := pgMonitor(b, dsn)
	defer done()
	rows, err := conn.Query(ctx, `SELECT pid FROM pg_stat_activity
		WHERE datname = current_database() AND pid <> pg_backend_pid()`)
	if err != nil {
		b.Fatal(err)
	}
	pids, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	if err != nil {
		b.Fatal(err)
	}
	var total time.Duration
	for _, pid := range pids {
		raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue // on another machine, or just ended
		}
		fields := strings.Fields(string(raw[bytes.LastIndexByte(raw, ')')+1:]))
		utime, _ := strconv.ParseInt(fields[11], 10, 64)
		stime, _ := strconv.ParseInt(fields[12], 10, 64)
		total += time.Duration(utime+stime) * 10 * time.Millisecond
	}
	return total
}

// syncAnswer is the part of a /sync answer the delivery benchmark reads.
type syncAnswer struct {
	NextBatch string `json:"next_batch"`
	Rooms     struct {
		Join map[string]struct {
			Timeline struct {
				Events []struct {
					Content struct {
						Body string `json:"body"`
					} `json:"content"`
				} `json:"events"`
			} `json:"timeline"`
		} `json:"join"`
	} `json:"rooms"`
}

// longPoll runs one /sync and reports when its answer arrived (its
// headers: the server writes small answers at once), before decoding it,
// so that the 99 clients sharing the machine's cores with the server cost
// it as little as possible.
func longPoll(u, token string) (*syncAnswer, time.Time, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", u, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := httpClient.Do(req)
	if err != nil {
		return nil, time.Time{}, err
	}
	arrived := time.Now()
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, arrived, fmt.Errorf("status %d", resp.StatusCode)
	}
	var out syncAnswer
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return nil, arrived, err
	}
	return &out, arrived, nil
}

// BenchmarkInitialSync500Rooms measures the initial sync of a user in 500
// rooms with 50 events each.
func BenchmarkInitialSync500Rooms(b *testing.B) {
	const rooms, perRoom = 500, 50
	srv := testserver.Start(b, testserver.Options{Args: []string{"--enable-registration", "--disable-rate-limits"}})
	code, body, err := call("POST", srv.URL+"/_matrix/client/v3/register", "", map[string]any{
		"username": "busy", "password": "benchmark-password", "auth": map[string]any{"type": "m.login.dummy"}})
	if err != nil || code != 200 {
		b.Fatalf("register: %d %v", code, err)
	}
	tok := body["access_token"].(string)
	base := srv.URL + "/_matrix/client/v3"
	var next atomic.Int64
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				r := next.Add(1)
				if r > rooms {
					return
				}
				code, body, err := call("POST", base+"/createRoom", tok, map[string]any{"preset": "private_chat",
					"name": fmt.Sprintf("room %d", r)})
				if err != nil || code != 200 {
					b.Errorf("createRoom: %d %v", code, err)
					return
				}
				rid := url.PathEscape(body["room_id"].(string))
				for m := range perRoom {
					if code, _, err := call("PUT", base+"/rooms/"+rid+fmt.Sprintf("/send/m.room.message/r%dm%d", r, m), tok,
						map[string]any{"msgtype": "m.text", "body": "filler"}); err != nil || code != 200 {
						b.Errorf("send: %d %v", code, err)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	b.ResetTimer()
	for n := 0; n < b.N; n++ {
		code, body, err := call("GET", base+"/sync?timeout=0", tok, nil)
		if err != nil || code != 200 {
			b.Fatalf("sync: %d %v", code, err)
		}
		if join := body["rooms"].(map[string]any)["join"].(map[string]any); len(join) != rooms {
			b.Fatalf("initial sync has %d rooms", len(join))
		}
	}
	b.StopTimer()
	b.ReportMetric(rssMiB(b, srv.Pid()), "RSS-MiB")
}
