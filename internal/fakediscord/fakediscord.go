// Package fakediscord is a local Discord for tests and benchmarks of the
// Discord bridge: the REST API the bridge calls (users, gateway, webhooks,
// reactions, typing), a CDN for attachments, and a gateway websocket
// speaking Discord's protocol (hello, identify, ready and a guild with one
// channel, heartbeat acks, dispatches). It imports no package of the
// module.
package fakediscord

import (
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// Fake is a local Discord: the REST API the bridge calls (users,
// gateway, webhooks, reactions, typing), a CDN for attachments, and a
// gateway websocket speaking Discord's protocol (hello, identify, ready,
// heartbeats, dispatches).
type Fake struct {
	t   testing.TB
	srv *httptest.Server

	mu      sync.Mutex
	token   string
	revoked bool
	// conns are the identified gateway connections (sent READY and the
	// guild), which dispatches go to; all every connection, for cleanup.
	conns []*gwConn
	all   []*gwConn
	// identified is signalled when a connection joins conns.
	identified *sync.Cond
	seq        int
	nextID     int64
	// calls are what the bridge did, in order.
	calls chan Call
	// guild is the guild the gateway announces (GUILD_CREATE's data).
	guild map[string]any
	// userToken is Dave's, a user account's ("" for none); account is the
	// user it stands for (Dave unless AllowUserToken named another).
	userToken string
	account   map[string]any
	// messages are the messages Discord has (by ID): those dispatched as
	// MESSAGE_CREATE, posted through the REST API, or declared with Have
	// (history from before the fake, as an export has it). Edits are
	// refused as Discord refuses them, by who wrote the message.
	messages map[string]map[string]any
	// threads are the threads started through the API.
	threads map[string]bool
	// noManage: the bot lacks Manage Messages (DenyManageMessages).
	noManage bool
}

// gwConn is a gateway connection; writes to it take its lock.
type gwConn struct {
	mu sync.Mutex
	c  *websocket.Conn
}

func (g *gwConn) write(typ int, raw []byte) {
	g.mu.Lock()
	defer g.mu.Unlock()
	_ = g.c.WriteMessage(typ, raw)
}

// close ends the connection with a close code, as Discord does.
func (g *gwConn) close(code int, text string) {
	g.write(websocket.CloseMessage, websocket.FormatCloseMessage(code, text))
	_ = g.c.Close()
}

// Call is one REST call of the bridge.
type Call struct {
	Method, Path string
	// Query is the call's query string (a webhook's thread_id).
	Query string
	JSON  map[string]any
	Files []string
}

// The IDs of the fake's bot, guild, channel, user bob and the webhook the
// bridge makes.
const (
	BotID     = "100000000000000001"
	GuildID   = "200000000000000001"
	ChannelID = "300000000000000001"
	BobID     = "400000000000000001"
	HookID    = "500000000000000001"
	HookToken = "webhook-token"
	// CarolID is a second user of the guild; OwnerID its owner.
	CarolID = "400000000000000002"
	OwnerID = "400000000000000003"
	// DaveID is the account of user-token mode.
	DaveID = "400000000000000004"
	// The guild's roles: AdminRoleID grants Administrator, ModRoleID
	// Manage Messages. Bob has ModRoleID.
	AdminRoleID = "600000000000000001"
	ModRoleID   = "600000000000000002"
)

// Roles are the guild's roles (@everyone's ID is the guild's), as
// GUILD_CREATE gives them.
var Roles = []any{
	map[string]any{"id": GuildID, "name": "@everyone", "permissions": "1024", "position": 0},
	map[string]any{"id": AdminRoleID, "name": "Admin", "permissions": "8", "position": 2},
	map[string]any{"id": ModRoleID, "name": "Mod", "permissions": "8192", "position": 1},
}

// New starts a fake Discord whose bot has token; it stops with the test.
func New(t testing.TB, token string) *Fake {
	f := &Fake{t: t, token: token, nextID: 900000000000000000, calls: make(chan Call, 100), messages: map[string]map[string]any{},
		guild: map[string]any{"id": GuildID, "name": "Test Guild", "owner_id": OwnerID,
			"channels": []any{map[string]any{"id": ChannelID, "type": 0, "guild_id": GuildID, "name": "general",
				"topic": "the general channel"}}, "threads": []any{},
			"members": []any{map[string]any{"user": Bob, "roles": []any{ModRoleID}}, map[string]any{"user": Carol, "roles": []any{}}},
			"roles":   Roles, "emojis": []any{}}}
	f.identified = sync.NewCond(&f.mu)
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(func() {
		f.mu.Lock()
		for _, c := range f.all {
			_ = c.c.Close()
		}
		f.mu.Unlock()
		f.srv.Close()
	})
	return f
}

func (f *Fake) id() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.nextID++
	return strconv.FormatInt(f.nextID, 10)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func (f *Fake) authorized(r *http.Request) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	auth := r.Header.Get("Authorization")
	return !f.revoked && (auth == "Bot "+f.token || f.userToken != "" && auth == f.userToken)
}

