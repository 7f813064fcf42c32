// Package tgfake is a fake of the Telegram Bot API for tests: an HTTP
// server that speaks the Bot API's wire format (multipart or JSON
// requests, {"ok":…} answers, long-polled getUpdates, file downloads under
// /file/bot<token>/), keeps the chats, messages and files a test sets up,
// records every call the bot makes, and answers a call with 429 and
// retry_after when a test asks it to.
package tgfake

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-telegram/bot/models"
)

// Call is one Bot API call of the bot (getUpdates excepted).
type Call struct {
	Method string
	// Params are the request's fields as sent: strings as they are,
	// everything else JSON.
	Params map[string]string
	// Files are the uploaded files by field, with their file names.
	Files     map[string][]byte
	FileNames map[string]string
	// Answer is the message the call made or changed, if any; Status is
	// the HTTP status the fake answered with.
	Answer *models.Message
	Status int
	At     time.Time
}

// Server is a fake Bot API for one bot.
type Server struct {
	Token string
	Bot   models.User
	srv   *httptest.Server

	mu       sync.Mutex
	updates  []*models.Update
	nextUpd  int64
	wake     chan struct{}
	chats    map[int64]models.Chat
	messages map[int64]map[int]*models.Message
	nextMsg  map[int64]int
	files    map[string]file // by file_id
	nextFile int
	failures map[string][]int // method → retry_after of the next answers
	photos   map[int64]string // user → profile photo's file_id
	calls    []*Call
	called   chan struct{}
	polls    int
}

type file struct {
	path string
	data []byte
}

// Start runs a fake Bot API for a bot with the token; Close stops it.
func Start(token string, bot models.User) *Server {
	s := &Server{Token: token, Bot: bot, nextUpd: 1, wake: make(chan struct{}), chats: map[int64]models.Chat{},
		messages: map[int64]map[int]*models.Message{}, nextMsg: map[int64]int{}, files: map[string]file{},
		failures: map[string][]int{}, called: make(chan struct{})}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	return s
}

// URL is the API base URL (what api_url is set to).
func (s *Server) URL() string { return s.srv.URL }

// Close stops the server, ending its long polls.
func (s *Server) Close() {
	s.mu.Lock()
	close(s.wake)
	s.wake = make(chan struct{})
	s.mu.Unlock()
	s.srv.CloseClientConnections()
	s.srv.Close()
}

// AddChat makes a chat known (getChat answers it; the bot may send to it).
func (s *Server) AddChat(c models.Chat) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.chats[c.ID] = c
}

// SetProfilePhoto gives a user a profile photo (getUserProfilePhotos
// answers it); it returns the photo's file_id.
func (s *Server) SetProfilePhoto(userID int64, data []byte) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.photos == nil {
		s.photos = map[int64]string{}
	}
	id := s.addFileLocked("photo.png", data)
	s.photos[userID] = id
	return id
}

// SetNextMessageID makes the chat's next message have the ID (as when
// the chat had messages before the bot came).
func (s *Server) SetNextMessageID(chatID int64, id int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nextMsg[chatID] = id - 1
}

// AddFile stores a file users send and returns its file_id.
func (s *Server) AddFile(name string, data []byte) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addFileLocked(name, data)
}

func (s *Server) addFileLocked(name string, data []byte) string {
	s.nextFile++
	id := fmt.Sprintf("file%d", s.nextFile)
	s.files[id] = file{path: fmt.Sprintf("documents/%d_%s", s.nextFile, name), data: data}
	return id
}

// File is a stored file's content (one the bot uploaded, say).
func (s *Server) File(fileID string) []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.files[fileID].data
}

// FailNext makes the next call of method answer 429 with retry_after
// seconds (queued: call it twice for two 429s).
func (s *Server) FailNext(method string, retryAfter int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failures[method] = append(s.failures[method], retryAfter)
}

// Polls is how many getUpdates calls came.
func (s *Server) Polls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.polls
}

// Send is a user's message into a chat, delivered as an update: msg's
// chat, from and text or media are the test's, the fake fills in the
// message ID and date (now, unless set).
func (s *Server) Send(msg models.Message) *models.Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.storeLocked(msg)
	if m.Chat.Type == models.ChatTypeChannel {
		s.queueLocked(&models.Update{ChannelPost: m})
	} else {
		s.queueLocked(&models.Update{Message: m})
	}
	return m
}

// CreateTopic is a user's new topic in a forum: the service message that
// opens it (its message ID is the topic's thread ID).
func (s *Server) CreateTopic(chatID int64, from models.User, name string) *models.Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	f := from
	m := s.storeLocked(models.Message{Chat: models.Chat{ID: chatID}, From: &f, IsTopicMessage: true,
		ForumTopicCreated: &models.ForumTopicCreated{Name: name}})
	m.MessageThreadID = m.ID
	s.messages[chatID][m.ID].MessageThreadID = m.ID
	s.queueLocked(&models.Update{Message: m})
	cp := *m
	return &cp
}

