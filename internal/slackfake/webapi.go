package slackfake

import (
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// reply writes a Web API answer: Slack answers errors with 200 and
// {"ok": false, "error": code}.
func reply(w http.ResponseWriter, v map[string]any) {
	if _, ok := v["ok"]; !ok {
		v["ok"] = true
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	_ = json.NewEncoder(w).Encode(v)
}

func fail(w http.ResponseWriter, code string) { reply(w, map[string]any{"ok": false, "error": code}) }

func tokenOf(r *http.Request) string {
	if t, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
		return t
	}
	return r.Form.Get("token")
}

func (s *Server) api(w http.ResponseWriter, r *http.Request) {
	method := r.PathValue("method")
	if err := r.ParseForm(); err != nil {
		fail(w, "invalid_form_data")
		return
	}
	tok := tokenOf(r)
	s.mu.Lock()
	t := s.tokens[tok]
	call := len(s.calls)
	s.calls = append(s.calls, Call{Method: method, Token: tok, Args: r.Form, At: time.Now()})
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.calls[call].answered = true
		s.notify()
		s.mu.Unlock()
	}()
	switch {
	case tok == "":
		fail(w, "not_authed")
		return
	case t == nil:
		fail(w, "invalid_auth")
		return
	case t.revoked != "":
		fail(w, t.revoked)
		return
	case t.app != (method == "apps.connections.open"):
		fail(w, "not_allowed_token_type")
		return
	}
	if t.app {
		w.Header().Set("X-OAuth-Scopes", "connections:write")
	} else if t.user == BotUserID {
		scopes := botScopes
		if !t.noCustomize {
			scopes += ",chat:write.customize"
		}
		w.Header().Set("X-OAuth-Scopes", scopes)
	}
	f := r.Form.Get
	switch method {
	case "auth.test":
		s.mu.Lock()
		u := s.users[t.user]
		s.mu.Unlock()
		out := map[string]any{"url": "https://tributary-test.slack.com/", "team": TeamName, "user": u.Name,
			"team_id": TeamID, "user_id": u.ID, "is_enterprise_install": false}
		if u.IsBot {
			out["bot_id"] = u.BotID
		}
		reply(w, out)
	case "apps.connections.open":
		reply(w, map[string]any{"url": "ws" + strings.TrimPrefix(s.srv.URL, "http") + "/socket?ticket=" + newID()})
	case "auth.revoke":
		s.Revoke(tok, "token_revoked", false)
		reply(w, map[string]any{"revoked": true})
	case "users.info":
		s.mu.Lock()
		u := s.users[f("user")]
		s.mu.Unlock()
		if u == nil {
			fail(w, "user_not_found")
			return
		}
		profile := map[string]any{"real_name": u.RealName, "display_name": "", "real_name_normalized": u.RealName,
			"team": TeamID}
		if u.Avatar != "" {
			profile["image_512"], profile["image_72"] = u.Avatar, u.Avatar
		}
		if u.IsBot {
			profile["bot_id"] = u.BotID
		}
		reply(w, map[string]any{"user": map[string]any{"id": u.ID, "team_id": TeamID, "name": u.Name, "deleted": false,
			"real_name": u.RealName, "tz": "Europe/London", "is_bot": u.IsBot, "is_app_user": false, "updated": 1700000000,
			"profile": profile}})
	case "conversations.info":
		s.mu.Lock()
		c := s.channels[f("channel")]
		var out map[string]any
		if c != nil {
			out = s.channelJSON(c)
		}
		s.mu.Unlock()
		if c == nil {
			fail(w, "channel_not_found")
			return
		}
		reply(w, map[string]any{"channel": out})
	case "conversations.members":
		s.mu.Lock()
		c := s.channels[f("channel")]
		var members []string
		if c != nil {
			members = append(members, c.Members...)
		}
		s.mu.Unlock()
		if c == nil {
			fail(w, "channel_not_found")
			return
		}
		limit := atoiOr(f("limit"), 100)
		start := atoiOr(f("cursor"), 0)
		end := min(len(members), start+limit)
		next := ""
		if end < len(members) {
			next = strconv.Itoa(end)
		}
		reply(w, map[string]any{"members": members[start:end], "response_metadata": map[string]any{"next_cursor": next}})
	case "chat.postMessage":
		s.postMessage(w, call, t, f("channel"), f("text"), f("thread_ts"), nil, f("username"), f("icon_url"))
	case "chat.update":
		s.mu.Lock()
		m := s.messages[f("channel")][f("ts")]
		if m == nil || m.User != t.user {
			s.mu.Unlock()
			fail(w, map[bool]string{true: "message_not_found", false: "cant_update_message"}[m == nil])
			return
		}
		s.mu.Unlock()
		s.Edit(f("channel"), f("ts"), f("text"))
		s.record(call, m)
		s.mu.Lock()
		msg := s.msgJSONLocked(m)
		s.mu.Unlock()
		reply(w, map[string]any{"channel": f("channel"), "ts": f("ts"), "text": f("text"), "message": msg})
	case "chat.delete":
		s.mu.Lock()
		m := s.messages[f("channel")][f("ts")]
		s.mu.Unlock()
		if m == nil {
			fail(w, "message_not_found")
			return
		}
		if m.User != t.user {
			// A bot deletes only its own messages; so does a user who is
			// not a workspace admin (the fake has none).
			fail(w, "cant_delete_message")
			return
		}
		s.Delete(f("channel"), f("ts"))
		s.record(call, m)
		reply(w, map[string]any{"channel": f("channel"), "ts": f("ts")})
	case "reactions.add", "reactions.remove":
		add := method == "reactions.add"
		s.mu.Lock()
		m := s.messages[f("channel")][f("timestamp")]
		if m == nil {
			s.mu.Unlock()
			fail(w, "message_not_found")
			return
		}
		has := false
		for _, u := range m.Reactions[f("name")] {
			has = has || u == t.user
		}
		if add && has {
			s.mu.Unlock()
			fail(w, "already_reacted")
			return
		} else if !add && !has {
			s.mu.Unlock()
			fail(w, "no_reaction")
			return
		}
		ev := s.reactLocked(f("channel"), f("timestamp"), t.user, f("name"), add)
		s.mu.Unlock()
		s.record(call, m)
		s.emit(ev)
		reply(w, map[string]any{})
	case "files.getUploadURLExternal":
		s.mu.Lock()
		fl := &File{ID: s.idLocked("F"), Name: f("filename")}
		s.files[fl.ID] = fl
		s.mu.Unlock()
		reply(w, map[string]any{"upload_url": s.srv.URL + "/upload/" + fl.ID, "file_id": fl.ID})
	case "files.completeUploadExternal":
		var summaries []struct {
			ID    string `json:"id"`
			Title string `json:"title"`
		}
		if err := json.Unmarshal([]byte(f("files")), &summaries); err != nil || len(summaries) == 0 {
			fail(w, "invalid_arguments")
			return
		}
		var files []*File
		s.mu.Lock()
		for _, sm := range summaries {
			if fl := s.files[sm.ID]; fl != nil && fl.Data != nil {
				files = append(files, fl)
			}
		}
		s.mu.Unlock()
		if len(files) != len(summaries) {
			fail(w, "file_not_found")
			return
		}
		channel := f("channel_id")
		if channel == "" {
			channel = f("channels")
		}
		s.postMessage(nil, call, t, channel, f("initial_comment"), f("thread_ts"), files, "", "")
		out := []any{}
		for _, sm := range summaries {
			out = append(out, map[string]any{"id": sm.ID, "title": sm.Title})
		}
		reply(w, map[string]any{"files": out})
	case "files.delete":
		s.mu.Lock()
		var found *Message
		for _, msgs := range s.messages {
			for _, m := range msgs {
				for _, fl := range m.Files {
					if fl.ID == f("file") {
						found = m
					}
				}
			}
		}
		delete(s.files, f("file"))
		s.mu.Unlock()
		if found != nil {
			s.Delete(found.Channel, found.TS)
			s.record(call, found)
		}
		reply(w, map[string]any{})
	case "emoji.list":
		s.mu.Lock()
		list := map[string]any{}
		for name := range s.emoji {
			list[name] = s.srv.URL + "/emoji/" + name
		}
		for name, target := range s.emojiAliases {
			list[name] = "alias:" + target
		}
		s.mu.Unlock()
		reply(w, map[string]any{"emoji": list})
	case "conversations.mark":
		reply(w, map[string]any{})
	default:
		fail(w, "unknown_method")
	}
}

