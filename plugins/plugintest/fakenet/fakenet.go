// Package fakenet is a chat network that exists only in memory, for the
// tests of bridge plugins: users with passwords, group chats, messages
// with edits, reactions and deletions, a history API and an event stream,
// served over HTTP (JSON) on a loopback port. A test runs the Network and
// acts on it directly (Post, Edit, React, Delete); a bridge reaches it as a
// client of its HTTP API (Client), as a bridge reaches a real network, so
// the network outlives the bridge's process. What bridges do on it arrives
// on Actions.
//
// It imports nothing of this module.
package fakenet

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// User is an account of the network.
type User struct {
	ID       string `json:"id"`
	Name     string `json:"name"`
	password string
}

// Chat is a group chat.
type Chat struct {
	ID      string   `json:"id"`
	Name    string   `json:"name"`
	Topic   string   `json:"topic"`
	Members []string `json:"members"`
	// LatestTS is the time of the chat's newest message (ms), 0 if none.
	LatestTS int64 `json:"latest_ts"`
}

// Message is a message of a chat, as it is now.
type Message struct {
	ID        string            `json:"id"`
	Chat      string            `json:"chat"`
	Sender    string            `json:"sender"`
	Text      string            `json:"text"`
	TS        int64             `json:"ts"`
	ReplyTo   string            `json:"reply_to,omitempty"`
	File      *File             `json:"file,omitempty"`
	Edited    bool              `json:"edited,omitempty"`
	Deleted   bool              `json:"deleted,omitempty"`
	Reactions map[string]string `json:"reactions,omitempty"` // sender → emoji
}

// File is a message's attachment.
type File struct {
	Name string `json:"name"`
	Mime string `json:"mime"`
	Data []byte `json:"data"`
}

// Event is something that happened on the network.
type Event struct {
	Seq  int64  `json:"seq"`
	Type string `json:"type"` // message, edit, reaction, unreaction, delete, typing, read
	Chat string `json:"chat"`
	// Sender acted; Message is the message afterwards (for message and
	// edit: the text; for reactions and deletions: the target).
	Sender  string   `json:"sender"`
	Message *Message `json:"message"`
	Emoji   string   `json:"emoji,omitempty"`
	// Stopped: a typing event that says the sender stopped typing.
	Stopped bool  `json:"stopped,omitempty"`
	TS      int64 `json:"ts"`
	// session is the login whose API call caused it: its own stream does
	// not echo it back.
	session string
}

// HistoryCall is one request for a page of history and what it got.
type HistoryCall struct {
	Chat     string
	Forward  bool
	After    string
	Before   string
	Limit    int
	Returned int
	HasMore  bool
}

// Network is the fake network.
type Network struct {
	mu       sync.Mutex
	users    map[string]*User
	chats    map[string]*Chat
	history  map[string][]*Message // by chat, oldest first
	byID     map[string]*Message
	events   []*Event
	wake     chan struct{} // closed and replaced on each event
	sessions map[string]string
	nextMsg  int

	actions chan *Event
	calls   []HistoryCall
	srv     *http.Server
	ln      net.Listener
	down    bool
}

// New starts a network on a loopback port.
func New() (*Network, error) {
	n := &Network{users: map[string]*User{}, chats: map[string]*Chat{}, history: map[string][]*Message{},
		byID: map[string]*Message{}, wake: make(chan struct{}), sessions: map[string]string{},
		actions: make(chan *Event, 100_000)}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	n.ln = ln
	n.srv = &http.Server{Handler: n.routes(), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = n.srv.Serve(ln) }()
	return n, nil
}

// URL is where the network's API listens.
func (n *Network) URL() string { return "http://" + n.ln.Addr().String() }

// Close stops serving.
func (n *Network) Close() { _ = n.srv.Close() }

// Actions are what bridges did through the API: messages sent, edits,
// reactions, deletions.
func (n *Network) Actions() <-chan *Event { return n.actions }

// AddUser creates an account.
func (n *Network) AddUser(id, name, password string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.users[id] = &User{ID: id, Name: name, password: password}
}

// AddChat creates a chat with members.
func (n *Network) AddChat(id, name, topic string, members ...string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.chats[id] = &Chat{ID: id, Name: name, Topic: topic, Members: members}
}