// Edit is a user's edit of their message, delivered as an update.
func (s *Server) Edit(chatID int64, msgID int, text string, entities []models.MessageEntity) *models.Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.messages[chatID][msgID]
	if old == nil {
		panic(fmt.Sprintf("tgfake: no message %d in chat %d", msgID, chatID))
	}
	m := *old
	if len(m.Photo) > 0 || m.Document != nil {
		m.Caption, m.CaptionEntities = text, entities
	} else {
		m.Text, m.Entities = text, entities
	}
	m.EditDate = int(time.Now().Unix())
	s.messages[chatID][msgID] = &m
	cp := m
	s.queueLocked(&models.Update{EditedMessage: &cp})
	return &cp
}

// React is a user's reaction change on a message (the full new set).
func (s *Server) React(chatID int64, msgID int, user models.User, old, emojis []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rt := func(es []string) []models.ReactionType {
		out := []models.ReactionType{}
		for _, e := range es {
			out = append(out, models.ReactionType{Type: models.ReactionTypeTypeEmoji,
				ReactionTypeEmoji: &models.ReactionTypeEmoji{Type: models.ReactionTypeTypeEmoji, Emoji: e}})
		}
		return out
	}
	u := user
	s.queueLocked(&models.Update{MessageReaction: &models.MessageReactionUpdated{Chat: s.chats[chatID],
		MessageID: msgID, User: &u, Date: int(time.Now().Unix()), OldReaction: rt(old), NewReaction: rt(emojis)}})
}

// Message is a message of a chat as it is now.
func (s *Server) Message(chatID int64, msgID int) *models.Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	if m := s.messages[chatID][msgID]; m != nil {
		cp := *m
		return &cp
	}
	return nil
}

func (s *Server) storeLocked(msg models.Message) *models.Message {
	if c, ok := s.chats[msg.Chat.ID]; ok {
		msg.Chat = c
	}
	s.nextMsg[msg.Chat.ID]++
	msg.ID = s.nextMsg[msg.Chat.ID]
	if msg.Date == 0 {
		msg.Date = int(time.Now().Unix())
	}
	if s.messages[msg.Chat.ID] == nil {
		s.messages[msg.Chat.ID] = map[int]*models.Message{}
	}
	m := msg
	s.messages[msg.Chat.ID][m.ID] = &m
	cp := m
	return &cp
}

func (s *Server) queueLocked(u *models.Update) {
	u.ID = s.nextUpd
	s.nextUpd++
	s.updates = append(s.updates, u)
	close(s.wake)
	s.wake = make(chan struct{})
}

// Calls returns the calls so far of the methods named (all, when none is).
func (s *Server) Calls(methods ...string) []*Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*Call
	for _, c := range s.calls {
		if len(methods) == 0 || contains(methods, c.Method) {
			out = append(out, c)
		}
	}
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// WaitCall waits for a successful call of method matching pred, from the
// calls at index from on (of that method's calls), and returns it with its
// index.
func (s *Server) WaitCall(ctx context.Context, method string, from int, pred func(*Call) bool) (*Call, int, error) {
	for {
		s.mu.Lock()
		n := 0
		for _, c := range s.calls {
			if c.Method != method {
				continue
			}
			if n >= from && c.Status == http.StatusOK && (pred == nil || pred(c)) {
				s.mu.Unlock()
				return c, n, nil
			}
			n++
		}
		ch := s.called
		s.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, 0, fmt.Errorf("waiting for a %s call: %w", method, ctx.Err())
		}
	}
}

type answer struct {
	OK          bool   `json:"ok"`
	Result      any    `json:"result,omitempty"`
	ErrorCode   int    `json:"error_code,omitempty"`
	Description string `json:"description,omitempty"`
	Parameters  *struct {
		RetryAfter int `json:"retry_after"`
	} `json:"parameters,omitempty"`
}

func writeJSON(w http.ResponseWriter, status int, a answer) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(a)
}

