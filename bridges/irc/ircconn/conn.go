package ircconn

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"
)

// Errors a Conn reports.
var (
	ErrClosed        = errors.New("irc: connection closed")
	ErrPingTimeout   = errors.New("irc: server did not answer PING in time")
	ErrNickInUse     = errors.New("irc: no acceptable nick is free")
	ErrSASLFailed    = errors.New("irc: SASL authentication failed")
	ErrNotSupported  = errors.New("irc: the server does not support this")
	ErrLineTooLong   = errors.New("irc: line too long")
	ErrServerClosing = errors.New("irc: server closed the link")
)

// DefaultCaps are the capabilities a Conn requests when the server offers
// them (sasl only when Config.SASL is set).
var DefaultCaps = []string{
	"sasl", "server-time", "message-tags", "echo-message", "batch",
	"labeled-response", "draft/chathistory", "chathistory", "multi-prefix",
	"userhost-in-names", "cap-notify", "account-tag", "chghost",
}

// SASLPlain holds SASL PLAIN credentials.
type SASLPlain struct {
	Authzid  string // usually ""
	User     string
	Password string
}

// Config says how to connect and register.
type Config struct {
	Addr string      // host:port
	TLS  *tls.Config // nil for plain TCP
	// Dial replaces net.Dialer (for proxies or tests).
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)

	Password string   // PASS; "" for none
	Nick     string   // the nick wanted
	AltNicks []string // tried in order when Nick is taken, then Nick with "_" appended
	User     string   // "" means Nick
	RealName string   // "" means Nick

	SASL        *SASLPlain
	RequireSASL bool // fail registration when SASL is unavailable or fails

	Caps []string // nil means DefaultCaps; requested only when offered

	// PingInterval is how long the connection may be silent before the
	// client PINGs the server (default 60s; negative disables keepalive);
	// PingTimeout is how long it then waits for any line before giving up
	// on the server (default 30s).
	PingInterval, PingTimeout time.Duration

	Flood FloodControl // zero means DefaultFloodControl

	// RawLog, when set, sees every line read (out false) and written (out true).
	RawLog func(out bool, line string)
}

// Conn is one registered connection to an IRC server. Every line the
// server sends, except PING/PONG and replies claimed by Request, comes out
// of Events, lines inside a batch grouped into one Event when the batch ends.
// A Conn must be closed; after that, or once the server is gone, Events is
// closed (after what was already received) and Err says why.
type Conn struct {
	cfg    Config
	nc     net.Conn
	bucket *tokenBucket

	isupport ISupport

	mu         sync.Mutex
	nick       string
	server     string
	account    string
	selfSource string
	caps       map[string]string // enabled, with the value LS gave
	offered    map[string]string
	waiters    map[string]chan *Response // by label
	histWait   map[string]chan *Batch    // by folded target, without labeled-response
	err        error

	// Only the reader goroutine touches these.
	batches map[string]*Batch
	reg     *registration

	labelSeq atomic.Uint64
	lastRead atomic.Int64 // unix nanoseconds

	out  chan []byte
	prio chan []byte

	evMu    sync.Mutex
	evQueue []Event
	evWake  chan struct{}
	events  chan Event

	registered chan struct{}
	readerDone chan struct{}
	dead       chan struct{} // the connection is over
	stop       chan struct{} // Close was called
	deadOnce   sync.Once
	stopOnce   sync.Once
	wg         sync.WaitGroup
}

// Response is what a labeled request got back: one line, a batch, or
// nothing (the server's ACK).
type Response struct {
	Message *Message
	Batch   *Batch
}

// Messages returns the lines of the response, flattened.
func (r *Response) Messages() []*Message {
	switch {
	case r == nil:
		return nil
	case r.Message != nil:
		return []*Message{r.Message}
	case r.Batch != nil:
		return r.Batch.Messages()
	}
	return nil
}

type regState int

const (
	regCapLS regState = iota
	regCapReq
	regSASL
	regWelcome // CAP END sent (or never needed): waiting for 001
	regMOTD    // 001 received: waiting for the end of the MOTD
	regDone
)

