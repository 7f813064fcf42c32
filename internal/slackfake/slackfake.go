// Package slackfake is a local Slack for tests and benchmarks: the Web API
// methods the Slack bridge calls, answered with the shapes Slack documents
// for them (api.slack.com/methods, api.slack.com/events), file uploads and
// downloads, and Socket Mode (apps.connections.open and a websocket that
// carries events_api envelopes and takes their acknowledgements).
//
// A test plays Slack's people through Say, Edit, Delete, React and
// Upload, which change the workspace and send the events Slack would; it
// watches what the bridge did through Posted. Revoke makes a token dead,
// as Slack does when a user or admin revokes it.
package slackfake

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// Team is the workspace.
const (
	TeamID   = "T0TRIB"
	TeamName = "Tributary Test"
	AppID    = "A0TRIB"
)

// User is a person (or bot user) of the workspace.
type User struct {
	ID, Name, RealName string
	IsBot              bool
	BotID              string
	Avatar             string // image_512, a URL of this server when set
}

// Channel is a conversation.
type Channel struct {
	ID, Name string
	// Kind is "channel", "private", "im" or "mpim".
	Kind    string
	Topic   string
	Members []string
}

// File is an uploaded file.
type File struct {
	ID, Name, Mimetype string
	Data               []byte
}

// Message is a message as Slack keeps it.
type Message struct {
	Channel, TS, ThreadTS, User, BotID, Text, Subtype string
	// Username and IconURL are the name and picture a bot posted under
	// (chat.postMessage's username and icon_url, which Slack takes only
	// from a token with the chat:write.customize scope).
	Username, IconURL string
	Files             []*File
	EditedTS          string
	// Reactions: emoji name → users, in order.
	Reactions map[string][]string
	Deleted   bool
}

// Call is a Web API call the bridge made.
type Call struct {
	Method string
	Token  string
	Args   url.Values
	// Message is the message a chat.postMessage, chat.update or
	// files.completeUploadExternal made or changed (a copy).
	Message *Message
	At      time.Time
	// answered: the call's effect is in the fake's state (Calls lists
	// only answered calls).
	answered bool
}

// Ack is an acknowledged Socket Mode envelope.
type Ack struct {
	EnvelopeID string
	Sent, At   time.Time
}

type token struct {
	user    string
	app     bool
	revoked string // the error Slack now answers with, if any
	// noCustomize: the token lacks chat:write.customize (DenyCustomize).
	noCustomize bool
}

// botScopes are the scopes of the bot token (X-OAuth-Scopes), without
// chat:write.customize, which it has unless DenyCustomize.
const botScopes = "app_mentions:read,channels:history,channels:read,chat:write,emoji:read,files:read,files:write," +
	"groups:history,groups:read,im:history,im:read,mpim:history,mpim:read,reactions:read,reactions:write,users:read"

// DenyCustomize takes chat:write.customize from the bot token, as an app
// installed without it: Slack then ignores chat.postMessage's username
// and icon_url (it does not fail), and says which scopes the token has in
// every answer's X-OAuth-Scopes header.
func (s *Server) DenyCustomize() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tokens[BotToken].noCustomize = true
}

// Server is the fake Slack.
type Server struct {
	srv *httptest.Server

	mu       sync.Mutex
	users    map[string]*User
	channels map[string]*Channel
	messages map[string]map[string]*Message // channel → ts → message
	files    map[string]*File
	// emoji are the workspace's custom emoji: name → image, or
	// "alias:name" (emojiAliases).
	emoji        map[string][]byte
	emojiAliases map[string]string
	tokens       map[string]*token
	sockets      []*socket
	clock        int64 // microseconds of the last ts given
	seq          int
	sent         map[string]time.Time // envelope → when sent
	// pending are the envelopes not acknowledged yet, in order: Slack sends
	// them again (retry_attempt) on the app's next connection.
	pending []*envelope
	calls   []Call
	acks    []Ack
	changed chan struct{} // closed and replaced on every change
}

