package ircconn

import (
	"bufio"
	"context"
	"encoding/base64"
	"errors"
	"io"
	"net"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"
)

// checkGoroutines fails the test if it ends with more goroutines than it
// began with (goleak's check, without the dependency). Close waits for a
// Conn's goroutines, so only the test's own may need a moment to finish.
func checkGoroutines(t *testing.T) {
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(5 * time.Second)
		for runtime.NumGoroutine() > before {
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<16)
				t.Errorf("goroutines leaked: %d before, %d after\n%s", before, runtime.NumGoroutine(), buf[:runtime.Stack(buf, true)])
				return
			}
			runtime.Gosched()
			time.Sleep(time.Millisecond) // polling, as goleak does: nothing to wait on
		}
	})
}

// fakeServer is a scripted IRC server on a loopback port: the test reads
// what the client sends and answers line by line.
type fakeServer struct {
	t    *testing.T
	ln   net.Listener
	conn net.Conn
	r    *bufio.Reader
}

func newFakeServer(t *testing.T) *fakeServer {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeServer{t: t, ln: ln}
	t.Cleanup(func() {
		ln.Close()
		if f.conn != nil {
			f.conn.Close()
		}
	})
	return f
}

func (f *fakeServer) accept() {
	f.t.Helper()
	f.ln.(*net.TCPListener).SetDeadline(time.Now().Add(10 * time.Second))
	c, err := f.ln.Accept()
	if err != nil {
		f.t.Fatal(err)
	}
	f.conn, f.r = c, bufio.NewReader(c)
}

// expect reads lines until one with the command, which it returns.
func (f *fakeServer) expect(command string) *Message {
	f.t.Helper()
	f.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		line, err := f.r.ReadString('\n')
		if err != nil {
			f.t.Fatalf("waiting for %s: %v", command, err)
		}
		m, err := Parse(line)
		if err != nil {
			f.t.Fatalf("client sent %q: %v", line, err)
		}
		if m.Command == command {
			return m
		}
	}
}

func (f *fakeServer) send(lines ...string) {
	f.t.Helper()
	for _, l := range lines {
		if _, err := io.WriteString(f.conn, l+"\r\n"); err != nil {
			f.t.Fatal(err)
		}
	}
}

type dialResult struct {
	c   *Conn
	err error
}

func (f *fakeServer) dial(cfg Config) <-chan dialResult {
	cfg.Addr = f.ln.Addr().String()
	ch := make(chan dialResult, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c, err := Dial(ctx, cfg)
		ch <- dialResult{c, err}
	}()
	return ch
}

func (f *fakeServer) welcome(nick string) {
	f.send(":fake.test 001 "+nick+" :Welcome",
		":fake.test 005 "+nick+" CASEMAPPING=rfc1459 CHANMODES=b,k,l,imnpst PREFIX=(ov)@+ NETWORK=Fake CHATHISTORY=50 :are supported",
		":fake.test 376 "+nick+" :End of MOTD")
}

func mustDial(t *testing.T, ch <-chan dialResult) *Conn {
	t.Helper()
	r := <-ch
	if r.err != nil {
		t.Fatal(r.err)
	}
	t.Cleanup(func() { r.c.Close() })
	return r.c
}

// nextEvent returns the next event, failing after 10 s.
func nextEvent(t *testing.T, c *Conn) Event {
	t.Helper()
	select {
	case ev, ok := <-c.Events():
		if !ok {
			t.Fatalf("events closed: %v", c.Err())
		}
		return ev
	case <-time.After(10 * time.Second):
		t.Fatal("no event")
	}
	return Event{}
}

// waitFor returns the first event line with the command, skipping others.
func waitFor(t *testing.T, c *Conn, command string) *Message {
	t.Helper()
	for {
		ev := nextEvent(t, c)
		if ev.Message != nil && ev.Message.Command == command {
			return ev.Message
		}
	}
}