// Seed appends count messages to a chat's history at once, without events
// (history that was there before anyone bridged it): message i is
// text(i) from sender(i) at ts(i). It returns their IDs.
func (n *Network) Seed(chat string, count int, sender func(int) string, text func(int) string, ts func(int) time.Time) []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	ids := make([]string, count)
	for i := range count {
		m := n.newMessage(chat, sender(i), text(i), ts(i).UnixMilli(), "")
		ids[i] = m.ID
	}
	return ids
}

func (n *Network) newMessage(chat, sender, text string, ts int64, replyTo string) *Message {
	n.nextMsg++
	m := &Message{ID: fmt.Sprintf("m%07d", n.nextMsg), Chat: chat, Sender: sender, Text: text, TS: ts, ReplyTo: replyTo}
	n.history[chat] = append(n.history[chat], m)
	n.byID[m.ID] = m
	if c := n.chats[chat]; c != nil && ts > c.LatestTS {
		c.LatestTS = ts
	}
	return m
}

// Post sends a message from a user of the network, now.
func (n *Network) Post(chat, sender, text string) *Message {
	n.mu.Lock()
	defer n.mu.Unlock()
	m := n.newMessage(chat, sender, text, time.Now().UnixMilli(), "")
	n.emit(&Event{Type: "message", Chat: chat, Sender: sender, Message: copyMessage(m), TS: m.TS})
	return copyMessage(m)
}

// PostFile sends a file from a user of the network, now.
func (n *Network) PostFile(chat, sender string, f *File) *Message {
	n.mu.Lock()
	defer n.mu.Unlock()
	m := n.newMessage(chat, sender, f.Name, time.Now().UnixMilli(), "")
	m.File = f
	n.emit(&Event{Type: "message", Chat: chat, Sender: sender, Message: copyMessage(m), TS: m.TS})
	return copyMessage(m)
}

// Edit changes a message's text.
func (n *Network) Edit(msgID, text string) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.edit("", msgID, text, "")
}

// React adds sender's reaction to a message.
func (n *Network) React(msgID, sender, emoji string) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.react("", msgID, sender, emoji, true)
}

// Delete deletes a message.
func (n *Network) Delete(msgID string) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.delete("", msgID, "")
}

// Typing says a user is typing in a chat.
func (n *Network) Typing(chat, user string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.emit(&Event{Type: "typing", Chat: chat, Sender: user, TS: time.Now().UnixMilli()})
}

// Read says a user has read a chat up to a message.
func (n *Network) Read(msgID, user string) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	m := n.byID[msgID]
	if m == nil {
		return errNoMessage
	}
	n.emit(&Event{Type: "read", Chat: m.Chat, Sender: user, Message: copyMessage(m), TS: time.Now().UnixMilli()})
	return nil
}

// Message returns a message as it is now.
func (n *Network) Message(msgID string) *Message {
	n.mu.Lock()
	defer n.mu.Unlock()
	if m := n.byID[msgID]; m != nil {
		return copyMessage(m)
	}
	return nil
}

// HistoryCalls are the history pages asked for so far.
func (n *Network) HistoryCalls() []HistoryCall {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]HistoryCall(nil), n.calls...)
}

// SetDown makes the API answer 503 (an outage), or serve again.
func (n *Network) SetDown(down bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.down = down
	n.wakeStreams()
}

// Revoke ends every login of a user: their tokens are refused from now on.
func (n *Network) Revoke(user string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for tok, u := range n.sessions {
		if u == user {
			delete(n.sessions, tok)
		}
	}
	n.wakeStreams()
}

// wakeStreams ends the event streams' waits, so that they look again.
func (n *Network) wakeStreams() {
	close(n.wake)
	n.wake = make(chan struct{})
}

func copyMessage(m *Message) *Message {
	c := *m
	if m.Reactions != nil {
		c.Reactions = make(map[string]string, len(m.Reactions))
		for k, v := range m.Reactions {
			c.Reactions[k] = v
		}
	}
	return &c
}

var errNoMessage = errors.New("no such message")

