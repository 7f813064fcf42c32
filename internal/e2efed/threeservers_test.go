package e2efed

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tidwall/gjson"
	"go.mau.fi/util/jsontime"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/federation"
	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/internal/pgtest"
	"github.com/tributary-hs/tributary/internal/testserver"
)

// trio is three real servers A, B and C and a user on each, all joined
// to alice's public room #square:A.
type trio struct {
	a, b, c           *testserver.Server
	alice, bob, carol *mautrix.Client
	room              id.RoomID
	servers           []*testserver.Server
	clients           []*mautrix.Client
}

// startTrio starts A, B and C, each on SQLite or PostgreSQL as dbs says
// ("sps": A and C on SQLite, B on PostgreSQL); bob of B joins by the
// alias, carol of C by the room ID (through A).
func startTrio(t *testing.T, dbs string, args ...string) *trio {
	t.Helper()
	ctx := t.Context()
	server := func(db byte) *testserver.Server {
		if db == 'p' {
			return start(t, append([]string{"--database-url", pgtest.URL(t)}, args...)...)
		}
		return start(t, args...)
	}
	tr := &trio{a: server(dbs[0]), b: server(dbs[1]), c: server(dbs[2])}
	tr.alice, tr.bob, tr.carol = register(t, tr.a, "alice"), register(t, tr.b, "bob"), register(t, tr.c, "carol")
	created, err := tr.alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat", Name: "Square",
		RoomAliasName: "square"})
	if err != nil {
		t.Fatal(err)
	}
	tr.room = created.RoomID
	resp, err := tr.bob.JoinRoom(ctx, id.NewRoomAlias("square", tr.a.Opts.ServerName).String(), nil)
	if err != nil || resp.RoomID != tr.room {
		t.Fatalf("bob joins by alias: %+v, %v", resp, err)
	}
	resp, err = tr.carol.JoinRoom(ctx, tr.room.String(), &mautrix.ReqJoinRoom{Via: []string{tr.a.Opts.ServerName}})
	if err != nil || resp.RoomID != tr.room {
		t.Fatalf("carol joins by room ID: %+v, %v", resp, err)
	}
	tr.servers = []*testserver.Server{tr.a, tr.b, tr.c}
	tr.clients = []*mautrix.Client{tr.alice, tr.bob, tr.carol}
	// Each sees all three joined.
	for _, cli := range tr.clients {
		waitForSync(t, cli, "all three members", func(*mautrix.RespSync) bool {
			m, err := cli.JoinedMembers(ctx, tr.room)
			return err == nil && len(m.Joined) == 3
		})
	}
	return tr
}

// waitBodies long-polls cli's sync from since until the room's timeline
// has brought every one of the message bodies; it returns the events that
// came, by body. Its timelines are not limited to the default 10 events,
// which would leave gaps.
func waitBodies(t *testing.T, cli *mautrix.Client, roomID id.RoomID, since string, bodies ...string) map[string]*event.Event {
	t.Helper()
	got := map[string]*event.Event{}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	for {
		resp, err := cli.SyncRequest(ctx, 5000, since, `{"room":{"timeline":{"limit":1000}}}`, false, event.PresenceOnline)
		if err != nil {
			var missing []string
			for _, b := range bodies {
				if got[b] == nil {
					missing = append(missing, b)
				}
			}
			t.Fatalf("%s waiting for %q: %v", cli.UserID, missing, err)
		}
		if jr, ok := resp.Rooms.Join[roomID]; ok {
			if jr.Timeline.Limited {
				t.Fatalf("%s's timeline with a limit of 1000 events is limited", cli.UserID)
			}
			for _, ev := range jr.Timeline.Events {
				if b := gjson.GetBytes(ev.Content.VeryRaw, "body").Str; ev.Type == event.EventMessage && b != "" {
					got[b] = ev
				}
			}
		}
		done := true
		for _, b := range bodies {
			done = done && got[b] != nil
		}
		if done {
			return got
		}
		since = resp.NextBatch
	}
}