// caller is the user a request is authorised as: the bot, or Dave for the
// user token.
func (f *Fake) caller(r *http.Request) map[string]any {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.userToken != "" && r.Header.Get("Authorization") == f.userToken {
		return f.account
	}
	return botUser
}

var botUser = map[string]any{"id": BotID, "username": "testbot", "discriminator": "0", "bot": true}

// AllowUserToken makes token Dave's user-account token (user-token mode).
func (f *Fake) AllowUserToken(token string) {
	f.AllowUserTokenOf(token, Dave)
}

// AllowUserTokenOf makes token the user-account token of user (its "id"
// and "username"), for user-token mode as someone an export knows.
func (f *Fake) AllowUserTokenOf(token string, user map[string]any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.userToken, f.account = token, user
}

func (f *Fake) serve(w http.ResponseWriter, r *http.Request) {
	p := r.URL.Path
	switch {
	case strings.TrimSuffix(p, "/") == "/gw":
		f.gateway(w, r)
		return
	case strings.HasPrefix(p, "/cdn/") || strings.HasPrefix(p, "/stickers/") || strings.HasPrefix(p, "/avatars/") ||
		strings.HasPrefix(p, "/emojis/"):
		w.Header().Set("Content-Type", "image/png")
		_, _ = w.Write(PNG)
		return
	}
	p = strings.TrimPrefix(p, "/api/v9")
	// Webhooks are authorised by their own token; the rest by the bot's.
	if !strings.HasPrefix(p, "/webhooks/") && !f.authorized(r) {
		writeJSON(w, http.StatusUnauthorized, map[string]any{"message": "401: Unauthorized", "code": 0})
		return
	}
	c := Call{Method: r.Method, Path: p, Query: r.URL.RawQuery}
	if ct, params, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); ct == "multipart/form-data" {
		mr := multipart.NewReader(r.Body, params["boundary"])
		for {
			part, err := mr.NextPart()
			if err != nil {
				break
			}
			raw, _ := io.ReadAll(part)
			if part.FormName() == "payload_json" {
				_ = json.Unmarshal(raw, &c.JSON)
			} else {
				c.Files = append(c.Files, part.FileName())
			}
		}
	} else if r.Body != nil {
		raw, _ := io.ReadAll(r.Body)
		_ = json.Unmarshal(raw, &c.JSON)
	}
	switch {
	case r.Method == http.MethodGet && p == "/users/@me":
		writeJSON(w, 200, f.caller(r))
		return
	case r.Method == http.MethodPost && seg(p, 0) == "channels" && seg(p, 2) == "messages" && seg(p, 3) == "":
		msg := map[string]any{"id": f.id(), "channel_id": seg(p, 1), "guild_id": f.guildID(), "content": c.JSON["content"],
			"timestamp": time.Now().UTC().Format(time.RFC3339Nano), "type": 0, "author": f.caller(r)}
		if ref, ok := c.JSON["message_reference"]; ok {
			msg["type"], msg["message_reference"] = 19, ref
		}
		writeJSON(w, 200, msg)
		f.Dispatch("MESSAGE_CREATE", msg)
		c.JSON["id"] = msg["id"]
	case r.Method == http.MethodPatch && seg(p, 0) == "channels" && seg(p, 2) == "messages":
		// Discord lets only a message's author edit it (a webhook's
		// message only through the webhook).
		m := f.message(seg(p, 3))
		me, _ := f.caller(r)["id"].(string)
		if m == nil || m["channel_id"] != seg(p, 1) {
			writeJSON(w, http.StatusNotFound, map[string]any{"message": "Unknown Message", "code": 10008})
		} else if authorOf(m) != me || m["webhook_id"] != nil {
			writeJSON(w, http.StatusForbidden, map[string]any{"message": "Cannot edit a message authored by another user",
				"code": 50005})
		} else {
			writeJSON(w, 200, map[string]any{"id": seg(p, 3), "channel_id": seg(p, 1), "content": c.JSON["content"], "type": 0,
				"author": f.caller(r), "timestamp": time.Now().UTC().Format(time.RFC3339Nano),
				"edited_timestamp": time.Now().UTC().Format(time.RFC3339Nano)})
		}
	case r.Method == http.MethodGet && seg(p, 0) == "channels" && seg(p, 2) == "messages" && seg(p, 3) != "":
		if m := f.message(seg(p, 3)); m != nil && m["channel_id"] == seg(p, 1) {
			writeJSON(w, 200, m)
		} else {
			writeJSON(w, http.StatusNotFound, map[string]any{"message": "Unknown Message", "code": 10008})
		}
	case r.Method == http.MethodGet && seg(p, 0) == "channels" && seg(p, 2) == "messages":
		writeJSON(w, 200, f.history(seg(p, 1), r.URL.Query().Get("after"), r.URL.Query().Get("limit")))
	case r.Method == http.MethodGet && p == "/gateway":
		writeJSON(w, 200, map[string]any{"url": "ws" + strings.TrimPrefix(f.srv.URL, "http") + "/gw"})
		return
	case r.Method == http.MethodGet && seg(p, 0) == "channels" && seg(p, 2) == "webhooks":
		writeJSON(w, 200, []any{})
		return
	case r.Method == http.MethodPost && seg(p, 0) == "channels" && seg(p, 2) == "webhooks":
		ch := seg(p, 1)
		writeJSON(w, 200, map[string]any{"id": hookOf(ch), "token": HookToken, "name": "Tributary", "channel_id": ch, "type": 1})
	case r.Method == http.MethodPost && seg(p, 0) == "webhooks" && seg(p, 2) == HookToken && seg(p, 3) == "":
		hook := seg(p, 1)
		ch := channelOf(hook)
		if thread := r.URL.Query().Get("thread_id"); thread != "" {
			ch = thread
		}
		msg := map[string]any{"id": f.id(), "channel_id": ch, "content": c.JSON["content"], "webhook_id": hook,
			"timestamp": time.Now().UTC().Format(time.RFC3339Nano), "type": 0,
			"author": map[string]any{"id": hook, "username": c.JSON["username"], "bot": true}}
		writeJSON(w, 200, msg)
		// Discord tells the gateway of webhook messages too: the bridge
		// must know its own.
		f.Dispatch("MESSAGE_CREATE", msg)
		c.JSON["id"] = msg["id"]
	case r.Method == http.MethodPatch && seg(p, 0) == "webhooks" && seg(p, 3) == "messages":
		// A webhook edits only its own messages, those in a thread only
		// when told the thread (thread_id): Discord knows no other.
		hook := seg(p, 1)
		ch := channelOf(hook)
		if thread := r.URL.Query().Get("thread_id"); thread != "" {
			ch = thread
		}
		m := f.message(seg(p, 4))
		if m == nil || m["webhook_id"] != hook || m["channel_id"] != ch {
			writeJSON(w, http.StatusNotFound, map[string]any{"message": "Unknown Message", "code": 10008})
		} else {
			writeJSON(w, 200, map[string]any{"id": seg(p, 4), "channel_id": ch, "content": c.JSON["content"],
				"webhook_id": hook, "type": 0, "author": map[string]any{"id": hook, "username": "x", "bot": true}})
		}
	case r.Method == http.MethodDelete && strings.Contains(p, "/reactions/"):
		w.WriteHeader(http.StatusNoContent)
	case r.Method == http.MethodDelete && seg(p, 0) == "channels" && seg(p, 2) == "messages" && f.mayNotDelete(r, seg(p, 3)):
		writeJSON(w, http.StatusForbidden, map[string]any{"message": "Missing Permissions", "code": 50013})
	case r.Method == http.MethodDelete && (seg(p, 0) == "webhooks" && seg(p, 3) == "messages" ||
		seg(p, 0) == "channels" && seg(p, 2) == "messages"):
		w.WriteHeader(http.StatusNoContent)
		ch := seg(p, 1)
		if seg(p, 0) == "webhooks" {
			ch = channelOf(ch)
			if thread := r.URL.Query().Get("thread_id"); thread != "" {
				ch = thread
			}
		}
		// Discord tells the gateway of deletions, the bridge's own too.
		f.Dispatch("MESSAGE_DELETE", map[string]any{"id": p[strings.LastIndex(p, "/")+1:], "channel_id": ch,
			"guild_id": f.guildID()})
	case r.Method == http.MethodPut && strings.Contains(p, "/reactions/"):
		w.WriteHeader(http.StatusNoContent)
	case r.Method == http.MethodPost && seg(p, 0) == "channels" && seg(p, 2) == "messages" && seg(p, 4) == "threads":
		// A thread started at a message has the message's ID.
		f.mu.Lock()
		started := f.threads[seg(p, 3)]
		if f.threads == nil {
			f.threads = map[string]bool{}
		}
		f.threads[seg(p, 3)] = true
		f.mu.Unlock()
		if started {
			writeJSON(w, http.StatusBadRequest, map[string]any{"message": "A thread has already been created for this message",
				"code": 160004})
			break
		}
		th := map[string]any{"id": seg(p, 3), "type": 11, "guild_id": f.guildID(), "parent_id": seg(p, 1), "name": c.JSON["name"]}
		writeJSON(w, http.StatusCreated, th)
		f.Dispatch("THREAD_CREATE", th)
	case r.Method == http.MethodPost && seg(p, 0) == "channels" && seg(p, 2) == "typing":
		w.WriteHeader(http.StatusNoContent)
	case r.Method == http.MethodGet && seg(p, 0) == "users" && users[seg(p, 1)] != nil:
		writeJSON(w, 200, users[seg(p, 1)])
		return
	default:
		writeJSON(w, http.StatusNotFound, map[string]any{"message": "Unknown " + r.Method + " " + p, "code": 10000})
	}
	f.calls <- c
}