// New starts a fake Slack with a bot user, and the app's tokens: BotToken
// (xoxb-), AppToken (xapp-).
func New() *Server {
	s := &Server{users: map[string]*User{}, channels: map[string]*Channel{}, messages: map[string]map[string]*Message{},
		files: map[string]*File{}, emoji: map[string][]byte{}, emojiAliases: map[string]string{}, tokens: map[string]*token{}, sent: map[string]time.Time{}, changed: make(chan struct{}),
		clock: time.Now().UnixMicro()}
	s.users[BotUserID] = &User{ID: BotUserID, Name: "tributary", RealName: "Tributary", IsBot: true, BotID: BotID}
	s.tokens[BotToken] = &token{user: BotUserID}
	s.tokens[AppToken] = &token{app: true}
	mux := http.NewServeMux()
	mux.HandleFunc("/api/{method}", s.api)
	mux.HandleFunc("/socket", s.socket)
	mux.HandleFunc("/upload/{id}", s.upload)
	mux.HandleFunc("/files/{id}/{name}", s.download)
	mux.HandleFunc("/emoji/{name}", func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		data := s.emoji[r.PathValue("name")]
		s.mu.Unlock()
		if data == nil {
			http.NotFound(w, r)
			return
		}
		_, _ = w.Write(data)
	})
	mux.HandleFunc("/avatars/{user}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "image/png")
		_, _ = w.Write(pngPixel)
	})
	s.srv = httptest.NewServer(mux)
	return s
}

// The app's bot and tokens.
const (
	BotUserID = "U0BOT"
	BotID     = "B0BOT"
	BotToken  = "xoxb-fake-bot"
	AppToken  = "xapp-fake-app"
)

// Close stops the server.
func (s *Server) Close() {
	s.mu.Lock()
	socks := slices.Clone(s.sockets)
	s.mu.Unlock()
	for _, so := range socks {
		so.close()
	}
	s.srv.Close()
}

// APIURL is the Web API's base URL (the bridge's api_url).
func (s *Server) APIURL() string { return s.srv.URL + "/api/" }

// AddUser adds a person with a user token (xoxp-<id>) of their own.
func (s *Server) AddUser(id, name, realName string) (userToken string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.users[id] = &User{ID: id, Name: name, RealName: realName, Avatar: s.srv.URL + "/avatars/" + id}
	userToken = "xoxp-fake-" + strings.ToLower(id)
	s.tokens[userToken] = &token{user: id}
	return userToken
}

// AddChannel adds a conversation with its members (the bot is in every
// channel it is named in).
func (s *Server) AddChannel(c Channel) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cc := c
	cc.Members = slices.Clone(c.Members)
	s.channels[c.ID] = &cc
	if s.messages[c.ID] == nil {
		s.messages[c.ID] = map[string]*Message{}
	}
}

// Revoke makes a token dead: Slack answers it with code (token_revoked,
// invalid_auth, account_inactive…). With event, the app is also sent
// tokens_revoked, as when a user removes the app's access.
func (s *Server) Revoke(tok, code string, event bool) {
	s.mu.Lock()
	t := s.tokens[tok]
	if t != nil {
		t.revoked = code
	}
	s.mu.Unlock()
	if t != nil && event {
		kind := "oauth"
		if strings.HasPrefix(tok, "xoxb-") {
			kind = "bot"
		}
		s.emit(map[string]any{"type": "tokens_revoked", "tokens": map[string]any{kind: []string{t.user}},
			"event_ts": s.nextTS()})
	}
}

// nextTS is a new, increasing Slack ts.
func (s *Server) nextTS() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tsLocked()
}

func (s *Server) tsLocked() string {
	now := time.Now().UnixMicro()
	if now <= s.clock {
		now = s.clock + 1
	}
	s.clock = now
	return fmt.Sprintf("%d.%06d", now/1_000_000, now%1_000_000)
}

func (s *Server) notify() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// Changed is closed at the next change (a call, an ack).
func (s *Server) Changed() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.changed
}

// Calls returns the Web API calls answered so far: a call waited for has
// changed the fake's state already (a reaction removed is gone from its
// message).
func (s *Server) Calls() []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.DeleteFunc(slices.Clone(s.calls), func(c Call) bool { return !c.answered })
}

// Acks returns the Socket Mode envelopes acknowledged so far.
func (s *Server) Acks() []Ack {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.acks)
}

// Sockets is how many Socket Mode connections are open.
func (s *Server) Sockets() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.sockets)
}