func TestRegisterWithCapsAndSASL(t *testing.T) {
	checkGoroutines(t)
	f := newFakeServer(t)
	password := strings.Repeat("p", 350) // 356 bytes of payload: two AUTHENTICATE chunks
	res := f.dial(Config{Nick: "bridge", User: "u", RealName: "Real Name", Password: "srvpass",
		SASL: &SASLPlain{User: "acct", Password: password}, RequireSASL: true})
	f.accept()
	if m := f.expect("CAP"); m.Param(0) != "LS" || m.Param(1) != "302" {
		t.Fatalf("first line %v", m)
	}
	if m := f.expect("PASS"); m.Param(0) != "srvpass" {
		t.Fatal(m)
	}
	if m := f.expect("NICK"); m.Param(0) != "bridge" {
		t.Fatal(m)
	}
	if m := f.expect("USER"); !reflect.DeepEqual(m.Params, []string{"u", "0", "*", "Real Name"}) {
		t.Fatal(m)
	}
	f.send(":fake.test CAP * LS * :sasl=PLAIN,EXTERNAL server-time unknown-cap",
		":fake.test CAP * LS :batch labeled-response echo-message message-tags draft/chathistory chathistory")
	req := f.expect("CAP")
	got := strings.Fields(req.Trailing())
	want := []string{"sasl", "server-time", "message-tags", "echo-message", "batch", "labeled-response", "draft/chathistory"}
	if req.Param(0) != "REQ" || !reflect.DeepEqual(got, want) {
		t.Fatalf("CAP REQ %q, want %q", got, want)
	}
	f.send(":fake.test CAP * ACK :" + req.Trailing())
	if m := f.expect("AUTHENTICATE"); m.Param(0) != "PLAIN" {
		t.Fatal(m)
	}
	f.send("AUTHENTICATE +")
	a1 := f.expect("AUTHENTICATE").Param(0)
	a2 := f.expect("AUTHENTICATE").Param(0)
	if len(a1) != 400 || len(a2) == 0 || len(a2) >= 400 {
		t.Fatalf("chunks of %d and %d bytes", len(a1), len(a2))
	}
	dec, err := base64.StdEncoding.DecodeString(a1 + a2)
	if err != nil || string(dec) != "\x00acct\x00"+password {
		t.Fatalf("SASL payload %q, %v", dec, err)
	}
	f.send(":fake.test 900 bridge bridge!u@h acct :You are now logged in as acct",
		":fake.test 903 bridge :SASL authentication successful")
	if m := f.expect("CAP"); m.Param(0) != "END" {
		t.Fatal(m)
	}
	f.welcome("bridge")
	c := mustDial(t, res)
	if c.Account() != "acct" || c.Nick() != "bridge" || c.Server() != "fake.test" {
		t.Fatalf("account %q nick %q server %q", c.Account(), c.Nick(), c.Server())
	}
	for _, cp := range want {
		if !c.HasCap(cp) {
			t.Errorf("cap %s not enabled", cp)
		}
	}
	if c.Caps()["sasl"] != "PLAIN,EXTERNAL" || c.HasCap("chathistory") || len(c.OfferedCaps()) != 9 {
		t.Fatalf("caps %v offered %v", c.Caps(), c.OfferedCaps())
	}
	if c.ISupport().Network() != "Fake" {
		t.Fatal("ISUPPORT not applied")
	}
	// Registration lines come out of Events too.
	if m := waitFor(t, c, RPL_WELCOME); m.Param(0) != "bridge" {
		t.Fatal(m)
	}
}

func TestSASLFailure(t *testing.T) {
	for _, require := range []bool{true, false} {
		t.Run(map[bool]string{true: "required", false: "optional"}[require], func(t *testing.T) {
			checkGoroutines(t)
			f := newFakeServer(t)
			res := f.dial(Config{Nick: "n", SASL: &SASLPlain{User: "a", Password: "wrong"}, RequireSASL: require})
			f.accept()
			f.expect("USER")
			f.send("CAP * LS :sasl")
			f.expect("CAP")
			f.send("CAP * ACK :sasl")
			f.expect("AUTHENTICATE")
			f.send("AUTHENTICATE +")
			f.expect("AUTHENTICATE")
			f.send(":fake.test 904 n :SASL authentication failed")
			if require {
				r := <-res
				if !errors.Is(r.err, ErrSASLFailed) {
					t.Fatalf("Dial error %v, want ErrSASLFailed", r.err)
				}
				return
			}
			if m := f.expect("CAP"); m.Param(0) != "END" {
				t.Fatal(m)
			}
			f.welcome("n")
			if c := mustDial(t, res); c.Account() != "" {
				t.Fatal("logged in after a failure")
			}
		})
	}
}

func TestSASLRequiredButNotOffered(t *testing.T) {
	checkGoroutines(t)
	f := newFakeServer(t)
	res := f.dial(Config{Nick: "n", SASL: &SASLPlain{User: "a", Password: "b"}, RequireSASL: true})
	f.accept()
	f.send("CAP * LS :server-time")
	f.expect("CAP")
	f.send("CAP * ACK :server-time")
	if r := <-res; !errors.Is(r.err, ErrSASLFailed) {
		t.Fatalf("Dial error %v", r.err)
	}
}