type registration struct {
	state   regState
	ls      map[string]string
	pending int // CAP REQ lines not yet answered
	nicks   []string
	tried   int
	sasl    bool // sasl was acknowledged
}

// Dial connects, negotiates capabilities, authenticates and registers. ctx
// bounds only that; the connection lives until Close or until the server
// goes away.
func Dial(ctx context.Context, cfg Config) (*Conn, error) {
	if cfg.Nick == "" {
		return nil, errors.New("irc: Config.Nick is required")
	}
	if cfg.User == "" {
		cfg.User = cfg.Nick
	}
	if cfg.RealName == "" {
		cfg.RealName = cfg.Nick
	}
	if cfg.Caps == nil {
		cfg.Caps = DefaultCaps
	}
	if cfg.PingInterval == 0 {
		cfg.PingInterval = 60 * time.Second
	}
	if cfg.PingTimeout <= 0 {
		cfg.PingTimeout = 30 * time.Second
	}
	if cfg.Flood == (FloodControl{}) {
		cfg.Flood = DefaultFloodControl
	}
	dial := cfg.Dial
	if dial == nil {
		var d net.Dialer
		dial = d.DialContext
	}
	nc, err := dial(ctx, "tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("irc: dial %s: %w", cfg.Addr, err)
	}
	if cfg.TLS != nil {
		tc := tls.Client(nc, cfg.TLS)
		if err := tc.HandshakeContext(ctx); err != nil {
			nc.Close()
			return nil, fmt.Errorf("irc: TLS handshake with %s: %w", cfg.Addr, err)
		}
		nc = tc
	}
	c := &Conn{
		cfg:        cfg,
		nc:         nc,
		bucket:     newTokenBucket(cfg.Flood, time.Now()),
		nick:       cfg.Nick,
		caps:       map[string]string{},
		offered:    map[string]string{},
		waiters:    map[string]chan *Response{},
		histWait:   map[string]chan *Batch{},
		batches:    map[string]*Batch{},
		out:        make(chan []byte, 256),
		prio:       make(chan []byte, 16),
		evWake:     make(chan struct{}, 1),
		events:     make(chan Event),
		registered: make(chan struct{}),
		readerDone: make(chan struct{}),
		dead:       make(chan struct{}),
		stop:       make(chan struct{}),
	}
	c.reg = &registration{ls: map[string]string{}, nicks: nickCandidates(cfg.Nick, cfg.AltNicks)}
	c.lastRead.Store(time.Now().UnixNano())

	c.wg.Add(3)
	go c.readLoop()
	go c.writeLoop()
	go c.dispatchLoop()

	c.enqueue(NewMessage("CAP", "LS", "302"))
	if cfg.Password != "" {
		c.enqueue(NewMessage("PASS", cfg.Password))
	}
	c.enqueue(NewMessage("NICK", cfg.Nick))
	c.enqueue(NewMessage("USER", cfg.User, "0", "*", cfg.RealName))

	select {
	case <-c.registered:
	case <-c.dead:
		err := c.Err()
		c.Close()
		return nil, err
	case <-ctx.Done():
		c.Close()
		return nil, fmt.Errorf("irc: registering with %s: %w", cfg.Addr, ctx.Err())
	}
	if cfg.PingInterval > 0 {
		c.wg.Add(1)
		go c.keepalive()
	}
	return c, nil
}

func nickCandidates(nick string, alts []string) []string {
	out := append([]string{nick}, alts...)
	for i := 1; i <= 3; i++ {
		out = append(out, nick+strings.Repeat("_", i))
	}
	for i := 1; i <= 5; i++ {
		out = append(out, nick+strconv.Itoa(i))
	}
	return out
}

// Events returns the channel of incoming lines and batches.
func (c *Conn) Events() <-chan Event { return c.events }

// Done is closed when the connection is over (Close, or the server gone).
func (c *Conn) Done() <-chan struct{} { return c.dead }

// Err returns why the connection ended, or nil while it is alive.
func (c *Conn) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// Nick returns the client's current nick.
func (c *Conn) Nick() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nick
}