// Three real servers (C on PostgreSQL): users of A, B and C in one room
// (joined by alias and by ID) see each other's messages, typing, read
// receipts and a redaction; a kicked user sees the kick and nothing after.
func TestThreeServersConverse(t *testing.T) {
	tr := startTrio(t, "ssp")
	ctx := t.Context()
	since := make([]string, 3)
	for i, cli := range tr.clients {
		since[i] = syncToken(t, cli)
	}
	var want []string
	for i, cli := range tr.clients {
		for n := range 3 {
			body := fmt.Sprintf("%s says %d", cli.UserID.Localpart(), n)
			want = append(want, body)
			if _, err := cli.SendText(ctx, tr.room, body); err != nil {
				t.Fatalf("%d: %v", i, err)
			}
		}
	}
	var last *event.Event
	for i, cli := range tr.clients {
		got := waitBodies(t, cli, tr.room, since[i], want...)
		for _, b := range want {
			if wantSender := strings.Fields(b)[0]; got[b].Sender.Localpart() != wantSender {
				t.Fatalf("%s sees %q sent by %s", cli.UserID, b, got[b].Sender)
			}
		}
		last = got["carol says 2"]
	}

	// bob types: alice and carol see it.
	if _, err := tr.bob.UserTyping(ctx, tr.room, true, 20*time.Second); err != nil {
		t.Fatal(err)
	}
	for _, cli := range []*mautrix.Client{tr.alice, tr.carol} {
		waitForSync(t, cli, "bob typing", func(resp *mautrix.RespSync) bool {
			return ephemeral(resp, tr.room, "m.typing", "user_ids", tr.bob.UserID.String())
		})
	}
	// carol reads the last message: alice and bob see her receipt.
	if err := tr.carol.SendReceipt(ctx, tr.room, last.ID, event.ReceiptTypeRead, nil); err != nil {
		t.Fatal(err)
	}
	for _, cli := range []*mautrix.Client{tr.alice, tr.bob} {
		waitForSync(t, cli, "carol's receipt", func(resp *mautrix.RespSync) bool {
			return ephemeral(resp, tr.room, "m.receipt", gjson.Escape(last.ID.String())+".m\\.read."+
				gjson.Escape(tr.carol.UserID.String()), "")
		})
	}

	// bob redacts his first message: alice and carol see it redacted.
	bobsFirst, err := tr.alice.GetEvent(ctx, tr.room, firstOf(t, tr.alice, tr.room, "bob says 0"))
	if err != nil {
		t.Fatal(err)
	}
	red, err := tr.bob.RedactEvent(ctx, tr.room, bobsFirst.ID)
	if err != nil {
		t.Fatal(err)
	}
	for _, cli := range []*mautrix.Client{tr.alice, tr.carol} {
		waitForEvent(t, cli, tr.room, red.EventID)
		if ev, err := cli.GetEvent(ctx, tr.room, bobsFirst.ID); err != nil || gjson.GetBytes(ev.Content.VeryRaw, "body").Exists() {
			t.Fatalf("%s's copy of bob's redacted message: %v, %v", cli.UserID, ev, err)
		}
	}
	// alice kicks carol: carol sees it, and not what is said afterwards.
	sinceC := syncToken(t, tr.carol)
	if _, err := tr.alice.KickUser(ctx, tr.room, &mautrix.ReqKickUser{UserID: tr.carol.UserID, Reason: "enough"}); err != nil {
		t.Fatal(err)
	}
	waitForSyncFrom(t, tr.carol, sinceC, "the kick", func(resp *mautrix.RespSync) bool { return resp.Rooms.Leave[tr.room] != nil })
	sinceB := syncToken(t, tr.bob)
	after, err := tr.alice.SendText(ctx, tr.room, "carol has gone")
	if err != nil {
		t.Fatal(err)
	}
	waitBodies(t, tr.bob, tr.room, sinceB, "carol has gone")
	if _, err := tr.carol.GetEvent(ctx, tr.room, after.EventID); err == nil {
		t.Fatal("carol can read a message sent after she was kicked")
	}
}