func (n *Network) edit(session, msgID, text, by string) error {
	m := n.byID[msgID]
	if m == nil || m.Deleted {
		return errNoMessage
	}
	if by != "" && m.Sender != by {
		return errors.New("only the sender may edit a message")
	}
	m.Text, m.Edited = text, true
	n.emit(&Event{Type: "edit", Chat: m.Chat, Sender: m.Sender, Message: copyMessage(m), TS: time.Now().UnixMilli(),
		session: session})
	return nil
}

func (n *Network) react(session, msgID, sender, emoji string, add bool) error {
	m := n.byID[msgID]
	if m == nil || m.Deleted {
		return errNoMessage
	}
	typ := "reaction"
	if add {
		if m.Reactions == nil {
			m.Reactions = map[string]string{}
		}
		m.Reactions[sender] = emoji
	} else {
		if m.Reactions[sender] != emoji {
			return errors.New("no such reaction")
		}
		delete(m.Reactions, sender)
		typ = "unreaction"
	}
	n.emit(&Event{Type: typ, Chat: m.Chat, Sender: sender, Message: copyMessage(m), Emoji: emoji,
		TS: time.Now().UnixMilli(), session: session})
	return nil
}

func (n *Network) delete(session, msgID, by string) error {
	m := n.byID[msgID]
	if m == nil || m.Deleted {
		return errNoMessage
	}
	if by != "" && m.Sender != by {
		return errors.New("only the sender may delete a message")
	}
	m.Deleted, m.Text = true, ""
	n.emit(&Event{Type: "delete", Chat: m.Chat, Sender: m.Sender, Message: copyMessage(m), TS: time.Now().UnixMilli(),
		session: session})
	return nil
}

// emit appends an event and wakes the streams; with a session, it is also
// an action of a bridge.
func (n *Network) emit(e *Event) {
	e.Seq = int64(len(n.events)) + 1
	n.events = append(n.events, e)
	n.wakeStreams()
	if e.session != "" {
		select {
		case n.actions <- e:
		default:
		}
	}
}

// The HTTP API. Every call but /login takes "Authorization: Bearer
// <token>" of a login.

type loginRequest struct {
	Username string `json:"username"`
	Password string `json:"password"`
}

type loginResponse struct {
	Token string `json:"token"`
	User  User   `json:"user"`
}

type sendRequest struct {
	Chat    string `json:"chat"`
	Text    string `json:"text"`
	ReplyTo string `json:"reply_to,omitempty"`
	File    *File  `json:"file,omitempty"`
}

type targetRequest struct {
	ID    string `json:"id"`
	Text  string `json:"text,omitempty"`
	Emoji string `json:"emoji,omitempty"`
}

type typingRequest struct {
	Chat   string `json:"chat"`
	Typing bool   `json:"typing"`
}

type eventsResponse struct {
	Events []*Event `json:"events"`
	Next   int64    `json:"next"`
}

type historyResponse struct {
	Messages []*Message `json:"messages"`
	HasMore  bool       `json:"has_more"`
}

