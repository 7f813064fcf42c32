package loadbench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/tributary-hs/tributary/internal/testserver"
)

// BenchmarkSyncCrowd is issue 12's load: 2,000 users long-polling /sync in
// one room plus 2,000 long-polling in 1,000 rooms of two, with the default
// configuration (presence on, every sync marking its user online). Each
// iteration is a phase of TRIBUTARY_BENCH_CROWD_SECONDS (default 65 s, more
// than the minute after which a server may rewrite the presence of the
// users who keep syncing) during which one member of the big room sends
// messages one after another, each once the previous reached everyone or
// 30 s passed, while an unrelated user polls /sync?timeout=0. It reports
// the time from the start of a send to its arrival in each of the room's
// long-polls (p50, p99; a message that never arrived counts as 30 s), the
// share of arrivals, the unrelated sync's p50 and p99 (probe-, measured in
// the benchmark's process, which shares the cores with the server and
// decodes thousands of answers at once, and probe-apart-, the same probe
// from a process of its own, as a user elsewhere), the server's peak
// RSS, and how long the users took to connect (an initial sync each, 16 at
// a time, then their first long-poll; given up on after 10 minutes).
// Goal: RSS < 300 MiB, delivery p99 < 500 ms, probe p99 < 50 ms.
//
// TRIBUTARY_BENCH_CROWD sets the users per group (0 skips the benchmark);
// -short runs 200 per group for 10 s.
func BenchmarkSyncCrowd(b *testing.B) {
	group, seconds := 2000, 65
	if testing.Short() {
		group, seconds = 200, 10
	}
	if v := os.Getenv("TRIBUTARY_BENCH_CROWD"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			b.Fatalf("TRIBUTARY_BENCH_CROWD=%q: want a number of users", v)
		}
		if n == 0 {
			b.Skip("TRIBUTARY_BENCH_CROWD=0")
		}
		group = max(n-n%2, 2)
	}
	if v := os.Getenv("TRIBUTARY_BENCH_CROWD_SECONDS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			b.Fatalf("TRIBUTARY_BENCH_CROWD_SECONDS=%q: want a number of seconds", v)
		}
		seconds = n
	}
	raiseFileLimit(b, uint64(4*group+1024))
	t0 := time.Now()
	c := newCrowd(b, group)
	defer c.stop()
	b.Logf("%d users in their rooms after %v", 2*group, time.Since(t0).Round(time.Second))
	t0 = time.Now()
	cpu0 := c.cpu()
	parked := c.startPolls(t0.Add(10 * time.Minute))
	startup, startupCPU := time.Since(t0), c.cpu()-cpu0
	b.Logf("%d of %d users synced and long-poll after %v", parked, 2*group, startup.Round(time.Second))
	// A first message, not measured, shows that every long-poll is parked.
	t0 = time.Now()
	_, reached := c.deliver(-1, 2*time.Minute)
	b.Logf("warm-up message reached %d of %d long-polls in %v", reached, group, time.Since(t0).Round(time.Millisecond))
	b.ResetTimer()
	cpu0 = c.cpu()
	var lat, probes, apart []time.Duration
	sent, arrived := 0, 0
	for range b.N {
		probeDone := make(chan []time.Duration)
		phaseEnd := time.Now().Add(time.Duration(seconds) * time.Second)
		go func() { probeDone <- c.probe(phaseEnd) }()
		apartDone := make(chan []time.Duration)
		go func() { apartDone <- c.probeApart(phaseEnd) }()
		profiled := c.profilePhase()
		for time.Now().Before(phaseEnd) || sent < 5 {
			l, reached := c.deliver(sent, 30*time.Second)
			lat = append(lat, l...)
			arrived += reached
			for range group - reached {
				lat = append(lat, 30*time.Second)
			}
			sent++
			time.Sleep(200 * time.Millisecond) // pacing: a chat, not a flood
		}
		probes = append(probes, <-probeDone...)
		apart = append(apart, <-apartDone...)
		<-profiled
	}
	b.StopTimer()
	phaseCPU := c.cpu() - cpu0
	slices.Sort(lat)
	slices.Sort(probes)
	b.ReportMetric(ms(lat[len(lat)/2]), "delivery-p50-ms")
	b.ReportMetric(ms(lat[len(lat)*99/100]), "delivery-p99-ms")
	b.ReportMetric(100*float64(arrived)/float64(sent*group), "delivered-%")
	if len(probes) > 0 {
		b.ReportMetric(ms(probes[len(probes)/2]), "probe-p50-ms")
		b.ReportMetric(ms(probes[len(probes)*99/100]), "probe-p99-ms")
	}
	slices.Sort(apart)
	if len(apart) > 0 {
		b.ReportMetric(ms(apart[len(apart)/2]), "probe-apart-p50-ms")
		b.ReportMetric(ms(apart[len(apart)*99/100]), "probe-apart-p99-ms")
	}
	b.ReportMetric(c.peakRSS(), "peak-RSS-MiB")
	b.ReportMetric(rssMiB(b, c.srv.Pid()), "RSS-MiB")
	b.ReportMetric(float64(sent), "messages")
	b.ReportMetric(startup.Seconds(), "connect-s")
	b.ReportMetric(startupCPU.Seconds(), "connect-server-CPU-s")
	// Less noisy than the latencies on a shared machine: what the server
	// spent per message (its deliveries, the probes, whatever else ran).
	b.ReportMetric(float64(phaseCPU.Milliseconds())/float64(sent), "server-CPU-ms/msg")
	b.ReportMetric(100*float64(parked)/float64(2*group), "connected-%")
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// raiseFileLimit lifts the soft limit on open files to what the benchmark
// needs (its own connections and, inherited, the server's), up to the hard
// limit. Go raises its own soft limit but restores the original for the
// processes it starts, unless the limit was set explicitly.
func raiseFileLimit(b *testing.B, need uint64) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		b.Fatal(err)
	}
	if lim.Max < need {
		b.Skipf("needs %d open files, the hard limit is %d: raise it (ulimit -Hn) or lower TRIBUTARY_BENCH_CROWD", need, lim.Max)
	}
	lim.Cur = lim.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		b.Fatal(err)
	}
}