// Server returns the server name given in RPL_WELCOME.
func (c *Conn) Server() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.server
}

// Account returns the account SASL logged in to, or "".
func (c *Conn) Account() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.account
}

// HasCap reports whether a capability is enabled.
func (c *Conn) HasCap(name string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.caps[name]
	return ok
}

// Caps returns the enabled capabilities with the values the server gave.
func (c *Conn) Caps() map[string]string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]string, len(c.caps))
	for k, v := range c.caps {
		out[k] = v
	}
	return out
}

// OfferedCaps returns every capability the server advertised.
func (c *Conn) OfferedCaps() map[string]string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]string, len(c.offered))
	for k, v := range c.offered {
		out[k] = v
	}
	return out
}

// ISupport returns the server's RPL_ISUPPORT tokens.
func (c *Conn) ISupport() *ISupport { return &c.isupport }

// Fold folds a nick or channel name with the server's case mapping.
func (c *Conn) Fold(name string) string { return c.isupport.CaseMapping().Fold(name) }

// Close ends the connection and waits for its goroutines. It returns nil;
// the error is for io.Closer.
func (c *Conn) Close() error {
	c.stopOnce.Do(func() { close(c.stop) })
	c.fail(ErrClosed)
	c.wg.Wait()
	return nil
}

// fail records the first error and tears the connection down.
func (c *Conn) fail(err error) {
	c.deadOnce.Do(func() {
		c.mu.Lock()
		c.err = err
		c.mu.Unlock()
		close(c.dead)
		c.nc.Close()
		c.wakeDispatcher()
	})
}

// Send queues a line; it returns once the line is queued (lines go out in
// order, paced by the flood control), or with ctx's error, or ErrClosed.
func (c *Conn) Send(ctx context.Context, m *Message) error {
	if err := m.Validate(); err != nil {
		return err
	}
	line := m.Bytes()
	if tl := m.tagsLen(); tl > MaxClientTagsLen {
		return fmt.Errorf("%w: %d bytes of tags", ErrLineTooLong, tl)
	} else if len(line)-tl > c.isupport.LineLen() {
		return fmt.Errorf("%w: %d bytes", ErrLineTooLong, len(line)-tl)
	}
	select {
	case <-c.dead:
		return ErrClosed
	default:
	}
	select {
	case c.out <- line:
		return nil
	case <-c.dead:
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
}

// enqueue queues a line the connection itself sends, without waiting: the
// queue is drained by the writer, and a dead connection drops it.
func (c *Conn) enqueue(m *Message) {
	select {
	case c.out <- m.Bytes():
	case <-c.dead:
	}
}

// Request sends a line with a fresh label and waits for the labeled
// response (labeled-response). Without that capability it returns
// ErrNotSupported, the line unsent.
func (c *Conn) Request(ctx context.Context, m *Message) (*Response, error) {
	if !c.HasCap("labeled-response") || !c.HasCap("batch") {
		return nil, fmt.Errorf("%w: labeled-response", ErrNotSupported)
	}
	m = m.Clone()
	label := "t" + strconv.FormatUint(c.labelSeq.Add(1), 36)
	m.SetTag("label", label)
	ch := make(chan *Response, 1)
	c.mu.Lock()
	c.waiters[label] = ch
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.waiters, label)
		c.mu.Unlock()
	}()
	if err := c.Send(ctx, m); err != nil {
		return nil, err
	}
	return await(ctx, ch, c.dead)
}

// await returns what ch delivers, ErrClosed once dead is closed, or ctx's
// error. A value delivered before the connection died wins even when the
// waiter only looks after both happened: the reader hands a response over
// before it reads the line that ends the connection, so that response is
// not lost (a plain select would pick one of the two at random).
func await[T any](ctx context.Context, ch <-chan T, dead <-chan struct{}) (T, error) {
	var zero T
	select {
	case v := <-ch:
		return v, nil
	case <-dead:
		select {
		case v := <-ch:
			return v, nil
		default:
		}
		return zero, ErrClosed
	case <-ctx.Done():
		return zero, ctx.Err()
	}
}