// firstOf is the ID of the message with that body in the room's history
// as cli sees it.
func firstOf(t *testing.T, cli *mautrix.Client, roomID id.RoomID, body string) id.EventID {
	t.Helper()
	resp, err := cli.Messages(t.Context(), roomID, "", "", mautrix.DirectionBackward, nil, 100)
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range resp.Chunk {
		if gjson.GetBytes(ev.Content.VeryRaw, "body").Str == body {
			return ev.ID
		}
	}
	t.Fatalf("%s has no message %q", cli.UserID, body)
	return ""
}

// C is killed (SIGKILL) right after carol's messages were acknowledged;
// while it is down alice and bob talk. After its restart C has every
// message sent while it was down, and A and B have carol's.
//
// With catch_up_after reached while C is down, A and B keep only the latest
// event of the room queued for C: C fetches the rest (get_missing_events).
func TestThreeServersKilledCatchesUp(t *testing.T) {
	t.Run("whole queue", func(t *testing.T) { killedCatchesUp(t, false, "sss") })
	t.Run("catch-up", func(t *testing.T) {
		cfg := filepath.Join(t.TempDir(), "catchup.yaml")
		if err := os.WriteFile(cfg, []byte("federation:\n  retry_backoff: 50ms\n  max_retry_backoff: 200ms\n  catch_up_after: 1ms\n"),
			0o600); err != nil {
			t.Fatal(err)
		}
		killedCatchesUp(t, true, "sps", "--config", cfg)
	})
}

func killedCatchesUp(t *testing.T, catchUp bool, dbs string, args ...string) {
	tr := startTrio(t, dbs, args...)
	ctx := t.Context()
	sinceA, sinceB := syncToken(t, tr.alice), syncToken(t, tr.bob)
	sinceC := syncToken(t, tr.carol)
	var carolSaid []string
	for n := range 5 {
		body := fmt.Sprintf("carol before the crash %d", n)
		carolSaid = append(carolSaid, body)
		if _, err := tr.carol.SendText(ctx, tr.room, body); err != nil {
			t.Fatal(err)
		}
	}
	tr.c.Kill()
	var whileDown []string
	for n := range 3 {
		for _, cli := range []*mautrix.Client{tr.alice, tr.bob} {
			body := fmt.Sprintf("%s while C is down %d", cli.UserID.Localpart(), n)
			whileDown = append(whileDown, body)
			if _, err := cli.SendText(ctx, tr.room, body); err != nil {
				t.Fatal(err)
			}
		}
	}
	tr.c = tr.c.Restart(true)
	tr.carol.HomeserverURL, _ = url.Parse(tr.c.URL)
	// (C's start takes long enough for A and B to fail twice more.)
	if catchUp && !strings.Contains(tr.a.Logs()+tr.b.Logs(), "its queue keeps the latest event of each room") {
		t.Fatal("neither A nor B shortened its queue for C")
	}
	waitBodies(t, tr.carol, tr.room, sinceC, append(slices.Clone(carolSaid), whileDown...)...)
	waitBodies(t, tr.alice, tr.room, sinceA, append(slices.Clone(carolSaid), whileDown...)...)
	waitBodies(t, tr.bob, tr.room, sinceB, append(slices.Clone(carolSaid), whileDown...)...)
	// And the room goes on: carol's next message reaches both.
	if _, err := tr.carol.SendText(ctx, tr.room, "carol is back"); err != nil {
		t.Fatal(err)
	}
	waitBodies(t, tr.alice, tr.room, sinceA, "carol is back")
	waitBodies(t, tr.bob, tr.room, sinceB, "carol is back")
}

// roomState is a user's /state of the room: event ID by type and state key.
func roomState(t *testing.T, cli *mautrix.Client, roomID id.RoomID) map[string]id.EventID {
	t.Helper()
	var evs []*event.Event
	_, err := cli.MakeRequest(t.Context(), "GET", cli.BuildClientURL("v3", "rooms", roomID, "state"), nil, &evs)
	if err != nil {
		t.Fatalf("%s's /state: %v", cli.UserID, err)
	}
	out := map[string]id.EventID{}
	for _, ev := range evs {
		out[ev.Type.Type+"|"+ev.GetStateKey()] = ev.ID
	}
	return out
}

func describeState(st map[string]id.EventID) string {
	keys := slices.Collect(maps.Keys(st))
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "\n  %s = %s", k, st[k])
	}
	return b.String()
}