// Message returns a copy of a message.
func (s *Server) Message(channel, ts string) *Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	if m := s.messages[channel][ts]; m != nil {
		return m.copy()
	}
	return nil
}

// Messages returns copies of a channel's messages in ts order.
func (s *Server) Messages(channel string) []*Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*Message
	for _, ts := range slices.Sorted(maps.Keys(s.messages[channel])) {
		out = append(out, s.messages[channel][ts].copy())
	}
	return out
}

func (m *Message) copy() *Message {
	c := *m
	c.Files = slices.Clone(m.Files)
	c.Reactions = map[string][]string{}
	for k, v := range m.Reactions {
		c.Reactions[k] = slices.Clone(v)
	}
	return &c
}

// AddEmoji adds a custom emoji to the workspace (emoji.list), its image
// served without a token as emoji.slack-edge.com does.
func (s *Server) AddEmoji(name string, image []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.emoji[name] = image
}

// AddEmojiAlias adds a name for another emoji (emoji.list's "alias:name").
func (s *Server) AddEmojiAlias(name, target string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.emojiAliases[name] = target
}

// AddHistory puts a message the workspace had before (one an export holds)
// into a channel, with no event: Slack knows it, the bridge has not seen it.
func (s *Server) AddHistory(channel, ts, user, text string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.messages[channel] == nil {
		s.messages[channel] = map[string]*Message{}
	}
	s.messages[channel][ts] = &Message{Channel: channel, TS: ts, User: user, Text: text}
}

// AddHistoryReaction gives a message of the history a reaction (no event:
// it was there before).
func (s *Server) AddHistoryReaction(channel, ts, user, name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.messages[channel][ts]
	if m == nil {
		return
	}
	if m.Reactions == nil {
		m.Reactions = map[string][]string{}
	}
	m.Reactions[name] = append(m.Reactions[name], user)
}

// Say posts a message as a person, with the event Slack sends. threadTS
// makes it a thread reply.
func (s *Server) Say(channel, user, text, threadTS string) string {
	s.mu.Lock()
	m := &Message{Channel: channel, TS: s.tsLocked(), ThreadTS: threadTS, User: user, Text: text}
	s.messages[channel][m.TS] = m
	ev := s.messageEventLocked(m)
	s.mu.Unlock()
	s.emit(ev)
	return m.TS
}

// Upload shares a file as a person, with a message (file_share).
func (s *Server) Upload(channel, user, name, mimetype string, data []byte, text, threadTS string) string {
	s.mu.Lock()
	f := &File{ID: s.idLocked("F"), Name: name, Mimetype: mimetype, Data: data}
	s.files[f.ID] = f
	m := &Message{Channel: channel, TS: s.tsLocked(), ThreadTS: threadTS, User: user, Text: text, Subtype: "file_share",
		Files: []*File{f}}
	s.messages[channel][m.TS] = m
	ev := s.messageEventLocked(m)
	s.mu.Unlock()
	s.emit(ev)
	return m.TS
}

// Edit changes a message's text as its author (message_changed).
func (s *Server) Edit(channel, ts, text string) {
	s.mu.Lock()
	m := s.messages[channel][ts]
	prev := s.msgJSONLocked(m)
	m.Text, m.EditedTS = text, s.tsLocked()
	ev := map[string]any{"type": "message", "subtype": "message_changed", "hidden": true, "channel": channel,
		"ts": m.EditedTS, "event_ts": m.EditedTS, "channel_type": s.channelType(channel),
		"message": s.msgJSONLocked(m), "previous_message": prev}
	s.mu.Unlock()
	s.emit(ev)
}

// Delete deletes a message (message_deleted).
func (s *Server) Delete(channel, ts string) {
	s.mu.Lock()
	m := s.messages[channel][ts]
	prev := s.msgJSONLocked(m)
	m.Deleted = true
	delete(s.messages[channel], ts)
	now := s.tsLocked()
	ev := map[string]any{"type": "message", "subtype": "message_deleted", "hidden": true, "channel": channel,
		"ts": now, "event_ts": now, "deleted_ts": ts, "channel_type": s.channelType(channel), "previous_message": prev}
	s.mu.Unlock()
	s.emit(ev)
}