func TestNickFallbackAndNoCap(t *testing.T) {
	checkGoroutines(t)
	f := newFakeServer(t)
	res := f.dial(Config{Nick: "taken", AltNicks: []string{"alt"}})
	f.accept()
	f.expect("USER")
	// A server without CAP: it rejects the command and registers anyway.
	f.send(":fake.test 421 * CAP :Unknown command", ":fake.test 433 * taken :Nickname is already in use")
	if m := f.expect("NICK"); m.Param(0) != "alt" {
		t.Fatal(m)
	}
	f.send(":fake.test 433 * alt :Nickname is already in use")
	if m := f.expect("NICK"); m.Param(0) != "taken_" {
		t.Fatal(m)
	}
	f.send(":fake.test 001 taken_ :Welcome", ":fake.test 422 taken_ :No MOTD")
	c := mustDial(t, res)
	if c.Nick() != "taken_" || len(c.Caps()) != 0 {
		t.Fatalf("nick %q caps %v", c.Nick(), c.Caps())
	}
	if _, err := c.Request(context.Background(), NewMessage("WHOIS", "x")); !errors.Is(err, ErrNotSupported) {
		t.Fatalf("Request without labeled-response: %v", err)
	}
	if _, err := c.ChatHistory(context.Background(), HistoryRequest{Sub: HistoryLatest, Target: "#a"}); !errors.Is(err, ErrNotSupported) {
		t.Fatalf("ChatHistory without support: %v", err)
	}
}

func TestNickExhausted(t *testing.T) {
	checkGoroutines(t)
	f := newFakeServer(t)
	res := f.dial(Config{Nick: "n"})
	f.accept()
	f.expect("USER")
	for i := 0; i < len(nickCandidates("n", nil)); i++ {
		f.send(":fake.test 433 * x :in use")
	}
	if r := <-res; !errors.Is(r.err, ErrNickInUse) {
		t.Fatalf("Dial error %v", r.err)
	}
}

// registered returns a Conn registered with the fake server with the caps.
func registered(t *testing.T, f *fakeServer, cfg Config, caps string) *Conn {
	t.Helper()
	if cfg.Nick == "" {
		cfg.Nick = "me"
	}
	res := f.dial(cfg)
	f.accept()
	f.expect("USER")
	f.send("CAP * LS :" + caps)
	if caps != "" {
		f.expect("CAP")
		f.send("CAP * ACK :" + caps)
	}
	f.expect("CAP") // END
	f.welcome(cfg.Nick)
	c := mustDial(t, res)
	waitFor(t, c, RPL_ENDOFMOTD)
	return c
}