func fail(w http.ResponseWriter, status int, desc string) {
	writeJSON(w, status, answer{ErrorCode: status, Description: desc})
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	if rest, ok := strings.CutPrefix(r.URL.Path, "/file/bot"+s.Token+"/"); ok {
		s.mu.Lock()
		var data []byte
		found := false
		for _, f := range s.files {
			if f.path == rest {
				data, found = f.data, true
			}
		}
		s.mu.Unlock()
		if !found {
			http.NotFound(w, r)
			return
		}
		_, _ = w.Write(data)
		return
	}
	rest, ok := strings.CutPrefix(r.URL.Path, "/bot")
	token, method, ok2 := strings.Cut(rest, "/")
	if !ok || !ok2 {
		fail(w, http.StatusNotFound, "Not Found")
		return
	}
	if token != s.Token {
		fail(w, http.StatusUnauthorized, "Unauthorized")
		return
	}
	call, err := parseCall(r, method)
	if err != nil {
		fail(w, http.StatusBadRequest, "Bad Request: "+err.Error())
		return
	}
	if method == "getUpdates" {
		s.getUpdates(w, r, call)
		return
	}
	status, a := s.handle(call)
	call.Status = status
	s.mu.Lock()
	s.calls = append(s.calls, call)
	close(s.called)
	s.called = make(chan struct{})
	s.mu.Unlock()
	writeJSON(w, status, a)
}

func parseCall(r *http.Request, method string) (*Call, error) {
	c := &Call{Method: method, Params: map[string]string{}, Files: map[string][]byte{}, FileNames: map[string]string{},
		At: time.Now()}
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	switch ct {
	case "multipart/form-data":
		// A call without parameters may come as an empty body.
		if err := r.ParseMultipartForm(64 << 20); err != nil && r.ContentLength != 0 && !errors.Is(err, io.EOF) {
			return nil, err
		}
		if r.MultipartForm == nil {
			return c, nil
		}
		for k, v := range r.MultipartForm.Value {
			c.Params[k] = v[0]
		}
		for k, fhs := range r.MultipartForm.File {
			f, err := fhs[0].Open()
			if err != nil {
				return nil, err
			}
			data, err := io.ReadAll(f)
			f.Close()
			if err != nil {
				return nil, err
			}
			c.Files[k], c.FileNames[k] = data, fhs[0].Filename
		}
	case "application/json":
		var m map[string]json.RawMessage
		if err := json.NewDecoder(r.Body).Decode(&m); err != nil {
			return nil, err
		}
		for k, v := range m {
			var s string
			if json.Unmarshal(v, &s) == nil {
				c.Params[k] = s
			} else {
				c.Params[k] = string(v)
			}
		}
	default:
		if err := r.ParseForm(); err != nil {
			return nil, err
		}
		for k, v := range r.Form {
			c.Params[k] = v[0]
		}
	}
	return c, nil
}

func (s *Server) getUpdates(w http.ResponseWriter, r *http.Request, c *Call) {
	offset, _ := strconv.ParseInt(c.Params["offset"], 10, 64)
	timeout, _ := strconv.Atoi(c.Params["timeout"])
	deadline := time.After(time.Duration(timeout) * time.Second)
	s.mu.Lock()
	s.polls++
	s.mu.Unlock()
	for {
		s.mu.Lock()
		// Confirmed updates are gone for good.
		for len(s.updates) > 0 && s.updates[0].ID < offset {
			s.updates = s.updates[1:]
		}
		pending := append([]*models.Update(nil), s.updates...)
		wake := s.wake
		s.mu.Unlock()
		if len(pending) > 0 {
			writeJSON(w, http.StatusOK, answer{OK: true, Result: pending})
			return
		}
		select {
		case <-wake:
		case <-deadline:
			writeJSON(w, http.StatusOK, answer{OK: true, Result: []any{}})
			return
		case <-r.Context().Done():
			return
		}
	}
}