// React adds (or, with add false, removes) a person's reaction.
func (s *Server) React(channel, ts, user, name string, add bool) {
	s.mu.Lock()
	ev := s.reactLocked(channel, ts, user, name, add)
	s.mu.Unlock()
	if ev != nil {
		s.emit(ev)
	}
}

func (s *Server) reactLocked(channel, ts, user, name string, add bool) map[string]any {
	m := s.messages[channel][ts]
	if m == nil {
		return nil
	}
	if m.Reactions == nil {
		m.Reactions = map[string][]string{}
	}
	typ := "reaction_added"
	if add {
		m.Reactions[name] = append(m.Reactions[name], user)
	} else {
		typ = "reaction_removed"
		m.Reactions[name] = slices.DeleteFunc(m.Reactions[name], func(u string) bool { return u == user })
	}
	itemUser := m.User
	return map[string]any{"type": typ, "user": user, "reaction": name, "item_user": itemUser,
		"item": map[string]any{"type": "message", "channel": channel, "ts": ts}, "event_ts": s.tsLocked()}
}

func (s *Server) idLocked(prefix string) string {
	s.seq++
	return fmt.Sprintf("%s%07d", prefix, s.seq)
}

func (s *Server) channelType(channel string) string {
	if c := s.channels[channel]; c != nil {
		switch c.Kind {
		case "private":
			return "group"
		case "im", "mpim":
			return c.Kind
		}
	}
	return "channel"
}

// msgJSONLocked is a message as Slack's events and methods show it.
func (s *Server) msgJSONLocked(m *Message) map[string]any {
	j := map[string]any{"type": "message", "ts": m.TS, "text": m.Text, "team": TeamID}
	if m.User != "" {
		j["user"] = m.User
	}
	if m.BotID != "" {
		j["bot_id"] = m.BotID
	}
	if m.Username != "" {
		j["username"] = m.Username
	}
	if m.IconURL != "" {
		j["icons"] = map[string]any{"image_48": m.IconURL}
	}
	if m.Subtype != "" {
		j["subtype"] = m.Subtype
	}
	if m.ThreadTS != "" {
		j["thread_ts"] = m.ThreadTS
	}
	if m.EditedTS != "" {
		j["edited"] = map[string]any{"user": m.User, "ts": m.EditedTS}
	}
	if m.Text != "" {
		// What Slack's clients send beside the text: a rich_text block.
		j["blocks"] = []any{map[string]any{"type": "rich_text", "block_id": "b" + strings.ReplaceAll(m.TS, ".", ""),
			"elements": []any{map[string]any{"type": "rich_text_section",
				"elements": []any{map[string]any{"type": "text", "text": m.Text}}}}}}
	}
	if len(m.Files) > 0 {
		var files []any
		for _, f := range m.Files {
			files = append(files, s.fileJSON(f))
		}
		j["files"], j["upload"], j["display_as_bot"] = files, true, false
	}
	return j
}

func (s *Server) fileJSON(f *File) map[string]any {
	u := s.srv.URL + "/files/" + f.ID + "/" + url.PathEscape(f.Name)
	return map[string]any{"id": f.ID, "name": f.Name, "title": f.Name, "mimetype": f.Mimetype,
		"filetype": strings.TrimPrefix(f.Mimetype, "image/"), "size": len(f.Data), "mode": "hosted",
		"url_private": u, "url_private_download": u + "?download=1", "permalink": s.srv.URL + "/archives/" + f.ID,
		"created": time.Now().Unix(), "is_external": false, "is_public": true}
}

func (s *Server) messageEventLocked(m *Message) map[string]any {
	ev := s.msgJSONLocked(m)
	ev["channel"], ev["event_ts"], ev["channel_type"] = m.Channel, m.TS, s.channelType(m.Channel)
	if m.Text != "" && m.User != "" {
		ev["client_msg_id"] = newID()
	}
	return ev
}

func newID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// socket is one Socket Mode connection.
type socket struct {
	conn *websocket.Conn
	wmu  sync.Mutex
	done chan struct{}
	once sync.Once
}

func (so *socket) write(v any) error {
	so.wmu.Lock()
	defer so.wmu.Unlock()
	_ = so.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	return so.conn.WriteJSON(v)
}

func (so *socket) close() {
	so.once.Do(func() {
		close(so.done)
		_ = so.conn.Close()
	})
}

