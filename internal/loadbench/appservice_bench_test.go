package loadbench

import (
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/tributary-hs/tributary/internal/pgtest"
	"github.com/tributary-hs/tributary/internal/testserver"
)

const benchASToken = "bench-as-token-0123456789"

// BenchmarkBatchSend measures appservice batch send (bridge backfill):
// events persisted per second, in batches of 500 from two ghosts.
func BenchmarkBatchSend(b *testing.B) {
	const batch = 500
	for _, db := range []string{"sqlite", "postgres"} {
		b.Run(db, func(b *testing.B) {
			reg := filepath.Join(b.TempDir(), "registration.yaml")
			if err := os.WriteFile(reg, []byte(`id: bench
url: null
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
			args := []string{"--appservice", reg}
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