// Conflicting state sent at the same moment on the three servers — power
// levels changed by two admins, a ban racing the banned user's join, the
// topic set three ways — is resolved to the same state everywhere.
func TestThreeServersConcurrentStateConverges(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) { concurrentStateConverges(t, "sss") })
	t.Run("postgres", func(t *testing.T) { concurrentStateConverges(t, "ppp") })
}

func concurrentStateConverges(t *testing.T, dbs string) {
	tr := startTrio(t, dbs)
	ctx := t.Context()
	dave := register(t, tr.c, "dave")
	erin := register(t, tr.b, "erin")
	if _, err := erin.JoinRoom(ctx, tr.room.String(), &mautrix.ReqJoinRoom{Via: []string{tr.a.Opts.ServerName}}); err != nil {
		t.Fatalf("erin joins: %v", err)
	}
	// alice makes bob an admin and carol a moderator.
	// (Room version 12: alice, the creator, is above power levels.)
	pl := map[string]any{"users": map[string]any{tr.bob.UserID.String(): 100,
		tr.carol.UserID.String(): 50}}
	sent, err := tr.alice.SendStateEvent(ctx, tr.room, event.StatePowerLevels, "", pl)
	if err != nil {
		t.Fatal(err)
	}
	for _, cli := range tr.clients {
		waitForEvent(t, cli, tr.room, sent.EventID)
	}
	waitForSync(t, tr.carol, "erin's join", func(*mautrix.RespSync) bool {
		m, err := tr.carol.JoinedMembers(ctx, tr.room)
		return err == nil && len(m.Joined) == 4
	})

	// At once: alice demotes bob and carol; bob makes carol an admin and
	// bans dave; dave joins through C; carol bans erin; each sets the topic.
	type sendFn func() (*mautrix.RespSendEvent, error)
	var fns []sendFn
	fns = append(fns,
		func() (*mautrix.RespSendEvent, error) {
			return tr.alice.SendStateEvent(ctx, tr.room, event.StatePowerLevels, "", map[string]any{
				"users": map[string]any{}})
		},
		func() (*mautrix.RespSendEvent, error) {
			return tr.bob.SendStateEvent(ctx, tr.room, event.StatePowerLevels, "", map[string]any{
				"users": map[string]any{tr.bob.UserID.String(): 100, tr.carol.UserID.String(): 100}})
		},
		func() (*mautrix.RespSendEvent, error) {
			_, err := tr.bob.BanUser(ctx, tr.room, &mautrix.ReqBanUser{UserID: dave.UserID, Reason: "race"})
			return nil, err
		},
		func() (*mautrix.RespSendEvent, error) {
			_, err := dave.JoinRoom(ctx, tr.room.String(), &mautrix.ReqJoinRoom{Via: []string{tr.c.Opts.ServerName}})
			return nil, err
		},
		func() (*mautrix.RespSendEvent, error) {
			_, err := tr.carol.BanUser(ctx, tr.room, &mautrix.ReqBanUser{UserID: erin.UserID, Reason: "race"})
			return nil, err
		},
	)
	for _, cli := range tr.clients {
		fns = append(fns, func() (*mautrix.RespSendEvent, error) {
			return cli.SendStateEvent(ctx, tr.room, event.StateTopic, "", map[string]any{"topic": "by " + cli.UserID.Localpart()})
		})
	}
	var wg sync.WaitGroup
	start := make(chan struct{})
	errs := make([]error, len(fns))
	for i, fn := range fns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			_, errs[i] = fn()
		}()
	}
	close(start)
	wg.Wait()
	// A change may reach its server after another that forbids it (bob
	// demoted before his ban, dave banned before his join): refused then.
	for i, err := range errs {
		if err != nil && !errors.Is(err, mautrix.MForbidden) {
			t.Fatalf("concurrent change %d: %v", i, err)
		}
	}

	// Each user then says something: each marker cites what its server
	// has, and a server receiving it fetches what it lacks
	// (get_missing_events), so once every server has the three markers,
	// every server has every conflicting event. alice's last message then
	// cites all of it.
	since := make([]string, 3)
	for i, cli := range tr.clients {
		since[i] = syncToken(t, cli)
	}
	var marks []string
	for _, cli := range tr.clients {
		body := "settled at " + cli.UserID.Localpart()
		marks = append(marks, body)
		if _, err := cli.SendText(ctx, tr.room, body); err != nil {
			t.Fatal(err)
		}
	}
	for i, cli := range tr.clients {
		waitBodies(t, cli, tr.room, since[i], marks...)
	}
	// Wait for the last of them everywhere, then compare.
	final, err := tr.alice.SendText(ctx, tr.room, "final")
	if err != nil {
		t.Fatal(err)
	}
	for _, cli := range tr.clients {
		waitForEvent(t, cli, tr.room, final.EventID)
	}
	states := make([]map[string]id.EventID, 3)
	for i, cli := range tr.clients {
		states[i] = roomState(t, cli, tr.room)
	}
	for i := 1; i < 3; i++ {
		if !maps.Equal(states[0], states[i]) {
			t.Fatalf("resolved state differs:\nA:%s\n%s:%s", describeState(states[0]), tr.servers[i].Opts.ServerName,
				describeState(states[i]))
		}
	}
	// What the spec's resolution makes of it: alice, the creator, has
	// unlimited power, so her power levels come first and her demotion of
	// bob and carol stands; bob's power levels, his ban of dave and carol's
	// ban of erin then fail the auth checks, and only alice's topic is
	// allowed.
	var plc event.PowerLevelsEventContent
	if err := tr.bob.StateEvent(ctx, tr.room, event.StatePowerLevels, "", &plc); err != nil || len(plc.Users) != 0 {
		t.Fatalf("resolved power levels: users %v, %v", plc.Users, err)
	}
	// The topic is the same on all three (compared above). Which one wins
	// depends on what each server had seen when its user set it (a topic
	// set after another arrived supersedes it instead of conflicting), so
	// it is not checked against one outcome here. carol's topic may win
	// though alice's demotion of her does: when it reached A before alice's
	// demotion was built (the sends race), the demotion follows it, and if
	// every fork then holds it the topic key is unconflicted, which step 5
	// of the resolution keeps without checking it again (a demotion does
	// not undo what was allowed before it). Concurrent with the demotion,
	// it is refused; core/state's TestResolveTopicOfDemotedModerator has
	// each case. (In 30 runs with the events dumped, the topics were all
	// concurrent with the demotion and alice's won.)
	var topic event.TopicEventContent
	if err := tr.carol.StateEvent(ctx, tr.room, event.StateTopic, "", &topic); err != nil && !errors.Is(err, mautrix.MNotFound) {
		t.Fatalf("resolved topic: %+v, %v", topic, err)
	}
	t.Logf("resolved topic: %q", topic.Topic)
	// The bans are the same case as the topic: bob's ban of dave and
	// carol's ban of erin are refused when concurrent with alice's
	// demotions, and kept when they reached A before the demotion was
	// built (a CI run kept bob's). Only that the servers agree is checked
	// (above); what they agreed on is logged.
	for _, u := range []id.UserID{erin.UserID, dave.UserID} {
		var m event.MemberEventContent
		err := tr.alice.StateEvent(ctx, tr.room, event.StateMember, u.String(), &m)
		if err != nil && !errors.Is(err, mautrix.MNotFound) {
			t.Fatalf("resolved membership of %s: %v", u, err)
		}
		t.Logf("resolved membership of %s: %q", u, m.Membership)
	}
	t.Logf("resolved state:%s", describeState(states[0]))
}