// record puts the message a call touched on its Call (call: its index in
// s.calls; the last one may be another call's, made meanwhile).
func (s *Server) record(call int, m *Message) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if m != nil {
		s.calls[call].Message = m.copy()
		s.notify()
	}
}

// postMessage posts as the token's user (the bot posts with its bot_id),
// sends the message event, and answers as chat.postMessage does (w nil:
// no answer, for files.completeUploadExternal); call is its Call's index.
// A bot's username and iconURL are kept if its token may customize (Slack
// ignores them otherwise, and a user token's always).
func (s *Server) postMessage(w http.ResponseWriter, call int, t *token, channel, text, threadTS string, files []*File, username, iconURL string) {
	s.mu.Lock()
	c := s.channels[channel]
	if c == nil {
		s.mu.Unlock()
		if w != nil {
			fail(w, "channel_not_found")
		}
		return
	}
	if text == "" && len(files) == 0 {
		s.mu.Unlock()
		if w != nil {
			fail(w, "no_text")
		}
		return
	}
	m := &Message{Channel: channel, TS: s.tsLocked(), ThreadTS: threadTS, User: t.user, Text: text, Files: files}
	if u := s.users[t.user]; u != nil && u.IsBot {
		m.BotID = u.BotID
		if !t.noCustomize {
			m.Username, m.IconURL = username, iconURL
		}
	}
	if len(files) > 0 {
		m.Subtype = "file_share"
	}
	s.messages[channel][m.TS] = m
	ev := s.messageEventLocked(m)
	msg := s.msgJSONLocked(m)
	s.calls[call].Message = m.copy()
	s.notify()
	s.mu.Unlock()
	// Slack sends the event at about the time it answers; the bridge must
	// cope with either first. Here the event goes first.
	s.emit(ev)
	if w != nil {
		reply(w, map[string]any{"channel": channel, "ts": m.TS, "message": msg})
	}
}

