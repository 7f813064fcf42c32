package loadbench

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/federation"
	"maunium.net/go/mautrix/federation/pdu"
	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/internal/pgtest"
	"github.com/tributary-hs/tributary/internal/testserver"
)

// BenchmarkFederationJoinRemote10k measures a user of the real binary
// joining a room of another server whose state has 10,000 members, from
// the client's POST /join to its answer, and then to the room in the
// user's first /sync (goal: the join under 5 s on loopback, issue 15).
// The room is on a fake server C; its members are users of 20 servers
// (fake too, each serving its key), so A checks 10,000 signatures with
// 20 keys it must fetch, the auth rules of every event, and stores 10,000
// outliers, a state snapshot and the current state. Each iteration is a
// new room, built and signed before the clock starts.
func BenchmarkFederationJoinRemote10k(b *testing.B) {
	const (
		members = 10_000
		servers = 20
	)
	for _, db := range []string{"sqlite", "postgres"} {
		b.Run(db, func(b *testing.B) {
			args := []string{"--enable-registration", "--disable-rate-limits"}
			if db == "postgres" {
				args = append(args, "--database-url", pgtest.URL(b))
			}
			srv := testserver.Start(b, testserver.Options{Federation: true, Args: args})
			alice := srv.Register(b, &mautrix.ReqRegister[any]{Username: "alice", Password: "correct horse battery"})
			resident := newJoinHost(b)
			var memberServers []*benchServer
			for range servers {
				memberServers = append(memberServers, newBenchServer(b))
			}
			var joinTotal, syncTotal time.Duration
			for i := range b.N {
				b.StopTimer()
				roomID := resident.buildRoom(b, memberServers, members, i)
				b.StartTimer()
				t0 := time.Now()
				if _, err := alice.JoinRoom(b.Context(), roomID.String(), nil); err != nil {
					b.Fatalf("join: %v", err)
				}
				joined := time.Since(t0)
				resp, err := alice.SyncRequest(b.Context(), 0, "", "", true, "")
				if err != nil {
					b.Fatal(err)
				}
				jr, ok := resp.Rooms.Join[roomID]
				if !ok || len(jr.State.Events) < members {
					b.Fatalf("sync after the join: room there %v, %d state events", ok, len(resp.Rooms.Join[roomID].State.Events))
				}
				joinTotal += joined
				syncTotal += time.Since(t0) - joined
			}
			b.ReportMetric(joinTotal.Seconds()/float64(b.N), "s/join")
			b.ReportMetric(syncTotal.Seconds()/float64(b.N), "s/first-sync")
		})
	}
}

// joinHost is a fake resident server C: one room at a time, answering
// make_join and send_join from what buildRoom made.
type joinHost struct {
	*benchServer
	room atomic.Pointer[joinRoom]
}

type joinRoom struct {
	rv       id.RoomVersion
	roomID   id.RoomID
	last     id.EventID
	depth    int64
	auth     []id.EventID // create, power levels, join rules
	sendJoin []byte       // the answer, prebuilt
}

func newJoinHost(b *testing.B) *joinHost {
	h := &joinHost{benchServer: &benchServer{key: federation.GenerateSigningKey()}}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(h.serve))
	srv.StartTLS()
	b.Cleanup(srv.Close)
	h.name = srv.Listener.Addr().String()
	return h
}

func (h *joinHost) serve(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	room := h.room.Load()
	switch {
	case r.URL.Path == "/_matrix/key/v2/server":
		_ = json.NewEncoder(w).Encode(h.key.GenerateKeyResponse(h.name, nil))
	case strings.HasPrefix(r.URL.Path, "/_matrix/federation/v1/make_join/") && room != nil:
		parts := strings.Split(r.URL.EscapedPath(), "/")
		user, _ := url.PathUnescape(parts[len(parts)-1])
		_ = json.NewEncoder(w).Encode(map[string]any{"room_version": room.rv, "event": map[string]any{
			"type": "m.room.member", "room_id": room.roomID, "sender": user, "state_key": user,
			"content": map[string]any{"membership": "join"}, "depth": room.depth + 1,
			"prev_events": []id.EventID{room.last}, "auth_events": room.auth, "origin_server_ts": time.Now().UnixMilli()}})
	case strings.HasPrefix(r.URL.Path, "/_matrix/federation/v2/send_join/") && room != nil:
		_, _ = w.Write(room.sendJoin)
	default:
		w.WriteHeader(http.StatusNotFound)
		_, _ = w.Write([]byte(`{"errcode":"M_NOT_FOUND","error":"not here"}`))
	}
}

// buildRoom makes a room v11 on C with members joined users spread over
// the member servers, and the send_join answer for it.
func (h *joinHost) buildRoom(b *testing.B, memberServers []*benchServer, members, n int) id.RoomID {
	rv := id.RoomV11
	room := &joinRoom{rv: rv, roomID: id.RoomID(fmt.Sprintf("!bench%d-%d:%s", n, time.Now().UnixNano(), h.name))}
	creator := id.NewUserID("creator", h.name)
	empty := ""
	var state, chain []json.RawMessage
	add := func(signer *benchServer, sender id.UserID, typ string, sk *string, content string, auth []id.EventID) id.EventID {
		ev := &pdu.PDU{Type: typ, StateKey: sk, Sender: sender, RoomID: room.roomID, Content: json.RawMessage(content),
			OriginServerTS: time.Now().UnixMilli(), Depth: room.depth + 1, PrevEvents: []id.EventID{}, AuthEvents: auth}
		if room.last != "" {
			ev.PrevEvents = []id.EventID{room.last}
		}
		eid, raw := signer.sign(b, rv, ev)
		room.last, room.depth = eid, room.depth+1
		state = append(state, raw)
		return eid
	}
	createID := add(h.benchServer, creator, "m.room.create", &empty, `{"room_version":"11"}`, []id.EventID{})
	csk := creator.String()
	creatorJoin := add(h.benchServer, creator, "m.room.member", &csk, `{"membership":"join"}`, []id.EventID{createID})
	plID := add(h.benchServer, creator, "m.room.power_levels", &empty,
		`{"users":{"`+creator.String()+`":100},"users_default":0}`, []id.EventID{createID, creatorJoin})
	jrID := add(h.benchServer, creator, "m.room.join_rules", &empty, `{"join_rule":"public"}`,
		[]id.EventID{createID, creatorJoin, plID})
	room.auth = []id.EventID{createID, plID, jrID}
	chain = append(chain, state...) // the creator's events authorise everyone's
	for i := range members {
		signer := memberServers[i%len(memberServers)]
		user := id.NewUserID("u"+strconv.Itoa(i), signer.name)
		sk := user.String()
		add(signer, user, "m.room.member", &sk, `{"membership":"join","displayname":"Member `+strconv.Itoa(i)+`"}`, room.auth)
	}
	answer, err := json.Marshal(map[string]any{"origin": h.name, "state": state, "auth_chain": chain})
	if err != nil {
		b.Fatal(err)
	}
	room.sendJoin = answer
	h.room.Store(room)
	return room.roomID
}