func (c *Conn) writeLoop() {
	defer c.wg.Done()
	write := func(line []byte) bool {
		if c.cfg.RawLog != nil {
			c.cfg.RawLog(true, strings.TrimRight(string(line), "\r\n"))
		}
		c.nc.SetWriteDeadline(time.Now().Add(30 * time.Second))
		if _, err := c.nc.Write(line); err != nil {
			c.fail(fmt.Errorf("irc: write: %w", err))
			return false
		}
		return true
	}
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		var line []byte
		select {
		case line = <-c.prio:
		default:
			select {
			case line = <-c.prio:
			case line = <-c.out:
			case <-c.dead:
				return
			}
		}
		if isPong(line) {
			c.bucket.force(time.Now())
			if !write(line) {
				return
			}
			continue
		}
		select {
		case <-c.registered:
		default:
			// Registration is not paced: servers expect its burst, and a
			// slow one only risks their registration timeout.
			if !write(line) {
				return
			}
			continue
		}
		for {
			wait := c.bucket.take(time.Now())
			if wait == 0 {
				break
			}
			if timer == nil {
				timer = time.NewTimer(wait)
			} else {
				timer.Reset(wait)
			}
			select {
			case <-timer.C:
			case p := <-c.prio: // a PONG jumps the queue while we wait
				c.bucket.force(time.Now())
				if !write(p) {
					return
				}
				timer.Stop() // Go ≥ 1.23: no stale tick to drain
			case <-c.dead:
				return
			}
		}
		if !write(line) {
			return
		}
	}
}

func isPong(line []byte) bool {
	return len(line) >= 5 && string(line[:5]) == "PONG "
}

func (c *Conn) keepalive() {
	defer c.wg.Done()
	tick := min(c.cfg.PingInterval, c.cfg.PingTimeout) / 4
	tick = max(tick, 5*time.Millisecond)
	t := time.NewTicker(tick)
	defer t.Stop()
	var pingSent time.Time
	for {
		select {
		case <-c.dead:
			return
		case now := <-t.C:
			last := time.Unix(0, c.lastRead.Load())
			switch {
			case !pingSent.IsZero() && last.After(pingSent):
				pingSent = time.Time{}
			case !pingSent.IsZero() && now.Sub(pingSent) >= c.cfg.PingTimeout:
				c.fail(ErrPingTimeout)
				return
			case pingSent.IsZero() && now.Sub(last) >= c.cfg.PingInterval:
				pingSent = now
				select {
				case c.prio <- NewMessage("PING", "tributary-"+strconv.FormatInt(now.Unix(), 10)).Bytes():
				default:
				}
			}
		}
	}
}

// readLine reads one line, discarding lines longer than the buffer.
func readLine(r *bufio.Reader) (string, error) {
	for {
		b, err := r.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			for err == bufio.ErrBufferFull {
				_, err = r.ReadSlice('\n')
			}
			if err != nil {
				return "", err
			}
			continue // too long: dropped
		}
		if err != nil {
			if err == io.EOF && len(b) > 0 {
				return string(b), nil
			}
			return "", err
		}
		return string(b), nil
	}
}

func (c *Conn) readLoop() {
	defer c.wg.Done()
	defer close(c.readerDone)
	// 8191 bytes of tags plus a 512-byte line, with room for servers that
	// raise LINELEN.
	r := bufio.NewReaderSize(c.nc, 16384)
	for {
		line, err := readLine(r)
		if err != nil {
			c.mu.Lock()
			reason := c.err
			c.mu.Unlock()
			if reason == nil {
				if errors.Is(err, io.EOF) {
					err = io.ErrUnexpectedEOF
				}
				c.fail(fmt.Errorf("irc: read: %w", err))
			}
			return
		}
		c.lastRead.Store(time.Now().UnixNano())
		line = strings.TrimRight(line, "\r\n")
		if !utf8.ValidString(line) {
			line = latin1ToUTF8(line) // the usual legacy encoding on IRC
		}
		if c.cfg.RawLog != nil {
			c.cfg.RawLog(false, line)
		}
		m, err := Parse(line)
		if err != nil {
			continue
		}
		c.handle(m)
	}
}