func (n *Network) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /login", func(w http.ResponseWriter, r *http.Request) {
		var req loginRequest
		if !decode(w, r, &req) {
			return
		}
		n.mu.Lock()
		defer n.mu.Unlock()
		u := n.users[req.Username]
		if u == nil || u.password != req.Password {
			fail(w, http.StatusForbidden, "wrong username or password")
			return
		}
		b := make([]byte, 16)
		_, _ = rand.Read(b)
		tok := hex.EncodeToString(b)
		n.sessions[tok] = u.ID
		reply(w, loginResponse{Token: tok, User: *u})
	})
	mux.HandleFunc("GET /me", n.authed(func(w http.ResponseWriter, r *http.Request, me, _ string) {
		reply(w, n.users[me])
	}))
	mux.HandleFunc("GET /users/{id}", n.authed(func(w http.ResponseWriter, r *http.Request, _, _ string) {
		u := n.users[r.PathValue("id")]
		if u == nil {
			fail(w, http.StatusNotFound, "no such user")
			return
		}
		reply(w, u)
	}))
	mux.HandleFunc("GET /chats", n.authed(func(w http.ResponseWriter, r *http.Request, me, _ string) {
		var out []*Chat
		for _, c := range n.chats {
			if slices.Contains(c.Members, me) {
				cc := *c
				out = append(out, &cc)
			}
		}
		slices.SortFunc(out, func(a, b *Chat) int { return strings.Compare(a.ID, b.ID) })
		reply(w, out)
	}))
	mux.HandleFunc("GET /position", n.authed(func(w http.ResponseWriter, r *http.Request, _, _ string) {
		reply(w, eventsResponse{Next: int64(len(n.events))})
	}))
	mux.HandleFunc("GET /history", n.authed(n.handleHistory))
	mux.HandleFunc("GET /events", n.handleEvents)
	mux.HandleFunc("POST /send", n.authed(func(w http.ResponseWriter, r *http.Request, me, session string) {
		var req sendRequest
		if !decode(w, r, &req) {
			return
		}
		c := n.chats[req.Chat]
		if c == nil || !slices.Contains(c.Members, me) {
			fail(w, http.StatusForbidden, "not a member of the chat")
			return
		}
		m := n.newMessage(req.Chat, me, req.Text, time.Now().UnixMilli(), req.ReplyTo)
		m.File = req.File
		n.emit(&Event{Type: "message", Chat: req.Chat, Sender: me, Message: copyMessage(m), TS: m.TS, session: session})
		reply(w, m)
	}))
	mux.HandleFunc("POST /edit", n.authed(func(w http.ResponseWriter, r *http.Request, me, session string) {
		var req targetRequest
		if decode(w, r, &req) {
			done(w, n.edit(session, req.ID, req.Text, me))
		}
	}))
	mux.HandleFunc("POST /react", n.authed(func(w http.ResponseWriter, r *http.Request, me, session string) {
		var req targetRequest
		if decode(w, r, &req) {
			done(w, n.react(session, req.ID, me, req.Emoji, true))
		}
	}))
	mux.HandleFunc("POST /unreact", n.authed(func(w http.ResponseWriter, r *http.Request, me, session string) {
		var req targetRequest
		if decode(w, r, &req) {
			done(w, n.react(session, req.ID, me, req.Emoji, false))
		}
	}))
	mux.HandleFunc("POST /delete", n.authed(func(w http.ResponseWriter, r *http.Request, me, session string) {
		var req targetRequest
		if decode(w, r, &req) {
			done(w, n.delete(session, req.ID, me))
		}
	}))
	mux.HandleFunc("POST /typing", n.authed(func(w http.ResponseWriter, r *http.Request, me, session string) {
		var req typingRequest
		if !decode(w, r, &req) {
			return
		}
		if c := n.chats[req.Chat]; c == nil || !slices.Contains(c.Members, me) {
			fail(w, http.StatusForbidden, "not a member of the chat")
			return
		}
		n.emit(&Event{Type: "typing", Chat: req.Chat, Sender: me, Stopped: !req.Typing, TS: time.Now().UnixMilli(),
			session: session})
		done(w, nil)
	}))
	mux.HandleFunc("POST /read", n.authed(func(w http.ResponseWriter, r *http.Request, me, session string) {
		var req targetRequest
		if !decode(w, r, &req) {
			return
		}
		m := n.byID[req.ID]
		if m == nil {
			done(w, errNoMessage)
			return
		}
		n.emit(&Event{Type: "read", Chat: m.Chat, Sender: me, Message: copyMessage(m), TS: time.Now().UnixMilli(),
			session: session})
		done(w, nil)
	}))
	return mux
}

// authed runs h under the network's lock for a valid token's user.
func (n *Network) authed(h func(w http.ResponseWriter, r *http.Request, me, session string)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		n.mu.Lock()
		defer n.mu.Unlock()
		if n.down {
			fail(w, http.StatusServiceUnavailable, "the network is down")
			return
		}
		tok := bearer(r)
		me, ok := n.sessions[tok]
		if !ok {
			fail(w, http.StatusUnauthorized, "unknown token")
			return
		}
		h(w, r, me, tok)
	}
}

func bearer(r *http.Request) string {
	const p = "Bearer "
	if h := r.Header.Get("Authorization"); len(h) > len(p) && h[:len(p)] == p {
		return h[len(p):]
	}
	return ""
}