// crowdFilter is what a client such as Element asks for: lazily loaded
// members and a short timeline; presence is left in.
const crowdFilter = `{"room":{"timeline":{"limit":5},"state":{"lazy_load_members":true}}}`

type crowd struct {
	b      *testing.B
	srv    *testserver.Server
	client *http.Client
	group  int
	roomID string
	// tokens: [0, group) are the big room's members, [group, 2*group) the
	// pairs' (2k and 2k+1 share a room), then the probe.
	tokens []string
	probeT string

	mu       sync.Mutex
	arrivals map[int][]time.Time // message seq → arrival in the room's long-polls
	parked   atomic.Int64
	stopping atomic.Bool
	wg       sync.WaitGroup
	rssMu    sync.Mutex
	rssPeak  float64
	rssStop  chan struct{}
}

// newCrowd registers the users and fills the rooms through an appservice
// (no password hashing), then restarts the server without it, so that the
// measured process starts afresh as the server of ordinary users.
func newCrowd(b *testing.B, group int) *crowd {
	c := &crowd{b: b, group: group, arrivals: map[int][]time.Time{}, rssStop: make(chan struct{}),
		client: &http.Client{Transport: &http.Transport{MaxIdleConns: 4*group + 64, MaxIdleConnsPerHost: 4*group + 64,
			IdleConnTimeout: 5 * time.Minute}}}
	reg := filepath.Join(b.TempDir(), "crowd.yaml")
	if err := os.WriteFile(reg, []byte(`id: crowd
as_token: `+benchASToken+`
hs_token: crowd-hs-token-0123456789
sender_localpart: crowdbot
rate_limited: false
namespaces:
  users:
    - regex: '@crowd_.*:localhost'
      exclusive: true
`), 0o600); err != nil {
		b.Fatal(err)
	}
	setup := testserver.Start(b, testserver.Options{Args: []string{"--appservice", reg, "--disable-rate-limits"}})
	base := setup.URL + "/_matrix/client/v3"
	n := 2*group + 1
	c.tokens = make([]string, n)
	c.parallel(n, func(i int) error {
		code, body, err := c.call("POST", base+"/register", benchASToken, map[string]any{
			"type": "m.login.application_service", "username": fmt.Sprintf("crowd_%05d", i)})
		if err != nil || code != 200 {
			return fmt.Errorf("register: %d %v %v", code, body, err)
		}
		c.tokens[i] = body["access_token"].(string)
		return nil
	})
	c.probeT = c.tokens[n-1]
	c.tokens = c.tokens[:n-1]
	code, body, err := c.call("POST", base+"/createRoom", c.tokens[0], map[string]any{"preset": "public_chat"})
	if err != nil || code != 200 {
		b.Fatalf("createRoom: %d %v %v", code, body, err)
	}
	c.roomID = body["room_id"].(string)
	c.parallel(group-1, func(i int) error {
		code, body, err := c.call("POST", base+"/rooms/"+url.PathEscape(c.roomID)+"/join", c.tokens[i+1], map[string]any{})
		if err != nil || code != 200 {
			return fmt.Errorf("join: %d %v %v", code, body, err)
		}
		return nil
	})
	c.parallel(group/2, func(i int) error {
		a, z := c.tokens[group+2*i], c.tokens[group+2*i+1]
		code, body, err := c.call("POST", base+"/createRoom", a, map[string]any{"preset": "public_chat"})
		if err != nil || code != 200 {
			return fmt.Errorf("createRoom: %d %v %v", code, body, err)
		}
		code, body, err = c.call("POST", base+"/rooms/"+url.PathEscape(body["room_id"].(string))+"/join", z, map[string]any{})
		if err != nil || code != 200 {
			return fmt.Errorf("join: %d %v %v", code, body, err)
		}
		return nil
	})
	setup.Stop()
	opts := testserver.Options{DataDir: setup.DataDir, Args: []string{"--disable-rate-limits"}}
	if os.Getenv("TRIBUTARY_BENCH_PROFILE") != "" {
		opts.Env = append(opts.Env, "TRIBUTARY_PPROF_ADDR="+pprofAddr)
	}
	c.srv = testserver.Start(b, opts)
	go c.sampleRSS()
	return c
}

