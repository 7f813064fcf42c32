package loadbench

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/tributary-hs/tributary/internal/pgtest"
	"github.com/tributary-hs/tributary/internal/testserver"
)

const benchASToken = "bench-as-token-0123456789"

// writeRegistration writes a registration for ghosts @_bench_*:localhost.
func writeRegistration(b *testing.B, asURL string) string {
	reg := filepath.Join(b.TempDir(), "registration.yaml")
	if err := os.WriteFile(reg, []byte(`id: bench
url: `+asURL+`
as_token: `+benchASToken+`
hs_token: bench-hs-token-0123456789
sender_localpart: benchbot
rate_limited: false
namespaces:
  users:
    - regex: '@_bench_.*:localhost'
      exclusive: true
`), 0o600); err != nil {
		b.Fatal(err)
	}
	return reg
}

// BenchmarkAppServiceDelivery measures the time from a client's send to the
// event's arrival at the appservice in a transaction, one event at a time.
func BenchmarkAppServiceDelivery(b *testing.B) {
	arrived := make(chan string, 1024)
	as := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Events []struct {
				Content map[string]any `json:"content"`
			} `json:"events"`
		}
		_ = json.NewDecoder(r.Body).Decode(&body)
		for _, e := range body.Events {
			if s, ok := e.Content["body"].(string); ok {
				arrived <- s
			}
		}
		_, _ = w.Write([]byte(`{}`))
	}))
	defer as.Close()
	srv, roomID, tokens := roomWithUsers(b, 1, "--appservice", writeRegistration(b, as.URL))
	ghost := "@_bench_a:localhost"
	if code, body, err := call("POST", srv.URL+"/_matrix/client/v3/register", benchASToken, map[string]any{
		"type": "m.login.application_service", "username": "_bench_a", "inhibit_login": true}); err != nil || code != 200 {
		b.Fatalf("register: %d %v %v", code, body, err)
	}
	if code, body, err := call("POST", srv.URL+"/_matrix/client/v3/rooms/"+url.PathEscape(roomID)+"/join?user_id="+
		url.QueryEscape(ghost), benchASToken, map[string]any{}); err != nil || code != 200 {
		b.Fatalf("join: %d %v %v", code, body, err)
	}
	base := srv.URL + "/_matrix/client/v3/rooms/" + url.PathEscape(roomID) + "/send/m.room.message/"
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := range b.N {
		want := fmt.Sprintf("delivery %d", i)
		t0 := time.Now()
		if code, body, err := call("PUT", base+fmt.Sprintf("d%d", i), tokens[0], map[string]any{"msgtype": "m.text", "body": want}); err != nil || code != 200 {
			b.Fatalf("send: %d %v %v", code, body, err)
		}
		for got := range arrived {
			if got == want {
				break
			}
		}
		lat = append(lat, time.Since(t0))
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
}

// BenchmarkBatchSend measures appservice batch send (bridge backfill):
// events persisted per second, in batches of 500 from two ghosts.
func BenchmarkBatchSend(b *testing.B) {
	const batch = 500
	for _, db := range []string{"sqlite", "postgres"} {
		b.Run(db, func(b *testing.B) {
			args := []string{"--appservice", writeRegistration(b, "null")}
			if db == "postgres" {
				args = append(args, "--database-url", pgtest.URL(b))
			}
			srv := testserver.Start(b, testserver.Options{Args: args})
			code, body, err := call("POST", srv.URL+"/_matrix/client/v3/createRoom", benchASToken, map[string]any{"preset": "public_chat"})
			if err != nil || code != 200 {
				b.Fatalf("createRoom: %d %v %v", code, body, err)
			}
			roomID := body["room_id"].(string)
			ghosts := []string{"@_bench_a:localhost", "@_bench_b:localhost"}
			for _, g := range ghosts {
				if code, body, err := call("POST", srv.URL+"/_matrix/client/v3/register", benchASToken, map[string]any{
					"type": "m.login.application_service", "username": g[1:9], "inhibit_login": true}); err != nil || code != 200 {
					b.Fatalf("register: %d %v %v", code, body, err)
				}
				if code, body, err := call("POST", srv.URL+"/_matrix/client/v3/rooms/"+url.PathEscape(roomID)+"/join?user_id="+
					url.QueryEscape(g), benchASToken, map[string]any{}); err != nil || code != 200 {
					b.Fatalf("join: %d %v %v", code, body, err)
				}
			}
			path := srv.URL + "/_matrix/client/unstable/com.beeper.backfill/rooms/" + url.PathEscape(roomID) + "/batch_send"
			sent := 0
			b.ResetTimer()
			start := time.Now()
			for sent < b.N {
				n := min(batch, b.N-sent)
				evs := make([]map[string]any, n)
				for i := range n {
					evs[i] = map[string]any{"type": "m.room.message", "sender": ghosts[i%2],
						"origin_server_ts": 1_400_000_000_000 + int64(sent+i),
						"content":          map[string]any{"msgtype": "m.text", "body": fmt.Sprintf("history %d", sent+i)}}
				}
				code, body, err := call("POST", path, benchASToken, map[string]any{"forward": true, "events": evs})
				if err != nil || code != 200 {
					b.Fatalf("batch send: %d %v %v", code, body, err)
				}
				sent += n
			}
			b.ReportMetric(float64(sent)/time.Since(start).Seconds(), "events/s")
		})
	}
}
