package loadbench

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tidwall/gjson"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/federation"
	"maunium.net/go/mautrix/federation/pdu"
	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/internal/pgtest"
	"github.com/tributary-hs/tributary/internal/testserver"
)

// outboundDestinations is how many servers the fan-out benchmark sends to.
const outboundDestinations = 50

// BenchmarkFederationOutbound measures outbound fan-out: 50 fake servers
// (in this process, each with its own key and TLS listener on loopback)
// join a public room of the real binary through make_join/send_join; then
// a local user sends b.N messages (four clients at once), and the clock
// stops when every destination has received every message in /send
// transactions. Reported: messages/s (each sent to all 50), PDU
// deliveries/s, and the lag from a message's send returning to its
// arrival at a destination (p50, p99, max over all messages and
// destinations).
func BenchmarkFederationOutbound(b *testing.B) {
	for _, db := range []string{"sqlite", "postgres"} {
		b.Run(db, func(b *testing.B) {
			cfg := filepath.Join(b.TempDir(), "tributary.yaml")
			if err := os.WriteFile(cfg, []byte("federation:\n  retry_backoff: 100ms\n  max_retry_backoff: 1s\n"), 0o600); err != nil {
				b.Fatal(err)
			}
			args := []string{"--config", cfg, "--enable-registration", "--disable-rate-limits"}
			if db == "postgres" {
				args = append(args, "--database-url", pgtest.URL(b))
			}
			srv := testserver.Start(b, testserver.Options{Federation: true, Args: args})
			alice := srv.Register(b, &mautrix.ReqRegister[any]{Username: "alice", Password: "correct horse battery"})
			created, err := alice.CreateRoom(b.Context(), &mautrix.ReqCreateRoom{Preset: "public_chat"})
			if err != nil {
				b.Fatal(err)
			}
			n := b.N
			dests := make([]*destServer, outboundDestinations)
			for i := range dests {
				dests[i] = newDestServer(b, n)
				dests[i].join(b, srv, created.RoomID)
			}
			// The joins are passed on to the servers in the room before
			// them: the clock starts once the last join reached them all
			// (each destination's queue is in order, so every earlier one
			// has too).
			last := id.NewUserID("bench", dests[len(dests)-1].name)
			for _, d := range dests[:len(dests)-1] {
				select {
				case <-d.joined(last):
				case <-time.After(time.Minute):
					b.Fatalf("%s did not get the last join", d.name)
				}
			}
			var sentAt = make([]atomic.Int64, n)
			var next atomic.Int64
			b.ResetTimer()
			start := time.Now()
			var wg sync.WaitGroup
			errs := make(chan error, 4)
			for range 4 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for {
						i := int(next.Add(1) - 1)
						if i >= n {
							return
						}
						if _, err := alice.SendText(b.Context(), created.RoomID, "m"+strconv.Itoa(i)); err != nil {
							errs <- err
							return
						}
						sentAt[i].Store(time.Now().UnixNano())
					}
				}()
			}
			wg.Wait()
			close(errs)
			if err := <-errs; err != nil {
				b.Fatal(err)
			}
			sendElapsed := time.Since(start)
			deadline := time.After(5 * time.Minute)
			for _, d := range dests {
				select {
				case <-d.done:
				case <-deadline:
					b.Fatalf("destination %s has %d of %d messages after 5 minutes", d.name, d.got.Load(), n)
				}
			}
			elapsed := time.Since(start)
			b.StopTimer()
			var lags []float64
			for _, d := range dests {
				for i := range n {
					lags = append(lags, float64(max(0, d.arrived[i].Load()-sentAt[i].Load()))/1e6)
				}
			}
			slices.Sort(lags)
			b.ReportMetric(float64(n)/elapsed.Seconds(), "msgs/s")
			b.ReportMetric(float64(n)/sendElapsed.Seconds(), "sent/s")
			b.ReportMetric(float64(n*outboundDestinations)/elapsed.Seconds(), "deliveries/s")
			b.ReportMetric(lags[len(lags)/2], "lag-p50-ms")
			b.ReportMetric(lags[len(lags)*99/100], "lag-p99-ms")
			b.ReportMetric(lags[len(lags)-1], "lag-max-ms")
		})
	}
}

// destServer is a fake destination: it serves its key, joins through
// make_join/send_join, and takes transactions, noting when each benchmark
// message ("m<i>") first arrives.
type destServer struct {
	benchServer
	arrived []atomic.Int64
	got     atomic.Int64
	n       int64
	done    chan struct{}

	mu    sync.Mutex
	joins map[string]chan struct{} // closed when the user's join arrives
}

// joined is closed when the join of user has arrived.
func (d *destServer) joined(user id.UserID) <-chan struct{} {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.joinChanLocked(user)
}

func (d *destServer) joinChanLocked(user id.UserID) chan struct{} {
	ch := d.joins[string(user)]
	if ch == nil {
		ch = make(chan struct{})
		d.joins[string(user)] = ch
	}
	return ch
}

func newDestServer(b *testing.B, n int) *destServer {
	d := &destServer{arrived: make([]atomic.Int64, n), n: int64(n), done: make(chan struct{}),
		joins: map[string]chan struct{}{}}
	d.key = federation.GenerateSigningKey()
	srv := httptest.NewUnstartedServer(http.HandlerFunc(d.serve))
	srv.StartTLS()
	b.Cleanup(srv.Close)
	d.name = srv.Listener.Addr().String()
	return d
}

func (d *destServer) serve(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.URL.Path == "/_matrix/key/v2/server":
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(d.key.GenerateKeyResponse(d.name, nil))
	case strings.HasPrefix(r.URL.Path, "/_matrix/federation/v1/send/"):
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		now := time.Now().UnixNano()
		for _, p := range gjson.GetBytes(body, "pdus").Array() {
			if p.Get("type").Str == "m.room.member" {
				d.mu.Lock()
				ch := d.joinChanLocked(id.UserID(p.Get("state_key").Str))
				select {
				case <-ch:
				default:
					close(ch)
				}
				d.mu.Unlock()
				continue
			}
			text := p.Get("content.body").Str
			if !strings.HasPrefix(text, "m") {
				continue
			}
			i, err := strconv.Atoi(text[1:])
			if err != nil || i < 0 || i >= len(d.arrived) {
				continue
			}
			if d.arrived[i].CompareAndSwap(0, now) && d.got.Add(1) == d.n {
				close(d.done)
			}
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"pdus":{}}`))
	default:
		http.NotFound(w, r)
	}
}

// join makes the destination's user join the room.
func (d *destServer) join(b *testing.B, srv *testserver.Server, roomID id.RoomID) {
	ctx := b.Context()
	cli := d.client()
	user := id.NewUserID("bench", d.name)
	mj, err := cli.MakeJoin(ctx, &federation.ReqMakeJoin{RoomID: roomID, UserID: user, Via: srv.Opts.ServerName,
		SupportedVersions: []id.RoomVersion{id.RoomV10, id.RoomV11, id.RoomV12}})
	if err != nil {
		b.Fatal(err)
	}
	var join pdu.PDU
	if err := json.Unmarshal(mj.Event, &join); err != nil {
		b.Fatal(err)
	}
	join.OriginServerTS = time.Now().UnixMilli()
	joinID, joinRaw := d.sign(b, mj.RoomVersion, &join)
	if _, err := cli.SendJoin(ctx, &federation.ReqSendJoin{RoomID: roomID, EventID: joinID, Event: joinRaw,
		Via: srv.Opts.ServerName, OmitMembers: true}); err != nil {
		b.Fatal(err)
	}
}