// A fake server D joins the three servers' room and sends each of them
// forged events: signed with a key that is not D's (dropped), content
// changed after signing (the redacted copy kept), power levels its user may
// not send (rejected), a message in alice's name (dropped: A did not sign
// it), a transaction claiming to come from A (refused), and, once alice has
// banned D's user, a message built on the state before the ban (allowed by
// its auth events, soft-failed against the current state). No user on any
// server ever sees what was forged; D's honest message reaches all three.
func TestThreeServersForgedEvents(t *testing.T) {
	tr := startTrio(t, "spp")
	ctx := t.Context()
	d := newFakeServer(t)
	dan := id.NewUserID("dan", d.name)
	r := d.join(t, tr.a, tr.room, dan)
	for _, cli := range tr.clients {
		waitForEvent(t, cli, tr.room, r.last)
	}
	since := make([]string, 3)
	for i, cli := range tr.clients {
		since[i] = syncToken(t, cli)
	}
	msg := func(key *federation.SigningKey, sender id.UserID, body string) (id.EventID, json.RawMessage) {
		return d.build(t, r, key, sender, "m.room.message", nil, map[string]any{"msgtype": "m.text", "body": body},
			r.last, r.depth+1)
	}
	badSig, badSigRaw := msg(federation.GenerateSigningKey(), dan, "forged signature")
	spoof, spoofRaw := msg(d.key, tr.alice.UserID, "forged alice")
	empty := ""
	unauth, unauthRaw := d.build(t, r, d.key, dan, "m.room.power_levels", &empty,
		map[string]any{"users": map[string]int{dan.String(): 100}}, r.last, r.depth+1)
	tampered, tamperedRaw := msg(d.key, dan, "signed body")
	var m map[string]any
	if err := json.Unmarshal(tamperedRaw, &m); err != nil {
		t.Fatal(err)
	}
	m["content"] = map[string]any{"msgtype": "m.text", "body": "forged body"}
	tamperedRaw, _ = json.Marshal(m)
	honest, honestRaw := msg(d.key, dan, "dan says hello")
	for _, s := range tr.servers {
		res := d.sendTxn(t, s, badSigRaw, spoofRaw, unauthRaw, tamperedRaw, honestRaw)
		for _, eid := range []id.EventID{badSig, spoof, unauth} {
			if res[eid].Error == "" {
				t.Fatalf("%s took the forged event %s: %+v", s.Opts.ServerName, eid, res)
			}
		}
		for _, eid := range []id.EventID{tampered, honest} {
			if e, ok := res[eid]; !ok || e.Error != "" {
				t.Fatalf("%s: %s: %+v", s.Opts.ServerName, eid, res)
			}
		}
		// A transaction in A's name, signed by D.
		_, err := d.client().SendTransaction(ctx, &federation.ReqSendTransaction{Destination: s.Opts.ServerName,
			TxnID: "as-a", Origin: tr.a.Opts.ServerName, OriginServerTS: jsontime.UM(time.Now()), PDUs: []json.RawMessage{}})
		if httpErr, ok := err.(mautrix.HTTPError); !ok || httpErr.Response == nil || httpErr.Response.StatusCode != http.StatusForbidden {
			t.Fatalf("%s: a transaction of D claiming to be A's: %v", s.Opts.ServerName, err)
		}
	}
	for i, cli := range tr.clients {
		got := waitBodies(t, cli, tr.room, since[i], "dan says hello")
		for body, ev := range got {
			if strings.HasPrefix(body, "forged") || ev.ID == badSig || ev.ID == spoof {
				t.Fatalf("%s sees a forged event: %s %q", cli.UserID, ev.ID, body)
			}
		}
		for _, eid := range []id.EventID{badSig, spoof, unauth} {
			if _, err := cli.GetEvent(ctx, tr.room, eid); err == nil {
				t.Fatalf("%s can read the forged event %s", cli.UserID, eid)
			}
		}
		ev, err := cli.GetEvent(ctx, tr.room, tampered)
		if err != nil || gjson.GetBytes(ev.Content.VeryRaw, "body").Exists() {
			t.Fatalf("%s: the event with a bad content hash: %v, %v (want its redacted copy)", cli.UserID, ev, err)
		}
	}
	r.last, r.depth = honest, r.depth+1

	// alice bans dan; dan's message built on the state before the ban is
	// soft-failed everywhere.
	if _, err := tr.alice.BanUser(ctx, tr.room, &mautrix.ReqBanUser{UserID: dan, Reason: "forger"}); err != nil {
		t.Fatal(err)
	}
	for _, cli := range tr.clients {
		waitForSync(t, cli, "dan's ban", func(*mautrix.RespSync) bool {
			var mc event.MemberEventContent
			return cli.StateEvent(ctx, tr.room, event.StateMember, dan.String(), &mc) == nil && mc.Membership == event.MembershipBan
		})
		since[slices.Index(tr.clients, cli)] = syncToken(t, cli)
	}
	late, lateRaw := msg(d.key, dan, "forged after the ban")
	for _, s := range tr.servers {
		if res := d.sendTxn(t, s, lateRaw); res[late].Error != "" {
			t.Fatalf("%s: a soft-failed event is not an error for its sender: %+v", s.Opts.ServerName, res)
		}
	}
	// Other servers may fetch the soft-failed event (it is in the room's
	// graph), never the rejected one.
	for _, s := range tr.servers {
		if got, err := d.client().GetEvent(ctx, s.Opts.ServerName, late); err != nil || len(got.PDUs) != 1 {
			t.Fatalf("%s: /event of the soft-failed event: %v", s.Opts.ServerName, err)
		}
		_, err := d.client().GetEvent(ctx, s.Opts.ServerName, unauth)
		wantNotFound(t, s.Opts.ServerName+": /event of the rejected event", err)
	}
	if _, err := tr.alice.SendText(ctx, tr.room, "after dan's ban"); err != nil {
		t.Fatal(err)
	}
	for i, cli := range tr.clients {
		got := waitBodies(t, cli, tr.room, since[i], "after dan's ban")
		if got["forged after the ban"] != nil {
			t.Fatalf("%s sees the soft-failed event", cli.UserID)
		}
		if _, err := cli.GetEvent(ctx, tr.room, late); err == nil {
			t.Fatalf("%s can read the soft-failed event", cli.UserID)
		}
	}
}