func latin1ToUTF8(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		b.WriteRune(rune(s[i]))
	}
	return b.String()
}

// handle runs on the reader goroutine for every line.
func (c *Conn) handle(m *Message) {
	switch m.Command {
	case "PING":
		pong := &Message{Command: "PONG", Params: m.Params}
		select {
		case c.prio <- pong.Bytes():
		case <-c.dead:
		}
		return
	case "PONG":
		return
	case "ERROR":
		c.fail(fmt.Errorf("%w: %s", ErrServerClosing, m.Trailing()))
	case "CAP":
		c.handleCap(m)
	case "AUTHENTICATE":
		c.handleAuthenticate(m)
	case RPL_ISUPPORT:
		c.isupport.Apply(m.Params)
	case RPL_WELCOME:
		c.mu.Lock()
		c.nick = m.Param(0)
		c.server = m.Source
		c.mu.Unlock()
		if c.reg.state < regMOTD {
			c.reg.state = regMOTD
		}
	case RPL_ENDOFMOTD, ERR_NOMOTD:
		c.finishRegistration()
	case ERR_NICKNAMEINUSE, ERR_UNAVAILRESOURCE, ERR_ERRONEUSNICKNAME, ERR_NICKCOLLISION:
		if c.reg.state < regMOTD {
			c.reg.tried++
			if c.reg.tried >= len(c.reg.nicks) {
				c.fail(fmt.Errorf("%w: tried %s", ErrNickInUse, strings.Join(c.reg.nicks, ", ")))
				return
			}
			next := c.reg.nicks[c.reg.tried]
			c.mu.Lock()
			c.nick = next
			c.mu.Unlock()
			c.enqueue(NewMessage("NICK", next))
		}
	case RPL_LOGGEDIN:
		c.mu.Lock()
		c.account = m.Param(2)
		c.mu.Unlock()
	case RPL_LOGGEDOUT:
		c.mu.Lock()
		c.account = ""
		c.mu.Unlock()
	case RPL_SASLSUCCESS:
		if c.reg.state == regSASL {
			c.capEnd()
		}
	case ERR_SASLFAIL, ERR_SASLTOOLONG, ERR_SASLABORTED, ERR_SASLALREADY, ERR_NICKLOCKED:
		if c.reg.state == regSASL {
			if c.cfg.RequireSASL {
				c.fail(fmt.Errorf("%w: %s %s", ErrSASLFailed, m.Command, m.Trailing()))
				return
			}
			c.capEnd()
		}
	case "NICK":
		p := m.Prefix()
		c.mu.Lock()
		if c.isupport.CaseMapping().Equal(p.Name, c.nick) {
			c.nick = m.Param(0)
			c.selfSource = Prefix{Name: c.nick, User: p.User, Host: p.Host}.String()
		}
		c.mu.Unlock()
	case "JOIN", "CHGHOST":
		p := m.Prefix()
		c.mu.Lock()
		if p.User != "" && c.isupport.CaseMapping().Equal(p.Name, c.nick) {
			if m.Command == "CHGHOST" {
				p.User, p.Host = m.Param(0), m.Param(1)
			}
			c.selfSource = p.String()
		}
		c.mu.Unlock()
	case RPL_HOSTHIDDEN:
		c.mu.Lock()
		if c.selfSource != "" {
			p := ParsePrefix(c.selfSource)
			p.Host = m.Param(1)
			c.selfSource = p.String()
		}
		c.mu.Unlock()
	case "BATCH":
		c.handleBatch(m)
		return
	}
	c.route(m)
}

// route delivers a line: into its batch, to the waiter of its label, or out
// of Events.
func (c *Conn) route(m *Message) {
	if ref := m.BatchRef(); ref != "" {
		if b, ok := c.batches[ref]; ok {
			b.Items = append(b.Items, Event{Message: m})
			return
		}
	}
	if label := m.Label(); label != "" && c.deliverLabeled(label, &Response{Message: m}) {
		return
	}
	if m.Command == "ACK" {
		return // an ACK nobody waits for any more
	}
	c.emit(Event{Message: m})
}