func (s *Server) channelJSON(c *Channel) map[string]any {
	j := map[string]any{"id": c.ID, "created": 1700000000, "is_member": true, "is_archived": false,
		"is_channel": c.Kind == "channel", "is_group": c.Kind == "private", "is_im": c.Kind == "im",
		"is_mpim": c.Kind == "mpim", "is_private": c.Kind != "channel", "num_members": len(c.Members),
		"topic":   map[string]any{"value": c.Topic, "creator": "", "last_set": 0},
		"purpose": map[string]any{"value": "", "creator": "", "last_set": 0}}
	if c.Kind == "im" {
		for _, m := range c.Members {
			if m != BotUserID {
				j["user"] = m
			}
		}
	} else {
		j["name"] = c.Name
		j["name_normalized"] = c.Name
	}
	return j
}

func (s *Server) upload(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	file, hdr, err := r.FormFile("file")
	if err != nil {
		http.Error(w, "no file", http.StatusBadRequest)
		return
	}
	defer file.Close()
	data, err := io.ReadAll(file)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	fl := s.files[id]
	if fl != nil {
		fl.Data = data
		fl.Mimetype = http.DetectContentType(data)
		if hdr.Filename != "" {
			fl.Name = hdr.Filename
		}
	}
	s.mu.Unlock()
	if fl == nil {
		http.NotFound(w, r)
		return
	}
	w.WriteHeader(http.StatusOK)
	_, _ = io.WriteString(w, "OK - "+strconv.Itoa(len(data)))
}

// download serves url_private: with a live token of the workspace only;
// without one Slack answers with its sign-in page.
func (s *Server) download(w http.ResponseWriter, r *http.Request) {
	tok, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	s.mu.Lock()
	t := s.tokens[tok]
	fl := s.files[r.PathValue("id")]
	s.mu.Unlock()
	if t == nil || t.revoked != "" || t.app {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = io.WriteString(w, "<html><body>Sign in to Slack</body></html>")
		return
	}
	if fl == nil {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", fl.Mimetype)
	_, _ = w.Write(fl.Data)
}