// seg is the i-th segment of an API path ("" past its end).
func seg(p string, i int) string {
	parts := strings.Split(strings.Trim(p, "/"), "/")
	if i < len(parts) {
		return parts[i]
	}
	return ""
}

// hookOf is the ID of the webhook the fake makes in a channel (HookID in
// ChannelID); channelOf the channel of a webhook.
func hookOf(channelID string) string {
	if channelID == ChannelID {
		return HookID
	}
	return "h" + channelID
}

func channelOf(hookID string) string {
	if hookID == HookID {
		return ChannelID
	}
	return strings.TrimPrefix(hookID, "h")
}

// Bob is the Discord user who talks.
var Bob = map[string]any{"id": BobID, "username": "bob", "global_name": "Bob Builder", "discriminator": "0"}

// Dave is the user whose account's token user-token mode logs in with.
var Dave = map[string]any{"id": DaveID, "username": "dave", "global_name": "Dave", "discriminator": "0"}

// Carol is a Discord user who only types.
var Carol = map[string]any{"id": CarolID, "username": "carol", "global_name": "Carol", "discriminator": "0"}

var users = map[string]map[string]any{BobID: Bob, CarolID: Carol, DaveID: Dave}

// PNG is what the CDN serves.
var PNG = []byte("\x89PNG\r\n\x1a\n" + strings.Repeat("\x00", 32))