func TestBatchesAndLabeledResponses(t *testing.T) {
	checkGoroutines(t)
	f := newFakeServer(t)
	c := registered(t, f, Config{}, "batch labeled-response message-tags server-time echo-message")
	ctx := context.Background()

	// Nested batches come out as one event when the outer one ends.
	f.send(":fake.test BATCH +out netjoin irc.a irc.b",
		"@batch=out :a!u@h JOIN #c",
		"@batch=out :fake.test BATCH +in chathistory #c",
		"@batch=in;time=2024-01-01T00:00:00.000Z :b!u@h PRIVMSG #c :old",
		":fake.test BATCH -in",
		"@batch=out :c!u@h JOIN #c",
		":fake.test BATCH -out",
		":x!u@h PRIVMSG #c :after")
	ev := nextEvent(t, c)
	b := ev.Batch
	if b == nil || b.Type != "netjoin" || !reflect.DeepEqual(b.Params, []string{"irc.a", "irc.b"}) || len(b.Items) != 3 {
		t.Fatalf("batch event %+v", ev)
	}
	if in := b.Items[1].Batch; in == nil || in.Type != "chathistory" || in.Params[0] != "#c" || b.Find("chathistory") != in {
		t.Fatalf("nested batch %+v", b.Items[1])
	}
	var texts []string
	for _, m := range b.Messages() {
		texts = append(texts, m.Source+" "+m.Command)
	}
	if !reflect.DeepEqual(texts, []string{"a!u@h JOIN", "b!u@h PRIVMSG", "c!u@h JOIN"}) {
		t.Fatalf("batch order %q", texts)
	}
	if m := nextEvent(t, c).Message; m == nil || m.Trailing() != "after" {
		t.Fatalf("after the batch: %v", m)
	}

	// A labeled request answered by a batch.
	done := make(chan *Response, 1)
	go func() {
		r, err := c.Request(ctx, NewMessage("WHOIS", "someone"))
		if err != nil {
			t.Error(err)
		}
		done <- r
	}()
	req := f.expect("WHOIS")
	label := req.Label()
	if label == "" {
		t.Fatal("no label")
	}
	f.send("@label="+label+" :fake.test BATCH +w labeled-response",
		"@batch=w :fake.test 311 me someone u h * :Someone",
		"@batch=w :fake.test 318 me someone :End of WHOIS",
		":fake.test BATCH -w")
	r := <-done
	if r.Batch == nil || len(r.Messages()) != 2 || r.Messages()[0].Command != RPL_WHOISUSER {
		t.Fatalf("labeled response %+v", r)
	}

	// Privmsg returns the labeled echo with its msgid.
	type result struct {
		echoes []*Message
		err    error
	}
	sent := make(chan result, 1)
	go func() {
		e, err := c.Privmsg(ctx, "#c", "hello", map[string]string{"+draft/reply": "m0"})
		sent <- result{e, err}
	}()
	pm := f.expect("PRIVMSG")
	if pm.Tags["+draft/reply"] != "m0" {
		t.Fatalf("client tag lost: %v", pm.Tags)
	}
	f.send("@label=" + pm.Label() + ";msgid=m1;time=2024-02-03T04:05:06.000Z :me!u@h PRIVMSG #c :hello")
	res := <-sent
	if res.err != nil || len(res.echoes) != 1 || res.echoes[0].MsgID() != "m1" || res.echoes[0].Time().IsZero() {
		t.Fatalf("echoes %v, %v", res.echoes, res.err)
	}

	// An ACK answers a request with nothing; a late answer goes to Events.
	go func() {
		r, err := c.Request(ctx, NewMessage("AWAY"))
		if err != nil || r.Message == nil || r.Message.Command != "ACK" {
			t.Errorf("ACK: %+v %v", r, err)
		}
		done <- r
	}()
	f.send("@label=" + f.expect("AWAY").Label() + " :fake.test ACK")
	<-done
	f.send("@label=nobody :fake.test 305 me :unaway")
	if m := waitFor(t, c, RPL_UNAWAY); m.Label() != "nobody" {
		t.Fatal(m)
	}
}

func TestChatHistory(t *testing.T) {
	for _, labeled := range []bool{true, false} {
		t.Run(map[bool]string{true: "labeled", false: "unlabeled"}[labeled], func(t *testing.T) {
			checkGoroutines(t)
			f := newFakeServer(t)
			caps := "batch server-time message-tags draft/chathistory"
			if labeled {
				caps += " labeled-response"
			}
			c := registered(t, f, Config{}, caps)
			type result struct {
				b   *Batch
				err error
			}
			done := make(chan result, 1)
			go func() {
				b, err := c.ChatHistory(context.Background(), HistoryRequest{Sub: HistoryBefore, Target: "#Chan",
					From: HistoryAnchor{MsgID: "m9"}, Limit: 500})
				done <- result{b, err}
			}()
			req := f.expect("CHATHISTORY")
			if !reflect.DeepEqual(req.Params, []string{"BEFORE", "#Chan", "msgid=m9", "50"}) {
				t.Fatalf("request %v (the limit must be capped by ISUPPORT)", req.Params)
			}
			start := ":fake.test BATCH +h chathistory #chan"
			if labeled {
				start = "@label=" + req.Label() + " " + start
			}
			f.send(start,
				"@batch=h;time=2024-01-01T10:00:00.000Z;msgid=m7 :a!u@h PRIVMSG #chan :first",
				"@batch=h;time=2024-01-01T10:01:00.000Z;msgid=m8 :b!u@h PRIVMSG #chan :second",
				":fake.test BATCH -h")
			r := <-done
			if r.err != nil {
				t.Fatal(r.err)
			}
			msgs := r.b.Messages()
			if len(msgs) != 2 || msgs[0].MsgID() != "m7" || msgs[1].Trailing() != "second" ||
				!msgs[1].Time().Equal(time.Date(2024, 1, 1, 10, 1, 0, 0, time.UTC)) {
				t.Fatalf("history %v", msgs)
			}
		})
	}
}

func TestPingPong(t *testing.T) {
	checkGoroutines(t)
	f := newFakeServer(t)
	c := registered(t, f, Config{PingInterval: time.Hour}, "")
	f.send("PING :token123")
	if m := f.expect("PONG"); m.Param(0) != "token123" {
		t.Fatal(m)
	}
	c.Close()
}