// parallel runs fn(0..n-1) on 16 workers, failing the benchmark on an error.
func (c *crowd) parallel(n int, fn func(i int) error) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n || c.b.Failed() {
					return
				}
				if err := fn(i); err != nil {
					c.b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if c.b.Failed() {
		c.b.FailNow()
	}
}

func (c *crowd) call(method, u, token string, body any) (int, map[string]any, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var raw []byte
	if body != nil {
		raw, _ = json.Marshal(body)
	}
	req, _ := http.NewRequestWithContext(ctx, method, u, bytes.NewReader(raw))
	req.Header.Set("Authorization", "Bearer "+token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	out := map[string]any{}
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out, nil
}

func (c *crowd) syncURL(since string, timeout int) string {
	u := c.srv.URL + "/_matrix/client/v3/sync?filter=" + url.QueryEscape(crowdFilter) + "&timeout=" + strconv.Itoa(timeout)
	if since != "" {
		u += "&since=" + url.QueryEscape(since)
	}
	return u
}

// startPolls starts every user's sync loop: an initial sync (16 at a time,
// as clients reconnecting after a restart would), then long-polls; it
// returns once every loop has sent its first long-poll, or at deadline
// (the server could not keep up), with the number of loops that did.
func (c *crowd) startPolls(deadline time.Time) int {
	sem := make(chan struct{}, 16)
	for i, tok := range c.tokens {
		c.wg.Go(func() {
			sem <- struct{}{}
			code, body, err := c.call("GET", c.syncURL("", 0), tok, nil)
			<-sem
			if err != nil || code != 200 {
				if !c.stopping.Load() {
					c.b.Errorf("initial sync: %d %v", code, err)
				}
				return
			}
			since, ok := body["next_batch"].(string)
			if !ok {
				if !c.stopping.Load() {
					c.b.Errorf("initial sync without next_batch: %v", body)
				}
				return
			}
			first := true
			for !c.stopping.Load() {
				if first {
					c.parked.Add(1)
					first = false
				}
				resp, now, err := c.longPoll(c.syncURL(since, 30000), tok)
				if err != nil {
					if !c.stopping.Load() {
						c.b.Errorf("sync: %v", err)
					}
					return
				}
				since = resp.NextBatch
				if i >= c.group {
					continue
				}
				c.mu.Lock()
				for _, e := range resp.Rooms.Join[c.roomID].Timeline.Events {
					var seq int
					if _, err := fmt.Sscanf(e.Content.Body, "crowd %d", &seq); err == nil {
						c.arrivals[seq] = append(c.arrivals[seq], now)
					}
				}
				c.mu.Unlock()
			}
		})
	}
	for c.parked.Load() < int64(len(c.tokens)) && time.Now().Before(deadline) {
		if c.b.Failed() {
			c.b.FailNow()
		}
		time.Sleep(50 * time.Millisecond)
	}
	return int(c.parked.Load())
}

func (c *crowd) longPoll(u, token string) (*syncAnswer, time.Time, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", u, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := c.client.Do(req)
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

// deliver sends message seq from the room's first member and waits until
// every member's long-poll has it or the wait ends; it returns the
// latencies of the arrivals and their number.
func (c *crowd) deliver(seq int, wait time.Duration) ([]time.Duration, int) {
	start := time.Now()
	u := c.srv.URL + "/_matrix/client/v3/rooms/" + url.PathEscape(c.roomID) + fmt.Sprintf("/send/m.room.message/crowd%d", seq)
	code, body, err := c.call("PUT", u, c.tokens[0], map[string]any{"msgtype": "m.text", "body": fmt.Sprintf("crowd %d", seq)})
	if err != nil || code != 200 {
		c.b.Fatalf("send: %d %v %v", code, body, err)
	}
	deadline := start.Add(wait)
	for {
		c.mu.Lock()
		got := len(c.arrivals[seq])
		c.mu.Unlock()
		if got >= c.group || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Millisecond)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	var lat []time.Duration
	for _, at := range c.arrivals[seq] {
		if d := at.Sub(start); d <= wait {
			lat = append(lat, d)
		}
	}
	return lat, len(lat)
}

// probe runs an unrelated user's /sync?timeout=0 every 100 ms until end
// and returns the latencies (a failed or 60 s sync counts as 60 s).
func (c *crowd) probe(end time.Time) []time.Duration {
	_, body, err := c.call("GET", c.syncURL("", 0), c.probeT, nil)
	if err != nil {
		c.b.Errorf("probe: %v", err)
		return nil
	}
	since, _ := body["next_batch"].(string)
	var out []time.Duration
	for time.Now().Before(end) {
		t0 := time.Now()
		code, body, err := c.call("GET", c.syncURL(since, 0), c.probeT, nil)
		d := time.Since(t0)
		if err != nil || code != 200 {
			d = time.Minute
		} else if nb, ok := body["next_batch"].(string); ok {
			since = nb
		}
		out = append(out, d)
		time.Sleep(100 * time.Millisecond)
	}
	return out
}

// profilePhase, with TRIBUTARY_BENCH_PROFILE naming a directory, writes
// there what the server does 5 s into the phase: a 5 s execution trace
// (crowd.trace), then 20 s of CPU (crowd-cpu.pprof), then its heap and
// goroutines (crowd-heap.pprof, crowd-heap.txt with the MemStats,
// crowd-goroutine.pprof).
func (c *crowd) profilePhase() <-chan struct{} {
	done := make(chan struct{})
	dir := os.Getenv("TRIBUTARY_BENCH_PROFILE")
	if dir == "" {
		close(done)
		return done
	}
	go func() {
		defer close(done)
		time.Sleep(5 * time.Second)
		for _, p := range []struct{ path, file string }{{"trace?seconds=5", "crowd.trace"},
			{"profile?seconds=20", "crowd-cpu.pprof"}, {"heap", "crowd-heap.pprof"}, {"heap?debug=1", "crowd-heap.txt"},
			{"goroutine", "crowd-goroutine.pprof"}} {
			resp, err := http.Get("http://" + pprofAddr + "/debug/pprof/" + p.path)
			if err != nil {
				c.b.Error(err)
				return
			}
			raw, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err == nil {
				err = os.WriteFile(filepath.Join(dir, p.file), raw, 0o644)
			}
			if err != nil {
				c.b.Error(err)
			}
		}
	}()
	return done
}

// probeApart runs the same probe as probe, with the same user, from a
// process of its own (this test binary, see TestMain): the benchmark's
// process decodes thousands of answers at once during a fan-out, and a
// probe among those goroutines waits for them as much as for the server.
// A user on another machine would not; the difference between the two
// probes is what the benchmark's client adds.
func (c *crowd) probeApart(end time.Time) []time.Duration {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "TRIBUTARY_CROWD_PROBE="+c.syncURL("", 0), "TRIBUTARY_CROWD_PROBE_TOKEN="+c.probeT,
		"TRIBUTARY_CROWD_PROBE_END="+strconv.FormatInt(end.UnixMilli(), 10))
	out, err := cmd.Output()
	if err != nil {
		c.b.Errorf("probe apart: %v", err)
		return nil
	}
	var lat []time.Duration
	for _, f := range strings.Fields(string(out)) {
		us, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			c.b.Errorf("probe apart: %q", f)
			return nil
		}
		lat = append(lat, time.Duration(us)*time.Microsecond)
	}
	return lat
}

