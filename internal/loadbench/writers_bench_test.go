package loadbench

import (
	"bufio"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tributary-hs/tributary/internal/testserver"
)

// goroutines reads go_goroutines from the server's /metrics.
func goroutines(b *testing.B, srv *testserver.Server) int {
	resp, err := httpClient.Get(srv.MetricsURL() + "/metrics")
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b.Fatalf("/metrics: %d", resp.StatusCode)
	}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "go_goroutines "); ok {
			n, err := strconv.ParseFloat(rest, 64)
			if err != nil {
				b.Fatal(err)
			}
			return int(n)
		}
	}
	b.Fatal("go_goroutines not in /metrics")
	return 0
}

// BenchmarkIdleWriters: 10,000 rooms written once (created, one message
// each) and then left alone release their writer goroutines and cached
// state after rooms.writer_idle. Fails if the writers stay; reports the
// goroutines and RSS at the peak and after the idle period.
func BenchmarkIdleWriters(b *testing.B) {
	const rooms, workers = 10000, 16
	cfg := filepath.Join(b.TempDir(), "tributary.yaml")
	if err := os.WriteFile(cfg, []byte("rooms:\n  writer_idle: 2s\n"), 0o600); err != nil {
		b.Fatal(err)
	}
	for range b.N {
		srv := testserver.Start(b, testserver.Options{Args: []string{"--config", cfg, "--enable-registration",
			"--disable-rate-limits", "--metrics-listen", "127.0.0.1:0"}})
		code, body, err := call("POST", srv.URL+"/_matrix/client/v3/register", "", map[string]any{
			"username": "owner", "password": "benchmark-password", "auth": map[string]any{"type": "m.login.dummy"}})
		if err != nil || code != 200 {
			b.Fatalf("register: %d %v %v", code, body, err)
		}
		token := body["access_token"].(string)
		base := goroutines(b, srv)
		start := time.Now()
		var wg sync.WaitGroup
		for w := range workers {
			wg.Go(func() {
				for i := w; i < rooms; i += workers {
					code, body, err := call("POST", srv.URL+"/_matrix/client/v3/createRoom", token, map[string]any{})
					if err != nil || code != 200 {
						b.Errorf("createRoom: %d %v %v", code, body, err)
						return
					}
					roomID := body["room_id"].(string)
					code, body, err = call("PUT", fmt.Sprintf("%s/_matrix/client/v3/rooms/%s/send/m.room.message/t%d",
						srv.URL, url.PathEscape(roomID), i), token, map[string]any{"msgtype": "m.text", "body": "once"})
					if err != nil || code != 200 {
						b.Errorf("send: %d %v %v", code, body, err)
						return
					}
				}
			})
		}
		wg.Wait()
		if b.Failed() {
			return
		}
		b.ReportMetric(float64(rooms)/time.Since(start).Seconds(), "rooms/s")
		peak, peakRSS := goroutines(b, srv), rssMiB(b, srv.Pid())
		deadline := time.Now().Add(60 * time.Second)
		after := peak
		for after = goroutines(b, srv); after > base+50; after = goroutines(b, srv) {
			if time.Now().After(deadline) {
				b.Fatalf("%d goroutines a minute after the writes (%d before, %d at the peak): writers did not retire",
					after, base, peak)
			}
			time.Sleep(100 * time.Millisecond)
		}
		b.ReportMetric(float64(peak), "goroutines-peak")
		b.ReportMetric(float64(after), "goroutines-idle")
		b.ReportMetric(peakRSS, "RSS-peak-MiB")
		b.ReportMetric(rssMiB(b, srv.Pid()), "RSS-idle-MiB")
		srv.Stop()
	}
}
