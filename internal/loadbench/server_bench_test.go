package loadbench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tributary-hs/tributary/internal/testserver"
)

var httpClient = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}, Timeout: 30 * time.Second}

func freePort(b *testing.B) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// BenchmarkStartup measures the time from exec to the first successful
// /versions answer, on a data directory that already exists (the usual
// restart), polling the port as a client would.
func BenchmarkStartup(b *testing.B) {
	bin := testserver.Binary(b)
	dir := b.TempDir()
	var total time.Duration
	for i := 0; i < b.N; i++ {
		addr := freePort(b)
		start := time.Now()
		cmd := exec.Command(bin, "serve", "--data-dir", dir, "--listen", addr)
		cmd.Env = append(os.Environ(), "TRIBUTARY_LOG_LEVEL=warn")
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		deadline := start.Add(10 * time.Second)
		for {
			resp, err := httpClient.Get("http://" + addr + "/_matrix/client/versions")
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == 200 {
					break
				}
			}
			if time.Now().After(deadline) {
				_ = cmd.Process.Kill()
				b.Fatal("server did not answer /versions within 10s")
			}
			time.Sleep(200 * time.Microsecond)
		}
		total += time.Since(start)
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}
	b.ReportMetric(float64(total.Microseconds())/1000/float64(b.N), "ms-to-first-versions")
}

// BenchmarkIdleRSS reports the resident memory of a started, idle server,
// and the part of it that is the process's own (RssAnon: heap, stacks);
// the rest is pages of the binary and libraries mapped from the page cache,
// clean and shared.
func BenchmarkIdleRSS(b *testing.B) {
	var sum, anon float64
	for i := 0; i < b.N; i++ {
		srv := testserver.Start(b, testserver.Options{})
		if code, _ := srv.Do(b, "GET", "/_matrix/client/versions", "", nil); code != 200 {
			b.Fatalf("/versions: %d", code)
		}
		sum += rssMiB(b, srv.Pid())
		anon += statusMiB(b, srv.Pid(), "RssAnon:")
		srv.Stop()
	}
	b.ReportMetric(sum/float64(b.N), "idle-RSS-MiB")
	b.ReportMetric(anon/float64(b.N), "idle-anon-MiB")
}

func rssMiB(b *testing.B, pid int) float64 { return statusMiB(b, pid, "VmRSS:") }

// statusMiB reads a kB field of /proc/PID/status.
func statusMiB(b *testing.B, pid int, field string) float64 {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if rest, ok := strings.CutPrefix(line, field); ok {
			kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
			if err != nil {
				b.Fatal(err)
			}
			return kb / 1024
		}
	}
	b.Fatal(field + " not found")
	return 0
}

func post(b *testing.B, url string, body any) (int, map[string]any) {
	raw, _ := json.Marshal(body)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "POST", url, bytes.NewReader(raw))
	req.Header.Set("Content-Type", "application/json")
	resp, err := httpClient.Do(req)
	if err != nil {
		b.Error(err)
		return 0, nil
	}
	defer resp.Body.Close()
	out := map[string]any{}
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

// BenchmarkRegister measures registrations per second (password hashing,
// account, profile, device and token in one transaction), rate limits off.
func BenchmarkRegister(b *testing.B) {
	srv := testserver.Start(b, testserver.Options{Args: []string{"--enable-registration", "--disable-rate-limits"}})
	var n atomic.Int64
	start := time.Now()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := n.Add(1)
			code, body := post(b, srv.URL+"/_matrix/client/v3/register", map[string]any{
				"username": fmt.Sprintf("bench%d", i), "password": "benchmark-password",
				"auth": map[string]any{"type": "m.login.dummy"},
			})
			if code != 200 {
				b.Errorf("register: %d %v", code, body)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "registrations/s")
}

// BenchmarkLogin measures password logins per second for one account.
func BenchmarkLogin(b *testing.B) {
	srv := testserver.Start(b, testserver.Options{Args: []string{"--disable-rate-limits"}})
	if out, err := srv.Run(b, "", "user", "add", "bench", "--password", "benchmark-password"); err != nil {
		b.Fatalf("user add: %v %s", err, out)
	}
	start := time.Now()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			code, body := post(b, srv.URL+"/_matrix/client/v3/login", map[string]any{
				"type": "m.login.password", "identifier": map[string]any{"type": "m.id.user", "user": "bench"},
				"password": "benchmark-password",
			})
			if code != 200 {
				b.Errorf("login: %d %v", code, body)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "logins/s")
}

// BenchmarkWhoami measures an authenticated request: token lookup and the edge middleware.
func BenchmarkWhoami(b *testing.B) {
	srv := testserver.Start(b, testserver.Options{Args: []string{"--enable-registration", "--disable-rate-limits"}})
	code, body := post(b, srv.URL+"/_matrix/client/v3/register", map[string]any{
		"username": "who", "password": "benchmark-password", "auth": map[string]any{"type": "m.login.dummy"}})
	if code != 200 {
		b.Fatalf("register: %d %v", code, body)
	}
	token := body["access_token"].(string)
	start := time.Now()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req, _ := http.NewRequest("GET", srv.URL+"/_matrix/client/v3/account/whoami", nil)
			req.Header.Set("Authorization", "Bearer "+token)
			resp, err := httpClient.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			resp.Body.Close()
			if resp.StatusCode != 200 {
				b.Errorf("whoami: %d", resp.StatusCode)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "requests/s")
}