// A restricted room of A (open to members of alice's space) that bob of B
// is in: carol of C, in the space, asks B first. B has nobody who may
// invite (invite needs 50), so it answers 400 M_UNABLE_TO_GRANT_JOIN and C
// tries A, where alice authorises the join.
func TestThreeServersRestrictedJoinTriesNextServer(t *testing.T) {
	tr := startTrio(t, "sss")
	ctx := t.Context()
	space := tr.room // the trio's room: bob and carol are in it
	restricted, err := tr.alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "private_chat", Name: "Members only",
		InitialState: []*event.Event{{Type: event.StateJoinRules, Content: event.Content{Raw: map[string]any{
			"join_rule": "restricted", "allow": []any{map[string]any{"type": "m.room_membership", "room_id": space}}}}}},
		PowerLevelOverride: &event.PowerLevelsEventContent{InvitePtr: ptr(50)}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tr.bob.JoinRoom(ctx, restricted.RoomID.String(), &mautrix.ReqJoinRoom{Via: []string{tr.a.Opts.ServerName}}); err != nil {
		t.Fatalf("bob joins: %v", err)
	}
	joinedState(t, tr.bob, restricted.RoomID)
	// B, asked directly, cannot grant the join.
	d := newFakeServer(t)
	_, err = d.client().MakeJoin(ctx, &federation.ReqMakeJoin{RoomID: restricted.RoomID, UserID: id.NewUserID("dan", d.name),
		Via: tr.b.Opts.ServerName, SupportedVersions: []id.RoomVersion{id.RoomV12}})
	if httpErr, ok := err.(mautrix.HTTPError); !ok || httpErr.RespError == nil || httpErr.RespError.ErrCode != "M_FORBIDDEN" {
		t.Fatalf("make_join at B for a user in no allowed room: %v", err)
	}
	if _, err := tr.carol.JoinRoom(ctx, restricted.RoomID.String(), &mautrix.ReqJoinRoom{
		Via: []string{tr.b.Opts.ServerName, tr.a.Opts.ServerName}}); err != nil {
		t.Fatalf("carol joins through B, then A: %v", err)
	}
	st, _ := joinedState(t, tr.carol, restricted.RoomID)
	join := st[[2]string{"m.room.member", tr.carol.UserID.String()}]
	if join == nil || gjson.GetBytes(join.Content.VeryRaw, "join_authorised_via_users_server").Str != tr.alice.UserID.String() {
		t.Fatalf("carol's join: %v", join)
	}
	if !strings.Contains(tr.c.Logs(), "M_UNABLE_TO_GRANT_JOIN") {
		t.Fatal("C did not ask B first")
	}
}
