package e2e

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"maunium.net/go/mautrix"

	"github.com/tributary-hs/tributary/internal/testserver"
)

// A parked /sync long-poll costs its connection's goroutines little stack:
// thousands park at once (issue 12's crowd). The request's goroutine parks
// in the handler, and the garbage collector halves a stack only while less
// than a quarter of it is used, so the parked stack must stay under about
// 3 KiB for the goroutine to fit in 8 KiB rather than 16; net/http's
// background reader takes 4 KiB more. The stacks are read from the
// runtime's statistics (pprof, after forced collections) before and after
// 200 long-polls park, after each answered once.
func TestParkedSyncStack(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	pprofAddr := ln.Addr().String()
	ln.Close()
	srv := testserver.Start(t, testserver.Options{Args: openArgs, Env: []string{"TRIBUTARY_PPROF_ADDR=" + pprofAddr}})
	alice := register(t, srv, "alice", defaultPassword)
	room, err := alice.CreateRoom(t.Context(), &mautrix.ReqCreateRoom{Preset: "public_chat"})
	if err != nil {
		t.Fatal(err)
	}
	const polls = 200
	syncURL := func(since string) string {
		return srv.URL + "/_matrix/client/v3/sync?timeout=120000&since=" + url.QueryEscape(since) +
			"&filter=" + url.QueryEscape(`{"room":{"timeline":{"limit":5},"state":{"lazy_load_members":true}}}`)
	}
	auth := http.Header{"Authorization": {"Bearer " + alice.AccessToken}}
	resp, raw := rawRequest(t, nil, "GET", srv.URL+"/_matrix/client/v3/sync?timeout=0", auth, nil)
	if resp.StatusCode != 200 {
		t.Fatalf("initial sync: HTTP %d %s", resp.StatusCode, raw)
	}
	since := str(t, decode(t, raw), "next_batch")

	pprof := func(path string) string {
		deadline := time.Now().Add(30 * time.Second)
		for {
			r, err := http.Get("http://" + pprofAddr + "/debug/pprof/" + path)
			if err == nil {
				b, err := io.ReadAll(r.Body)
				r.Body.Close()
				if err == nil && r.StatusCode == 200 {
					return string(b)
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("pprof %s: %v", path, err)
			}
			time.Sleep(50 * time.Millisecond) // the listener starts beside the server's
		}
	}
	stackRe := regexp.MustCompile(`(?m)^# Stack = (\d+) /`)
	stackInUse := func() int {
		var out string
		for range 5 { // each collection halves a stack at most once
			out = pprof("heap?gc=1&debug=1")
		}
		m := stackRe.FindStringSubmatch(out)
		if m == nil {
			t.Fatal("no stack statistics in the heap profile")
		}
		n, _ := strconv.Atoi(m[1])
		return n
	}
	parkedRe := regexp.MustCompile(`(?m)^(\d+) @[^\n]*\n(?:#[^\n]*\n)*?#[^\n]*stream\.\(\*Local\)\.Wait`)
	waitParked := func(want int) {
		deadline := time.Now().Add(time.Minute)
		for {
			n := 0
			for _, m := range parkedRe.FindAllStringSubmatch(pprof("goroutine?debug=1"), -1) {
				c, _ := strconv.Atoi(m[1])
				n += c
			}
			if n >= want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d of %d long-polls parked", n, want)
			}
			time.Sleep(20 * time.Millisecond) // polling the goroutine profile
		}
	}
	before := stackInUse()

	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	tr := &http.Transport{MaxIdleConnsPerHost: polls}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	answered := make(chan string, polls)
	for range polls {
		wg.Go(func() {
			next := since
			for first := true; ctx.Err() == nil; first = false {
				req, _ := http.NewRequestWithContext(ctx, "GET", syncURL(next), nil)
				req.Header = auth.Clone()
				r, err := client.Do(req)
				if err != nil {
					return
				}
				b, err := io.ReadAll(r.Body)
				r.Body.Close()
				if err != nil || r.StatusCode != 200 {
					return
				}
				var answer struct {
					NextBatch string `json:"next_batch"`
				}
				if json.Unmarshal(b, &answer) != nil || answer.NextBatch == "" {
					return
				}
				next = answer.NextBatch
				if first {
					answered <- string(b)
				}
			}
		})
	}
	waitParked(polls)
	// A message wakes every long-poll: each answers (the build and its
	// encoding) and parks again on the same connection.
	if _, err := alice.SendText(t.Context(), room.RoomID, "wake up"); err != nil {
		t.Fatal(err)
	}
	for range polls {
		if body := <-answered; !strings.Contains(body, "wake up") {
			t.Fatalf("a woken long-poll answered without the message: %s", body)
		}
	}
	waitParked(polls)
	per := (stackInUse() - before) / polls
	t.Logf("%d bytes of stack per parked long-poll", per)
	if per > 14<<10 {
		t.Fatalf("a parked long-poll holds %d bytes of stack, want at most 12 KiB (8 for the request, 4 for net/http's reader)", per)
	}
}
