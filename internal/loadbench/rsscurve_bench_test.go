package loadbench

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/tributary-hs/tributary/internal/testserver"
)

// BenchmarkRSSCurve is issue 14's memory curve: one server, five load runs
// one after the other, each by new users (so that every per-user and
// per-room cache meets new keys): 100 users register, log in, each
// creates a room, invites and is joined by the next user, and they send
// 20 messages each and sync. It reports the server's RSS (and its own part,
// RssAnon) after each run: a server whose caches are bounded levels off.
//
// TRIBUTARY_BENCH_RSS_RUNS sets another number of runs, to see where the
// curve levels off.
func BenchmarkRSSCurve(b *testing.B) {
	const users, messages = 100, 20
	runs := 5
	if n, err := strconv.Atoi(os.Getenv("TRIBUTARY_BENCH_RSS_RUNS")); err == nil && n > 0 {
		runs = n
	}
	for b.Loop() {
		opts := testserver.Options{Args: []string{"--enable-registration", "--disable-rate-limits"}}
		dir := os.Getenv("TRIBUTARY_BENCH_PROFILE") // a heap profile after each run
		if dir != "" {
			opts.Env = append(opts.Env, "TRIBUTARY_PPROF_ADDR="+pprofAddr)
		}
		srv := testserver.Start(b, opts)
		b.ReportMetric(rssMiB(b, srv.Pid()), "RSS-MiB-start")
		for run := 1; run <= runs; run++ {
			loadRun(b, srv, run, users, messages)
			b.ReportMetric(rssMiB(b, srv.Pid()), fmt.Sprintf("RSS-MiB-run%d", run))
			b.ReportMetric(statusMiB(b, srv.Pid(), "RssAnon:"), fmt.Sprintf("anon-MiB-run%d", run))
			if dir != "" {
				saveHeap(b, filepath.Join(dir, fmt.Sprintf("rsscurve-heap-%d.pprof", run)))
			}
		}
		srv.Stop()
	}
}

// saveHeap writes the server's heap profile (after a GC) to file.
func saveHeap(b *testing.B, file string) {
	resp, err := http.Get("http://" + pprofAddr + "/debug/pprof/heap?gc=1")
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err == nil {
		err = os.WriteFile(file, raw, 0o644)
	}
	if err != nil {
		b.Fatal(err)
	}
}

func loadRun(b *testing.B, srv *testserver.Server, run, users, messages int) {
	base := srv.URL + "/_matrix/client/v3"
	tokens := make([]string, users)
	rooms := make([]string, users)
	var next atomic.Int64
	each := func(fn func(i int) error) {
		next.Store(-1)
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				for {
					i := int(next.Add(1))
					if i >= users || b.Failed() {
						return
					}
					if err := fn(i); err != nil {
						b.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
		if b.Failed() {
			b.FailNow()
		}
	}
	check := func(what string, code int, body map[string]any, err error) error {
		if err != nil || code != 200 {
			return fmt.Errorf("%s: %d %v %v", what, code, body, err)
		}
		return nil
	}
	each(func(i int) error {
		code, body, err := call("POST", base+"/register", "", map[string]any{"username": fmt.Sprintf("r%du%d", run, i),
			"password": "benchmark-password", "auth": map[string]any{"type": "m.login.dummy"}})
		if err := check("register", code, body, err); err != nil {
			return err
		}
		tokens[i] = body["access_token"].(string)
		return nil
	})
	each(func(i int) error {
		code, body, err := call("POST", base+"/createRoom", tokens[i], map[string]any{"preset": "private_chat",
			"invite": []string{fmt.Sprintf("@r%du%d:%s", run, (i+1)%users, srv.Opts.ServerName)}})
		if err := check("createRoom", code, body, err); err != nil {
			return err
		}
		rooms[i] = body["room_id"].(string)
		return nil
	})
	each(func(i int) error {
		prev := rooms[(i+users-1)%users]
		code, body, err := call("POST", base+"/rooms/"+url.PathEscape(prev)+"/join", tokens[i], map[string]any{})
		return check("join", code, body, err)
	})
	each(func(i int) error {
		for m := range messages {
			room := rooms[i]
			if m%2 == 1 {
				room = rooms[(i+users-1)%users]
			}
			code, body, err := call("PUT", base+"/rooms/"+url.PathEscape(room)+fmt.Sprintf("/send/m.room.message/r%dm%d", run, m),
				tokens[i], map[string]any{"msgtype": "m.text", "body": fmt.Sprintf("message %d of run %d", m, run)})
			if err := check("send", code, body, err); err != nil {
				return err
			}
		}
		code, body, err := call("GET", base+"/sync?timeout=0", tokens[i], nil)
		return check("sync", code, body, err)
	})
}