// handle answers one call.
func (s *Server) handle(c *Call) (int, answer) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if q := s.failures[c.Method]; len(q) > 0 {
		s.failures[c.Method] = q[1:]
		a := answer{ErrorCode: http.StatusTooManyRequests,
			Description: fmt.Sprintf("Too Many Requests: retry after %d", q[0])}
		a.Parameters = &struct {
			RetryAfter int `json:"retry_after"`
		}{q[0]}
		return http.StatusTooManyRequests, a
	}
	chatID, _ := strconv.ParseInt(c.Params["chat_id"], 10, 64)
	msgID, _ := strconv.Atoi(c.Params["message_id"])
	switch c.Method {
	case "getMe":
		return http.StatusOK, answer{OK: true, Result: s.Bot}
	case "getChat":
		chat, ok := s.chats[chatID]
		if !ok {
			return http.StatusBadRequest, answer{ErrorCode: 400, Description: "Bad Request: chat not found"}
		}
		return http.StatusOK, answer{OK: true, Result: models.ChatFullInfo{ID: chat.ID, Type: chat.Type,
			Title: chat.Title, Username: chat.Username, FirstName: chat.FirstName, LastName: chat.LastName}}
	case "getFile":
		f, ok := s.files[c.Params["file_id"]]
		if !ok {
			return http.StatusBadRequest, answer{ErrorCode: 400, Description: "Bad Request: invalid file_id"}
		}
		return http.StatusOK, answer{OK: true, Result: models.File{FileID: c.Params["file_id"],
			FileUniqueID: c.Params["file_id"], FileSize: int64(len(f.data)), FilePath: f.path}}
	case "getUserProfilePhotos":
		userID, _ := strconv.ParseInt(c.Params["user_id"], 10, 64)
		photos := models.UserProfilePhotos{Photos: [][]models.PhotoSize{}}
		if id, ok := s.photos[userID]; ok {
			photos.TotalCount = 1
			photos.Photos = [][]models.PhotoSize{{{FileID: id, FileUniqueID: "u" + id, Width: 1, Height: 1,
				FileSize: len(s.files[id].data)}}}
		}
		return http.StatusOK, answer{OK: true, Result: photos}
	case "sendMessage", "sendPhoto", "sendDocument", "sendVoice", "sendSticker", "sendAudio", "sendVideo",
		"sendAnimation":
		chat, ok := s.chats[chatID]
		if !ok {
			return http.StatusBadRequest, answer{ErrorCode: 400, Description: "Bad Request: chat not found"}
		}
		bot := s.Bot
		msg := models.Message{Chat: chat, From: &bot, Text: c.Params["text"], Caption: c.Params["caption"]}
		if thread, _ := strconv.Atoi(c.Params["message_thread_id"]); thread != 0 {
			msg.MessageThreadID, msg.IsTopicMessage = thread, true
		}
		for _, k := range []string{"entities", "caption_entities"} {
			if raw := c.Params[k]; raw != "" {
				var ents []models.MessageEntity
				if err := json.Unmarshal([]byte(raw), &ents); err != nil {
					return http.StatusBadRequest, answer{ErrorCode: 400, Description: "Bad Request: can't parse entities"}
				}
				if k == "entities" {
					msg.Entities = ents
				} else {
					msg.CaptionEntities = ents
				}
			}
		}
		if raw := c.Params["reply_parameters"]; raw != "" {
			var rp models.ReplyParameters
			if err := json.Unmarshal([]byte(raw), &rp); err == nil {
				if orig := s.messages[chatID][rp.MessageID]; orig != nil {
					cp := *orig
					msg.ReplyToMessage = &cp
				}
			}
		}
		for field, data := range c.Files {
			id := s.addFileLocked(c.FileNames[field], data)
			switch field {
			case "photo":
				msg.Photo = []models.PhotoSize{{FileID: id, FileUniqueID: id, FileSize: len(data)}}
			case "sticker":
				msg.Sticker = &models.Sticker{FileID: id, FileUniqueID: id, FileSize: len(data)}
			case "voice":
				msg.Voice = &models.Voice{FileID: id, FileUniqueID: id, FileSize: int64(len(data))}
			default:
				msg.Document = &models.Document{FileID: id, FileUniqueID: id, FileName: c.FileNames[field],
					FileSize: int64(len(data))}
			}
		}
		if c.Method != "sendMessage" && len(c.Files) == 0 {
			return http.StatusBadRequest, answer{ErrorCode: 400, Description: "Bad Request: there is no file in the request"}
		}
		m := s.storeLocked(msg)
		c.Answer = m
		return http.StatusOK, answer{OK: true, Result: m}
	case "editMessageText", "editMessageCaption":
		old := s.messages[chatID][msgID]
		if old == nil {
			return http.StatusBadRequest, answer{ErrorCode: 400, Description: "Bad Request: message to edit not found"}
		}
		m := *old
		var ents []models.MessageEntity
		if raw := c.Params["entities"] + c.Params["caption_entities"]; raw != "" {
			_ = json.Unmarshal([]byte(raw), &ents)
		}
		if c.Method == "editMessageText" {
			m.Text, m.Entities = c.Params["text"], ents
		} else {
			m.Caption, m.CaptionEntities = c.Params["caption"], ents
		}
		m.EditDate = int(time.Now().Unix())
		s.messages[chatID][msgID] = &m
		cp := m
		c.Answer = &cp
		return http.StatusOK, answer{OK: true, Result: cp}
	case "setMessageReaction", "deleteMessage":
		if s.messages[chatID][msgID] == nil {
			return http.StatusBadRequest, answer{ErrorCode: 400, Description: "Bad Request: message not found"}
		}
		if c.Method == "deleteMessage" {
			delete(s.messages[chatID], msgID)
		}
		return http.StatusOK, answer{OK: true, Result: true}
	}
	return http.StatusNotFound, answer{ErrorCode: 404, Description: "Not Found: method not found"}
}