// envelope is an events_api envelope on its way to the app.
type envelope struct {
	id      string
	payload map[string]any
	retries int
}

func (e *envelope) message() map[string]any {
	reason := ""
	if e.retries > 0 {
		reason = "timeout"
	}
	return map[string]any{"envelope_id": e.id, "type": "events_api", "accepts_response_payload": false,
		"retry_attempt": e.retries, "retry_reason": reason, "payload": e.payload}
}

// emit sends an event to the app over Socket Mode (to one connection, as
// Slack spreads events over an app's connections; the newest here). Until
// it is acknowledged it is sent again on each new connection.
func (s *Server) emit(ev map[string]any) {
	id := newID()
	env := &envelope{id: id, payload: map[string]any{"token": "verification", "team_id": TeamID, "api_app_id": AppID,
		"event": ev, "type": "event_callback", "event_id": "Ev" + strings.ToUpper(id[:10]), "event_time": time.Now().Unix(),
		"authorizations": []any{map[string]any{"team_id": TeamID, "user_id": BotUserID, "is_bot": true}}}}
	s.mu.Lock()
	var so *socket
	if n := len(s.sockets); n > 0 {
		so = s.sockets[n-1]
	}
	s.sent[id] = time.Now()
	s.pending = append(s.pending, env)
	msg := env.message()
	s.mu.Unlock()
	if so != nil {
		_ = so.write(msg)
	}
}

var upgrader = websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true }}

func (s *Server) socket(w http.ResponseWriter, r *http.Request) {
	conn, err := upgrader.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	so := &socket{conn: conn, done: make(chan struct{})}
	s.mu.Lock()
	var retry []map[string]any
	for _, env := range s.pending {
		env.retries++
		retry = append(retry, env.message())
	}
	s.sockets = append(s.sockets, so)
	s.notify()
	s.mu.Unlock()
	defer func() {
		so.close()
		s.mu.Lock()
		s.sockets = slices.DeleteFunc(s.sockets, func(x *socket) bool { return x == so })
		s.notify()
		s.mu.Unlock()
	}()
	_ = so.write(map[string]any{"type": "hello", "num_connections": 1,
		"debug_info": map[string]any{"host": "fake", "approximate_connection_time": 18060}, "connection_info": map[string]any{"app_id": AppID}})
	for _, m := range retry {
		_ = so.write(m)
	}
	// Slack pings; the client gives up on a connection it hears no ping on.
	go func() {
		t := time.NewTicker(2 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-so.done:
				return
			case <-t.C:
				so.wmu.Lock()
				err := conn.WriteControl(websocket.PingMessage, []byte("ping"), time.Now().Add(5*time.Second))
				so.wmu.Unlock()
				if err != nil {
					return
				}
			}
		}
	}()
	for {
		_, raw, err := conn.ReadMessage()
		if err != nil {
			return
		}
		var ack struct {
			EnvelopeID string `json:"envelope_id"`
		}
		if json.Unmarshal(raw, &ack) == nil && ack.EnvelopeID != "" {
			s.mu.Lock()
			s.acks = append(s.acks, Ack{EnvelopeID: ack.EnvelopeID, Sent: s.sent[ack.EnvelopeID], At: time.Now()})
			delete(s.sent, ack.EnvelopeID)
			s.pending = slices.DeleteFunc(s.pending, func(e *envelope) bool { return e.id == ack.EnvelopeID })
			s.notify()
			s.mu.Unlock()
		}
	}
}

// DropSockets closes every Socket Mode connection (the client reconnects);
// events sent meanwhile wait for the next connection.
func (s *Server) DropSockets() {
	s.mu.Lock()
	socks := s.sockets
	s.sockets = nil
	s.notify()
	s.mu.Unlock()
	for _, so := range socks {
		so.close()
	}
}

// pngPixel is a 1×1 PNG.
var pngPixel = []byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89\x00\x00\x00\rIDATx\x9cc\xf8\xcf\xc0\xf0\x1f\x00\x05\x00\x01\xff\x89\x99=\x1d\x00\x00\x00\x00IEND\xaeB`\x82")

func atoiOr(s string, def int) int {
	if n, err := strconv.Atoi(s); err == nil {
		return n
	}
	return def
}