var upgrader = websocket.Upgrader{}

// gateway speaks the gateway protocol: hello, then ready and the guild on
// identify, heartbeat acks; dispatch sends events later.
func (f *Fake) gateway(w http.ResponseWriter, r *http.Request) {
	ws, err := upgrader.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	conn := &gwConn{c: ws}
	f.mu.Lock()
	f.all = append(f.all, conn)
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		f.conns = slices.DeleteFunc(f.conns, func(c *gwConn) bool { return c == conn })
		f.all = slices.DeleteFunc(f.all, func(c *gwConn) bool { return c == conn })
		f.mu.Unlock()
	}()
	send := func(v any) {
		raw, _ := json.Marshal(v)
		conn.write(websocket.TextMessage, raw)
	}
	send(map[string]any{"op": 10, "d": map[string]any{"heartbeat_interval": 45000}})
	for {
		var frame struct {
			Op int             `json:"op"`
			D  json.RawMessage `json:"d"`
		}
		if err := ws.ReadJSON(&frame); err != nil {
			return
		}
		switch frame.Op {
		case 1:
			send(map[string]any{"op": 11})
		case 2, 6:
			var auth struct {
				Token string `json:"token"`
			}
			_ = json.Unmarshal(frame.D, &auth)
			f.mu.Lock()
			revoked := f.revoked
			me := botUser
			if f.userToken != "" && auth.Token == f.userToken {
				me = Dave
			}
			f.mu.Unlock()
			if revoked {
				conn.close(4004, "Authentication failed.")
				return
			}
			f.mu.Lock()
			guild := f.guild
			f.mu.Unlock()
			send(map[string]any{"op": 0, "t": "READY", "s": f.nextSeq(), "d": map[string]any{"v": 9, "session_id": "s1",
				"user":   me,
				"guilds": []any{map[string]any{"id": guild["id"], "unavailable": true}}, "private_channels": []any{}}})
			send(map[string]any{"op": 0, "t": "GUILD_CREATE", "s": f.nextSeq(), "d": guild})
			f.mu.Lock()
			f.conns = append(f.conns, conn)
			f.identified.Broadcast()
			f.mu.Unlock()
		}
	}
}