// handleHistory answers a page of a chat's history, oldest first, as chat
// networks' history APIs do: with after, the newest limit messages after
// that one (of the whole chat when after is empty and forward is set);
// with before, the limit messages just before it. has_more says whether
// older messages remain that the page did not reach.
func (n *Network) handleHistory(w http.ResponseWriter, r *http.Request, me, _ string) {
	q := r.URL.Query()
	c := n.chats[q.Get("chat")]
	if c == nil || !slices.Contains(c.Members, me) {
		fail(w, http.StatusForbidden, "not a member of the chat")
		return
	}
	limit, _ := strconv.Atoi(q.Get("limit"))
	if limit <= 0 {
		limit = 50
	}
	hist := n.history[c.ID]
	index := func(id string) int {
		return slices.IndexFunc(hist, func(m *Message) bool { return m.ID == id })
	}
	var lo, hi int
	resp := historyResponse{}
	if q.Get("forward") == "true" {
		after := -1
		if a := q.Get("after"); a != "" {
			if after = index(a); after < 0 {
				fail(w, http.StatusNotFound, "no such message")
				return
			}
		}
		hi = len(hist)
		lo = max(after+1, hi-limit)
		resp.HasMore = lo > after+1
	} else {
		hi = len(hist)
		if b := q.Get("before"); b != "" {
			if hi = index(b); hi < 0 {
				fail(w, http.StatusNotFound, "no such message")
				return
			}
		}
		lo = max(0, hi-limit)
		resp.HasMore = lo > 0
	}
	resp.Messages = make([]*Message, 0, hi-lo)
	for _, m := range hist[lo:hi] {
		resp.Messages = append(resp.Messages, copyMessage(m))
	}
	n.calls = append(n.calls, HistoryCall{Chat: c.ID, Forward: q.Get("forward") == "true", After: q.Get("after"),
		Before: q.Get("before"), Limit: limit, Returned: len(resp.Messages), HasMore: resp.HasMore})
	reply(w, resp)
}

// handleEvents long-polls for events after since in the login's chats,
// up to timeout milliseconds.
func (n *Network) handleEvents(w http.ResponseWriter, r *http.Request) {
	since, _ := strconv.ParseInt(r.URL.Query().Get("since"), 10, 64)
	timeout, _ := strconv.Atoi(r.URL.Query().Get("timeout"))
	deadline := time.Now().Add(time.Duration(timeout) * time.Millisecond)
	for {
		n.mu.Lock()
		if n.down {
			n.mu.Unlock()
			fail(w, http.StatusServiceUnavailable, "the network is down")
			return
		}
		tok := bearer(r)
		me, ok := n.sessions[tok]
		if !ok {
			n.mu.Unlock()
			fail(w, http.StatusUnauthorized, "unknown token")
			return
		}
		resp := eventsResponse{Next: int64(len(n.events)), Events: []*Event{}}
		if since < 0 || since > resp.Next {
			since = resp.Next
		}
		for _, e := range n.events[since:] {
			if c := n.chats[e.Chat]; c != nil && slices.Contains(c.Members, me) && e.session != tok {
				resp.Events = append(resp.Events, e)
			}
		}
		wake := n.wake
		n.mu.Unlock()
		if len(resp.Events) > 0 || !time.Now().Before(deadline) {
			reply(w, resp)
			return
		}
		since = resp.Next
		t := time.NewTimer(time.Until(deadline))
		select {
		case <-wake:
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return
		}
		t.Stop()
	}
}

func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	if err := json.NewDecoder(r.Body).Decode(v); err != nil {
		fail(w, http.StatusBadRequest, err.Error())
		return false
	}
	return true
}

func reply(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

func done(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, errNoMessage):
		fail(w, http.StatusNotFound, err.Error())
	case err != nil:
		fail(w, http.StatusForbidden, err.Error())
	default:
		reply(w, struct{}{})
	}
}

func fail(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": msg})
}

// Client is a login's client of a network's API (what a bridge uses).
type Client struct {
	URL   string
	Token string
	HTTP  *http.Client
}

// ErrUnauthorized: the network does not know the token (any more).
var ErrUnauthorized = errors.New("fakenet: unknown token")