func (c *Conn) handleBatch(m *Message) {
	ref := m.Param(0)
	if len(ref) < 2 {
		c.emit(Event{Message: m})
		return
	}
	switch ref[0] {
	case '+':
		b := &Batch{Ref: ref[1:], Type: m.Param(1), Start: m}
		if len(m.Params) > 2 {
			b.Params = append([]string(nil), m.Params[2:]...)
		}
		if parent, ok := c.batches[m.BatchRef()]; ok {
			b.parent = parent
			parent.Items = append(parent.Items, Event{Batch: b})
		}
		c.batches[b.Ref] = b
	case '-':
		b, ok := c.batches[ref[1:]]
		if !ok {
			return
		}
		delete(c.batches, b.Ref)
		if b.parent != nil {
			return // delivered with its parent
		}
		if label := b.Start.Label(); label != "" && c.deliverLabeled(label, &Response{Batch: b}) {
			return
		}
		if b.Type == "chathistory" && len(b.Params) > 0 {
			key := c.Fold(b.Params[0])
			c.mu.Lock()
			ch, ok := c.histWait[key]
			delete(c.histWait, key)
			c.mu.Unlock()
			if ok {
				ch <- b
				return
			}
		}
		c.emit(Event{Batch: b})
	}
}

func (c *Conn) deliverLabeled(label string, r *Response) bool {
	c.mu.Lock()
	ch, ok := c.waiters[label]
	delete(c.waiters, label)
	c.mu.Unlock()
	if ok {
		ch <- r // buffered, and only ever one send per label
	}
	return ok
}

func (c *Conn) handleCap(m *Message) {
	// CAP <target> <sub> [*] :caps
	sub := strings.ToUpper(m.Param(1))
	list := m.Trailing()
	more := len(m.Params) > 3 && m.Params[2] == "*"
	switch sub {
	case "LS":
		for _, tok := range strings.Fields(list) {
			k, v, _ := strings.Cut(tok, "=")
			c.reg.ls[k] = v
		}
		if more {
			return
		}
		c.mu.Lock()
		for k, v := range c.reg.ls {
			c.offered[k] = v
		}
		c.mu.Unlock()
		if c.reg.state == regCapLS {
			c.requestCaps(c.reg.ls, true)
		}
	case "NEW":
		offered := map[string]string{}
		for _, tok := range strings.Fields(list) {
			k, v, _ := strings.Cut(tok, "=")
			offered[k] = v
		}
		c.mu.Lock()
		for k, v := range offered {
			c.offered[k] = v
		}
		c.mu.Unlock()
		if c.reg.state == regDone {
			delete(offered, "sasl") // SASL after registration is not supported here
			c.requestCaps(offered, false)
		}
	case "DEL":
		c.mu.Lock()
		for _, k := range strings.Fields(list) {
			delete(c.caps, k)
			delete(c.offered, k)
		}
		c.mu.Unlock()
	case "ACK", "NAK":
		c.mu.Lock()
		for _, tok := range strings.Fields(list) {
			name := strings.TrimPrefix(tok, "-")
			if sub == "NAK" {
				continue
			}
			if strings.HasPrefix(tok, "-") {
				delete(c.caps, name)
				continue
			}
			c.caps[name] = c.offered[name]
			if name == "sasl" {
				c.reg.sasl = true
			}
		}
		c.mu.Unlock()
		if c.reg.state == regCapReq && !more {
			c.reg.pending--
			if c.reg.pending <= 0 {
				c.afterCaps()
			}
		}
	}
}