func (f *Fake) nextSeq() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.seq++
	return f.seq
}

// Dispatch sends an event to every identified gateway connection. As
// Discord sends nothing before READY, it waits (up to 30 s) for one when
// there is none: a test may dispatch right after the bridge logs in.
func (f *Fake) Dispatch(t string, d any) {
	f.mu.Lock()
	if len(f.conns) == 0 {
		timeout := time.AfterFunc(30*time.Second, func() {
			f.mu.Lock()
			f.identified.Broadcast()
			f.mu.Unlock()
		})
		for start := time.Now(); len(f.conns) == 0 && time.Since(start) < 30*time.Second; {
			f.identified.Wait()
		}
		timeout.Stop()
	}
	conns := append([]*gwConn(nil), f.conns...)
	f.seq++
	seq := f.seq
	f.mu.Unlock()
	if m, ok := d.(map[string]any); ok && t == "MESSAGE_CREATE" {
		f.Have(m)
	}
	raw, _ := json.Marshal(map[string]any{"op": 0, "t": t, "s": seq, "d": d})
	for _, c := range conns {
		c.write(websocket.TextMessage, raw)
	}
}

// SetGuild makes the guild the gateway announces (from the next identify
// on) one of id and name with channels and threads (channel objects, as
// Discord's API gives them: id, type, name, parent_id...) instead of Test
// Guild. Its members and roles stay the test guild's.
func (f *Fake) SetGuild(id, name string, channels, threads []any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	g := map[string]any{}
	for k, v := range f.guild {
		g[k] = v
	}
	g["id"], g["name"], g["channels"], g["threads"] = id, name, channels, threads
	f.guild = g
}

func (f *Fake) guildID() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	id, _ := f.guild["id"].(string)
	return id
}

// MemberRoles dispatches a GUILD_MEMBER_UPDATE giving a user roles.
func (f *Fake) MemberRoles(user map[string]any, roles ...string) {
	f.Dispatch("GUILD_MEMBER_UPDATE", map[string]any{"guild_id": f.guildID(), "user": user, "roles": roles})
}

// RoleUpdate dispatches a GUILD_ROLE_UPDATE of a role's permissions.
func (f *Fake) RoleUpdate(roleID, name string, perms int64) {
	f.Dispatch("GUILD_ROLE_UPDATE", map[string]any{"guild_id": f.guildID(), "role": map[string]any{"id": roleID, "name": name,
		"permissions": strconv.FormatInt(perms, 10), "position": 1}})
}

// Revoke makes the token a revoked one and drops the gateway, as Discord
// does when a bot's token is reset.
func (f *Fake) Revoke() {
	f.mu.Lock()
	f.revoked = true
	conns := append([]*gwConn(nil), f.all...) // identified or not, as Drop
	f.conns = nil
	f.mu.Unlock()
	for _, c := range conns {
		c.close(4004, "Authentication failed.")
	}
}