func TestKeepaliveDetectsDeadServer(t *testing.T) {
	checkGoroutines(t)
	f := newFakeServer(t)
	c := registered(t, f, Config{PingInterval: 50 * time.Millisecond, PingTimeout: 200 * time.Millisecond}, "")
	// Silence makes the client PING; answers keep the connection alive.
	for i := 0; i < 3; i++ {
		ping := f.expect("PING")
		f.send(":fake.test PONG fake.test :" + ping.Param(0))
	}
	// Then the server stops answering: the client gives up.
	f.expect("PING")
	select {
	case <-c.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("dead server not detected")
	}
	if !errors.Is(c.Err(), ErrPingTimeout) {
		t.Fatalf("Err = %v", c.Err())
	}
	for range c.Events() {
	}
}

func TestServerClosesConnection(t *testing.T) {
	checkGoroutines(t)
	f := newFakeServer(t)
	c := registered(t, f, Config{}, "")
	f.send(":a!u@h PRIVMSG me :last words", "ERROR :Closing link: (killed)")
	f.conn.Close()
	var last *Message
	for ev := range c.Events() {
		if ev.Message != nil {
			last = ev.Message
		}
	}
	if last == nil || last.Command != "ERROR" {
		t.Fatalf("last event %v: queued lines must be delivered before Events closes", last)
	}
	if !errors.Is(c.Err(), ErrServerClosing) {
		t.Fatalf("Err = %v", c.Err())
	}
	if err := c.Send(context.Background(), NewMessage("PING", "x")); !errors.Is(err, ErrClosed) {
		t.Fatalf("Send after close: %v", err)
	}
}

// TestAwaitPrefersDelivered: a response delivered before the connection
// died is returned, not ErrClosed, even when the waiter looks only after
// both happened (as a slow Request goroutine does when the server answers
// and then closes the link).
func TestAwaitPrefersDelivered(t *testing.T) {
	dead := make(chan struct{})
	close(dead)
	ch := make(chan *Response, 1)
	for i := range 100 {
		want := &Response{Message: NewMessage("PRIVMSG", "#c", string(rune(0x41+i%26)))}
		ch <- want
		if got, err := await(context.Background(), ch, dead); err != nil || got != want {
			t.Fatalf("attempt %d: %v, %v", i, got, err)
		}
	}
	if _, err := await(context.Background(), ch, dead); !errors.Is(err, ErrClosed) {
		t.Fatalf("nothing delivered, connection dead: %v", err)
	}
}

func TestSendValidates(t *testing.T) {
	checkGoroutines(t)
	f := newFakeServer(t)
	c := registered(t, f, Config{}, "")
	ctx := context.Background()
	if err := c.Send(ctx, NewMessage("PRIVMSG", "#a", "x\r\nQUIT")); !errors.Is(err, ErrInvalid) {
		t.Fatalf("injection: %v", err)
	}
	if err := c.Send(ctx, NewMessage("PRIVMSG", "#a", strings.Repeat("x", 600))); !errors.Is(err, ErrLineTooLong) {
		t.Fatalf("long line: %v", err)
	}
	// Privmsg splits what Send would refuse; each line fits with the source.
	text := strings.Repeat("word ", 300)
	if _, err := c.Privmsg(ctx, "#a", text, nil); err != nil {
		t.Fatal(err)
	}
	var got string
	for len(got) < len(text) {
		m := f.expect("PRIVMSG")
		relayed := (&Message{Source: "me!" + strings.Repeat("u", 10) + "@" + strings.Repeat("h", 64), Command: "PRIVMSG", Params: m.Params}).Bytes()
		if len(relayed) > 512 {
			t.Fatalf("relayed line of %d bytes", len(relayed))
		}
		got += m.Trailing()
	}
	if got != text {
		t.Fatal("split text does not reassemble")
	}
}

func TestFloodControlPacesWrites(t *testing.T) {
	checkGoroutines(t)
	f := newFakeServer(t)
	// Registration is not paced; the bucket is full when it ends.
	c := registered(t, f, Config{Flood: FloodControl{Burst: 2, Interval: 100 * time.Millisecond}}, "")
	start := time.Now()
	for i := 0; i < 5; i++ {
		if err := c.Send(context.Background(), NewMessage("PRIVMSG", "#a", "x")); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 5; i++ {
		f.expect("PRIVMSG")
	}
	// Two lines go at once, the other three one per 100 ms: a lower bound
	// the token bucket guarantees, however slow the machine.
	if el := time.Since(start); el < 300*time.Millisecond {
		t.Fatalf("5 lines written in %v despite flood control", el)
	}
}
