package loadbench

import (
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"go.mau.fi/util/exhttp"
	"go.mau.fi/util/jsontime"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/federation"
	"maunium.net/go/mautrix/federation/pdu"
	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/internal/pgtest"
	"github.com/tributary-hs/tributary/internal/testserver"
)

// BenchmarkFederationInbound measures inbound PDUs per second: a fake
// server C (serving its key on loopback) joins a public room of the real
// binary through make_join/send_join, then sends b.N messages, each on
// the last, in transactions of 50 PDUs, one transaction at a time, as a
// server sends to one destination. Every PDU goes through the checks on
// receipt: format, C's signature (key cached after the first), content
// hash, auth against its auth events, the state before it and the current
// state, then one commit each through the room's writer. Reported as
// pdus/s (goal: ≥ 2,000/s on SQLite with 2 cores, issue 15).
func BenchmarkFederationInbound(b *testing.B) {
	for _, db := range []string{"sqlite", "postgres"} {
		b.Run(db, func(b *testing.B) {
			args := []string{"--enable-registration", "--disable-rate-limits"}
			if db == "postgres" {
				args = append(args, "--database-url", pgtest.URL(b))
			}
			srv := testserver.Start(b, testserver.Options{Federation: true, Args: args})
			alice := srv.Register(b, &mautrix.ReqRegister[any]{Username: "alice", Password: "correct horse battery"})
			created, err := alice.CreateRoom(b.Context(), &mautrix.ReqCreateRoom{Preset: "public_chat"})
			if err != nil {
				b.Fatal(err)
			}
			c := newBenchServer(b)
			cli := c.client()
			ctx := b.Context()
			user := id.NewUserID("carol", c.name)
			mj, err := cli.MakeJoin(ctx, &federation.ReqMakeJoin{RoomID: created.RoomID, UserID: user,
				Via: srv.Opts.ServerName, SupportedVersions: []id.RoomVersion{id.RoomV10, id.RoomV11, id.RoomV12}})
			if err != nil {
				b.Fatal(err)
			}
			var join pdu.PDU
			if err := json.Unmarshal(mj.Event, &join); err != nil {
				b.Fatal(err)
			}
			join.OriginServerTS = time.Now().UnixMilli()
			rv := mj.RoomVersion
			joinID, joinRaw := c.sign(b, rv, &join)
			sj, err := cli.SendJoin(ctx, &federation.ReqSendJoin{RoomID: created.RoomID, EventID: joinID, Event: joinRaw,
				Via: srv.Opts.ServerName})
			if err != nil {
				b.Fatal(err)
			}
			var plID id.EventID
			for _, raw := range sj.State {
				var ev pdu.PDU
				if err := json.Unmarshal(raw, &ev); err != nil {
					b.Fatal(err)
				}
				if ev.Type == "m.room.power_levels" {
					if plID, err = ev.GetEventID(rv); err != nil {
						b.Fatal(err)
					}
				}
			}
			// The messages are built before the clock starts.
			auth := []id.EventID{plID, joinID}
			prev, depth := joinID, join.Depth
			msgs := make([]json.RawMessage, b.N)
			for i := range msgs {
				content, _ := json.Marshal(map[string]any{"msgtype": "m.text", "body": "message " + strconv.Itoa(i)})
				depth++
				ev := &pdu.PDU{Type: "m.room.message", Sender: user, RoomID: created.RoomID, Content: content,
					OriginServerTS: time.Now().UnixMilli(), Depth: depth, PrevEvents: []id.EventID{prev}, AuthEvents: auth}
				prev, msgs[i] = c.sign(b, rv, ev)
			}
			b.ResetTimer()
			start := time.Now()
			for i := 0; i < len(msgs); i += 50 {
				batch := msgs[i:min(i+50, len(msgs))]
				resp, err := cli.SendTransaction(ctx, &federation.ReqSendTransaction{Destination: srv.Opts.ServerName,
					TxnID: strconv.Itoa(i), Origin: c.name, OriginServerTS: jsontime.UM(time.Now()), PDUs: batch})
				if err != nil {
					b.Fatal(err)
				}
				for eid, r := range resp.PDUs {
					if r.Error != "" {
						b.Fatalf("PDU %s: %s", eid, r.Error)
					}
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "pdus/s")
		})
	}
}

// benchServer is a server C run by the benchmark: it serves its key on
// loopback and signs requests and events with it.
type benchServer struct {
	name string
	key  *federation.SigningKey
}

func newBenchServer(b *testing.B) *benchServer {
	f := &benchServer{key: federation.GenerateSigningKey()}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/_matrix/key/v2/server" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(f.key.GenerateKeyResponse(f.name, nil))
	}))
	srv.StartTLS()
	b.Cleanup(srv.Close)
	f.name = srv.Listener.Addr().String()
	return f
}

func (f *benchServer) client() *federation.Client {
	settings := exhttp.SensibleClientSettings
	settings.InsecureTLS = true
	cli := federation.NewClient(f.name, f.key, nil, settings)
	cli.AllowIP = func(net.IP) bool { return true }
	return cli
}

func (f *benchServer) sign(b *testing.B, rv id.RoomVersion, ev *pdu.PDU) (id.EventID, json.RawMessage) {
	if err := ev.FillContentHash(); err != nil {
		b.Fatal(err)
	}
	if err := ev.Sign(rv, f.name, f.key.ID, f.key.Priv); err != nil {
		b.Fatal(err)
	}
	eid, err := ev.GetEventID(rv)
	if err != nil {
		b.Fatal(err)
	}
	raw, err := json.Marshal(ev)
	if err != nil {
		b.Fatal(err)
	}
	return eid, raw
}