// Drop closes every gateway connection with a code clients resume after,
// as Discord does when it restarts a gateway node.
func (f *Fake) Drop() {
	// Every open connection, identified or not: the client may have taken
	// READY before the fake counted the connection as identified.
	f.mu.Lock()
	conns := append([]*gwConn(nil), f.all...)
	f.conns = nil
	f.mu.Unlock()
	for _, c := range conns {
		c.close(4000, "Unknown error.")
	}
}

// URL is the fake's root, the bridge's api_url.
func (f *Fake) URL() string { return f.srv.URL + "/" }

// CDN is where attachments are served (any path under it is a PNG).
func (f *Fake) CDN() string { return f.srv.URL + "/cdn/" }

// Message dispatches a MESSAGE_CREATE of bob's in the channel, with extra
// fields; it returns the message's ID.
func (f *Fake) Message(content string, extra map[string]any) string {
	id := f.id()
	d := map[string]any{"id": id, "channel_id": ChannelID, "guild_id": GuildID, "content": content, "type": 0,
		"timestamp": time.Now().UTC().Format(time.RFC3339Nano), "author": Bob, "attachments": []any{},
		"mentions": []any{}, "embeds": []any{}}
	for k, v := range extra {
		d[k] = v
	}
	f.Dispatch("MESSAGE_CREATE", d)
	return id
}

// Await returns the next REST call of the bridge matching pred.
func (f *Fake) Await(what string, pred func(Call) bool) Call {
	f.t.Helper()
	timeout := time.After(30 * time.Second)
	for {
		select {
		case c := <-f.calls:
			if pred(c) {
				return c
			}
		case <-timeout:
			f.t.Fatalf("the bridge never did %s", what)
		}
	}
}

func (c Call) String() string {
	return fmt.Sprintf("%s %s?%s %v %v", c.Method, c.Path, c.Query, c.JSON, c.Files)
}

// Have makes a message (as the API gives it: id, channel_id, type,
// author, message_reference...) one Discord has, as the history before the
// fake started: the REST API serves it and refuses edits of it by anyone
// but its author. Messages dispatched as MESSAGE_CREATE are had already.
func (f *Fake) Have(msg map[string]any) {
	id, _ := msg["id"].(string)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.messages[id] = msg
}

func (f *Fake) message(id string) map[string]any {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.messages[id]
}

// authorOf is the ID of a message's author.
func authorOf(m map[string]any) string {
	switch a := m["author"].(type) {
	case map[string]any:
		id, _ := a["id"].(string)
		return id
	case map[string]string:
		return a["id"]
	}
	return ""
}

// history is what GET /channels/{id}/messages?after=&limit= answers: the
// channel's messages after a message ID (all without one), oldest first,
// up to limit (50 without one).
func (f *Fake) history(channelID, after, limit string) []any {
	n, err := strconv.Atoi(limit)
	if err != nil || n <= 0 {
		n = 50
	}
	f.mu.Lock()
	var out []map[string]any
	for id, m := range f.messages {
		if m["channel_id"] == channelID && (after == "" || cmpID(id, after) > 0) {
			out = append(out, m)
		}
	}
	f.mu.Unlock()
	slices.SortFunc(out, func(a, b map[string]any) int { return cmpID(a["id"].(string), b["id"].(string)) })
	res := make([]any, 0, min(n, len(out)))
	for _, m := range out[:min(n, len(out))] {
		res = append(res, m)
	}
	return res
}

// cmpID orders snowflakes (decimal numbers without leading zeros).
func cmpID(a, b string) int {
	if len(a) != len(b) {
		return len(a) - len(b)
	}
	return strings.Compare(a, b)
}

// Calls is the bridge's REST calls not yet awaited, in order.
func (f *Fake) Calls() <-chan Call { return f.calls }

// DenyManageMessages takes Manage Messages from the bot: it may then delete
// only its own messages, as a user account may.
func (f *Fake) DenyManageMessages() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.noManage = true
}

// mayNotDelete reports whether Discord refuses the caller's deletion of a
// message: another's, without Manage Messages (which the bot has unless
// denied, and a user account has not).
func (f *Fake) mayNotDelete(r *http.Request, messageID string) bool {
	m := f.message(messageID)
	caller := f.caller(r)
	if m == nil || authorOf(m) == caller["id"] {
		return false
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.noManage || caller["id"] != BotID
}
