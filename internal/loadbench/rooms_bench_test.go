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
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tributary-hs/tributary/internal/pgtest"
	"github.com/tributary-hs/tributary/internal/testserver"
)

// call does one authenticated JSON request and decodes the answer.
func call(method, u, token string, body any) (int, map[string]any, error) {
	var rd *bytes.Reader
	if body != nil {
		raw, _ := json.Marshal(body)
		rd = bytes.NewReader(raw)
	} else {
		rd = bytes.NewReader(nil)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, method, u, rd)
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := httpClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	out := map[string]any{}
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out, nil
}

// roomWithUsers starts a server, registers n users and joins them to one public room.
// With TRIBUTARY_BENCH_PROFILE set, the server serves pprof on pprofAddr.
func roomWithUsers(b *testing.B, n int, extraArgs ...string) (*testserver.Server, string, []string) {
	opts := testserver.Options{Args: append([]string{"--enable-registration", "--disable-rate-limits"}, extraArgs...)}
	if os.Getenv("TRIBUTARY_BENCH_PROFILE") != "" {
		opts.Env = append(opts.Env, "TRIBUTARY_PPROF_ADDR="+pprofAddr)
	}
	srv := testserver.Start(b, opts)
	tokens := make([]string, n)
	for i := range n {
		code, body, err := call("POST", srv.URL+"/_matrix/client/v3/register", "", map[string]any{
			"username": fmt.Sprintf("sender%d", i), "password": "benchmark-password", "auth": map[string]any{"type": "m.login.dummy"}})
		if err != nil || code != 200 {
			b.Fatalf("register: %d %v %v", code, body, err)
		}
		tokens[i] = body["access_token"].(string)
	}
	code, body, err := call("POST", srv.URL+"/_matrix/client/v3/createRoom", tokens[0], map[string]any{"preset": "public_chat"})
	if err != nil || code != 200 {
		b.Fatalf("createRoom: %d %v %v", code, body, err)
	}
	roomID := body["room_id"].(string)
	for _, tok := range tokens[1:] {
		if code, body, err := call("POST", srv.URL+"/_matrix/client/v3/rooms/"+url.PathEscape(roomID)+"/join", tok, map[string]any{}); err != nil || code != 200 {
			b.Fatalf("join: %d %v %v", code, body, err)
		}
	}
	return srv, roomID, tokens
}

// BenchmarkSendEvents measures events persisted per second to one room and
// the send latency, with 1 and 16 concurrent senders, on each database; on
// PostgreSQL the sessions the server opened in its life (pgSessions).
func BenchmarkSendEvents(b *testing.B) {
	for _, db := range []string{"sqlite", "postgres"} {
		for _, senders := range []int{1, 16} {
			b.Run(fmt.Sprintf("%s/senders=%d", db, senders), func(b *testing.B) {
				var extra []string
				var dsn string
				if db == "postgres" {
					dsn = pgtest.URL(b)
					extra = []string{"--database-url", dsn}
				}
				sessions0 := pgSessions(b, dsn)
				srv, roomID, tokens := roomWithUsers(b, senders, extra...)
				base := srv.URL + "/_matrix/client/v3/rooms/" + url.PathEscape(roomID) + "/send/m.room.message/"
				var next atomic.Int64
				var mu sync.Mutex
				lat := make([]time.Duration, 0, b.N)
				done := profile(b, profileFile(b, fmt.Sprintf("send-%s-%d", db, senders), 0))
				defer func() { <-done }()
				b.ResetTimer()
				start, cpu0 := time.Now(), processCPU(b, srv.Pid())
				var wg sync.WaitGroup
				for s := range senders {
					wg.Add(1)
					go func() {
						defer wg.Done()
						for {
							i := next.Add(1)
							if i > int64(b.N) {
								return
							}
							t0 := time.Now()
							code, body, err := call("PUT", base+fmt.Sprintf("b%d", i), tokens[s],
								map[string]any{"msgtype": "m.text", "body": fmt.Sprintf("message %d", i)})
							d := time.Since(t0)
							if err != nil || code != 200 {
								b.Errorf("send: %d %v %v", code, body, err)
								return
							}
							mu.Lock()
							lat = append(lat, d)
							mu.Unlock()
						}
					}()
				}
				wg.Wait()
				elapsed := time.Since(start)
				cpu := processCPU(b, srv.Pid()) - cpu0
				b.StopTimer()
				slices.Sort(lat)
				if len(lat) > 0 {
					b.ReportMetric(float64(len(lat))/elapsed.Seconds(), "events/s")
					b.ReportMetric(float64(cpu.Microseconds())/float64(len(lat)), "server-CPU-µs/event")
					b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
					b.ReportMetric(float64(lat[len(lat)*95/100].Microseconds())/1000, "p95-ms")
				}
				if dsn != "" {
					srv.Stop()
					b.ReportMetric(float64(pgSessions(b, dsn)-sessions0-1), "pg-sessions")
				}
			})
		}
	}
}

// BenchmarkMessagesPage measures one /messages page of 50 events from the
// middle of a room with many events (set by -benchtime's setup: 100k).
func BenchmarkMessagesPage(b *testing.B) {
	const total = 100_000
	srv, roomID, tokens := roomWithUsers(b, 8)
	base := srv.URL + "/_matrix/client/v3/rooms/" + url.PathEscape(roomID)
	var next atomic.Int64
	var wg sync.WaitGroup
	for s := range tokens {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1)
				if i > total {
					return
				}
				if code, body, err := call("PUT", base+fmt.Sprintf("/send/m.room.message/f%d", i), tokens[s],
					map[string]any{"msgtype": "m.text", "body": fmt.Sprintf("fill %d", i)}); err != nil || code != 200 {
					b.Errorf("fill: %d %v %v", code, body, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	// A token from the middle of the room.
	code, body, err := call("GET", base+"/messages?dir=b&limit=1", tokens[0], nil)
	if err != nil || code != 200 {
		b.Fatalf("messages: %d %v", code, body)
	}
	var mid string
	fmt.Sscanf(body["start"].(string), "s%s", &mid)
	var pos int64
	fmt.Sscanf(mid, "%d", &pos)
	from := fmt.Sprintf("s%d", pos-total/2)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		code, body, err := call("GET", base+"/messages?dir=b&limit=50&from="+from, tokens[0], nil)
		if err != nil || code != 200 || len(body["chunk"].([]any)) != 50 {
			b.Fatalf("messages page: %d %v", code, err)
		}
	}
}