// Login logs in with a password.
func Login(ctx context.Context, baseURL, username, password string) (*Client, *User, error) {
	c := &Client{URL: baseURL}
	var resp loginResponse
	if err := c.call(ctx, "POST", "/login", loginRequest{Username: username, Password: password}, &resp); err != nil {
		return nil, nil, err
	}
	c.Token = resp.Token
	return c, &resp.User, nil
}

func (c *Client) call(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		raw, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(raw)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.URL+path, body)
	if err != nil {
		return err
	}
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusUnauthorized {
		return ErrUnauthorized
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error string `json:"error"`
		}
		_ = json.NewDecoder(resp.Body).Decode(&e)
		return fmt.Errorf("fakenet: %s %s: %d %s", method, path, resp.StatusCode, e.Error)
	}
	if out == nil {
		return nil
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

// Me is the login's user.
func (c *Client) Me(ctx context.Context) (*User, error) {
	var u User
	return &u, c.call(ctx, "GET", "/me", nil, &u)
}

// User looks a user up.
func (c *Client) User(ctx context.Context, id string) (*User, error) {
	var u User
	return &u, c.call(ctx, "GET", "/users/"+id, nil, &u)
}

// Chats are the login's chats.
func (c *Client) Chats(ctx context.Context) ([]*Chat, error) {
	var out []*Chat
	return out, c.call(ctx, "GET", "/chats", nil, &out)
}

// Position is the stream position to read new events from.
func (c *Client) Position(ctx context.Context) (int64, error) {
	var resp eventsResponse
	return resp.Next, c.call(ctx, "GET", "/position", nil, &resp)
}

// Events waits up to timeout for events after since; it returns them and
// the position after them.
func (c *Client) Events(ctx context.Context, since int64, timeout time.Duration) ([]*Event, int64, error) {
	var resp eventsResponse
	err := c.call(ctx, "GET", fmt.Sprintf("/events?since=%d&timeout=%d", since, timeout.Milliseconds()), nil, &resp)
	return resp.Events, resp.Next, err
}

// History is a page of a chat's history (see handleHistory).
func (c *Client) History(ctx context.Context, chat string, forward bool, after, before string, limit int) ([]*Message, bool, error) {
	var resp historyResponse
	path := fmt.Sprintf("/history?chat=%s&forward=%t&after=%s&before=%s&limit=%d", chat, forward, after, before, limit)
	return resp.Messages, resp.HasMore, c.call(ctx, "GET", path, nil, &resp)
}

// Send sends a text message, replying to replyTo if set.
func (c *Client) Send(ctx context.Context, chat, text, replyTo string) (*Message, error) {
	var m Message
	return &m, c.call(ctx, "POST", "/send", sendRequest{Chat: chat, Text: text, ReplyTo: replyTo}, &m)
}

// SendFile sends a file.
func (c *Client) SendFile(ctx context.Context, chat string, f *File) (*Message, error) {
	var m Message
	return &m, c.call(ctx, "POST", "/send", sendRequest{Chat: chat, Text: f.Name, File: f}, &m)
}

// Edit edits one of the login's messages.
func (c *Client) Edit(ctx context.Context, msgID, text string) error {
	return c.call(ctx, "POST", "/edit", targetRequest{ID: msgID, Text: text}, nil)
}

// React reacts to a message; Unreact takes the reaction back.
func (c *Client) React(ctx context.Context, msgID, emoji string) error {
	return c.call(ctx, "POST", "/react", targetRequest{ID: msgID, Emoji: emoji}, nil)
}

func (c *Client) Unreact(ctx context.Context, msgID, emoji string) error {
	return c.call(ctx, "POST", "/unreact", targetRequest{ID: msgID, Emoji: emoji}, nil)
}

// SetTyping says the login is (or stopped) typing in a chat.
func (c *Client) SetTyping(ctx context.Context, chat string, typing bool) error {
	return c.call(ctx, "POST", "/typing", typingRequest{Chat: chat, Typing: typing}, nil)
}

// MarkRead says the login has read its chat up to a message.
func (c *Client) MarkRead(ctx context.Context, msgID string) error {
	return c.call(ctx, "POST", "/read", targetRequest{ID: msgID}, nil)
}

// Delete deletes one of the login's messages.
func (c *Client) Delete(ctx context.Context, msgID string) error {
	return c.call(ctx, "POST", "/delete", targetRequest{ID: msgID}, nil)
}