// probeProcess is probe's loop in its own process: u is the sync URL
// without since; it prints each latency in microseconds and returns the
// exit code.
func probeProcess(u string) int {
	token := os.Getenv("TRIBUTARY_CROWD_PROBE_TOKEN")
	endMS, err := strconv.ParseInt(os.Getenv("TRIBUTARY_CROWD_PROBE_END"), 10, 64)
	if err != nil {
		fmt.Fprintln(os.Stderr, "TRIBUTARY_CROWD_PROBE_END:", err)
		return 2
	}
	client := &http.Client{Timeout: time.Minute}
	get := func(since string) (string, error) {
		target := u
		if since != "" {
			target += "&since=" + url.QueryEscape(since)
		}
		req, _ := http.NewRequest("GET", target, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := client.Do(req)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		var body struct {
			NextBatch string `json:"next_batch"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || resp.StatusCode != http.StatusOK {
			return "", fmt.Errorf("status %d, %v", resp.StatusCode, err)
		}
		return body.NextBatch, nil
	}
	since, err := get("")
	if err != nil {
		fmt.Fprintln(os.Stderr, "probe:", err)
		return 1
	}
	for time.Now().Before(time.UnixMilli(endMS)) {
		t0 := time.Now()
		nb, err := get(since)
		d := time.Since(t0)
		if err != nil {
			d = time.Minute
		} else {
			since = nb
		}
		fmt.Println(d.Microseconds())
		time.Sleep(100 * time.Millisecond)
	}
	return 0
}

// cpu is the CPU time the server has used so far.
func (c *crowd) cpu() time.Duration { return processCPU(c.b, c.srv.Pid()) }

// processCPU is the CPU time process pid has used so far.
func processCPU(b *testing.B, pid int) time.Duration {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	// The fields after the command (which may hold spaces) in parentheses:
	// utime and stime are the 12th and 13th, in clock ticks (100 a second).
	fields := strings.Fields(string(raw[bytes.LastIndexByte(raw, ')')+1:]))
	utime, _ := strconv.ParseInt(fields[11], 10, 64)
	stime, _ := strconv.ParseInt(fields[12], 10, 64)
	return time.Duration(utime+stime) * 10 * time.Millisecond
}

func (c *crowd) sampleRSS() {
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-c.rssStop:
			return
		case <-t.C:
		}
		raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", c.srv.Pid()))
		if err != nil {
			continue
		}
		var kb float64
		for _, line := range strings.Split(string(raw), "\n") {
			if _, err := fmt.Sscanf(line, "VmRSS: %f kB", &kb); err == nil {
				break
			}
		}
		c.rssMu.Lock()
		c.rssPeak = max(c.rssPeak, kb/1024)
		c.rssMu.Unlock()
	}
}

func (c *crowd) peakRSS() float64 {
	c.rssMu.Lock()
	defer c.rssMu.Unlock()
	return c.rssPeak
}

// stop ends the sync loops: each wakes on a last message, sees stopping
// and returns.
func (c *crowd) stop() {
	close(c.rssStop)
	c.stopping.Store(true)
	c.srv.Stop() // the long-polls end with the server
	c.wg.Wait()
	c.client.CloseIdleConnections()
}