// requestCaps sends CAP REQ for the wanted capabilities among offered, in
// lines that fit. During registration it moves on when none is wanted.
func (c *Conn) requestCaps(offered map[string]string, registering bool) {
	var want []string
	for _, name := range c.cfg.Caps {
		if _, ok := offered[name]; !ok {
			continue
		}
		if name == "sasl" && c.cfg.SASL == nil {
			continue
		}
		if name == "chathistory" {
			if _, draft := offered["draft/chathistory"]; draft && contains(c.cfg.Caps, "draft/chathistory") {
				continue // one of the two is enough
			}
		}
		want = append(want, name)
	}
	if len(want) == 0 {
		if registering {
			c.afterCaps()
		}
		return
	}
	var lines [][]string
	var cur []string
	size := 0
	for _, w := range want {
		if size+len(w)+1 > 400 && len(cur) > 0 {
			lines = append(lines, cur)
			cur, size = nil, 0
		}
		cur = append(cur, w)
		size += len(w) + 1
	}
	lines = append(lines, cur)
	if registering {
		c.reg.state = regCapReq
		c.reg.pending = len(lines)
	}
	for _, l := range lines {
		c.enqueue(NewMessage("CAP", "REQ", strings.Join(l, " ")))
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// afterCaps runs when capability negotiation is over: SASL, or CAP END.
func (c *Conn) afterCaps() {
	if c.cfg.SASL != nil && c.reg.sasl {
		mechs := c.reg.ls["sasl"]
		if mechs == "" || contains(strings.Split(mechs, ","), "PLAIN") {
			c.reg.state = regSASL
			c.enqueue(NewMessage("AUTHENTICATE", "PLAIN"))
			return
		}
	}
	if c.cfg.SASL != nil && c.cfg.RequireSASL {
		c.fail(fmt.Errorf("%w: the server offers no SASL PLAIN", ErrSASLFailed))
		return
	}
	c.capEnd()
}

func (c *Conn) capEnd() {
	c.reg.state = regWelcome
	c.enqueue(NewMessage("CAP", "END"))
}

func (c *Conn) handleAuthenticate(m *Message) {
	if c.reg.state != regSASL || m.Param(0) != "+" {
		return
	}
	s := c.cfg.SASL
	payload := s.Authzid + "\x00" + s.User + "\x00" + s.Password
	for _, chunk := range SASLChunks(payload) {
		c.enqueue(NewMessage("AUTHENTICATE", chunk))
	}
}

// SASLChunks base64-encodes a SASL response and cuts it into AUTHENTICATE
// arguments of at most 400 bytes; a final "+" marks an empty response or one
// whose last chunk is exactly 400 bytes long.
func SASLChunks(payload string) []string {
	enc := base64.StdEncoding.EncodeToString([]byte(payload))
	var out []string
	for len(enc) >= 400 {
		out = append(out, enc[:400])
		enc = enc[400:]
	}
	if enc == "" {
		return append(out, "+")
	}
	return append(out, enc)
}

func (c *Conn) finishRegistration() {
	if c.reg.state == regDone {
		return
	}
	c.reg.state = regDone
	close(c.registered)
}

// emit queues an event for the dispatcher; the reader never blocks on a
// slow consumer.
func (c *Conn) emit(ev Event) {
	c.evMu.Lock()
	c.evQueue = append(c.evQueue, ev)
	c.evMu.Unlock()
	c.wakeDispatcher()
}

func (c *Conn) wakeDispatcher() {
	select {
	case c.evWake <- struct{}{}:
	default:
	}
}

func (c *Conn) dispatchLoop() {
	defer c.wg.Done()
	defer close(c.events)
	for {
		c.evMu.Lock()
		queue := c.evQueue
		c.evQueue = nil
		c.evMu.Unlock()
		for i, ev := range queue {
			select {
			case c.events <- ev:
			case <-c.stop:
				return
			}
			queue[i] = Event{}
		}
		if len(queue) > 0 {
			continue
		}
		select {
		case <-c.evWake:
		case <-c.stop:
			return
		case <-c.readerDone:
			// The reader has queued its last event: deliver the rest, then end.
			c.evMu.Lock()
			rest := c.evQueue
			c.evQueue = nil
			c.evMu.Unlock()
			for _, ev := range rest {
				select {
				case c.events <- ev:
				case <-c.stop:
					return
				}
			}
			return
		}
	}
}
