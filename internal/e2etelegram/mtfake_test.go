package e2etelegram

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/gotd/td/bin"
	"github.com/gotd/td/tg"
	"github.com/gotd/td/tgerr"
	"github.com/gotd/td/tgtest"
	"github.com/gotd/td/tgtest/cluster"
)

// mtFake is a fake Telegram for user mode: gotd's test MTProto server
// (tgtest, real key exchange and encryption over loopback TCP) answering
// the calls the plugin makes, for one account in one supergroup.
type mtFake struct {
	t *testing.T
	// logs are the server's, for a failure's message (set once it runs).
	logs    func() string
	cluster *cluster.Cluster
	srv     *tgtest.Server
	me      *tg.User
	users   []tg.UserClass
	channel *tg.Channel

	wmu sync.Mutex
	mu  sync.Mutex
	// history is the supergroup's messages, oldest first.
	history []*tg.Message
	// session is the last connection that asked for the dialogs (the
	// plugin's user client); sessions counts them.
	session  tgtest.Session
	sessions int
	changed  chan struct{} // closed and renewed on every change
	sent     []*tg.MessagesSendMessageRequest
	reacted  []*tg.MessagesSendReactionRequest
	// parts are uploaded file parts by file ID; media the sent media with
	// their files' bytes.
	parts map[int64][][]byte
	media []sentMedia
	// chPts is the supergroup's pts (each new or edited message moves it
	// on); msgPts each message's.
	chPts  int
	msgPts map[int]int
	// channelDiffs counts updates.getChannelDifference calls.
	channelDiffs int
	// floods: how many messages.sendMessage calls to answer FLOOD_WAIT_1.
	floods int
}

func startMTFake(t *testing.T, me *tg.User, channel *tg.Channel, users ...tg.UserClass) *mtFake {
	t.Helper()
	f := &mtFake{t: t, me: me, channel: channel, users: append([]tg.UserClass{me}, users...),
		changed: make(chan struct{})}
	f.cluster = cluster.NewCluster(cluster.Options{})
	var dispatch *tgtest.Dispatcher
	f.srv, dispatch = f.cluster.DC(2, "dc2")
	// The server's connections take one write at a time: answers and
	// pushed updates go out under wmu.
	d := handleFuncs(func(id uint32, h func(*tgtest.Server, *tgtest.Request) error) {
		dispatch.HandleFunc(id, func(s *tgtest.Server, req *tgtest.Request) error {
			f.wmu.Lock()
			defer f.wmu.Unlock()
			return h(s, req)
		})
	})
	d.HandleFunc(tg.AuthSendCodeRequestTypeID, func(s *tgtest.Server, req *tgtest.Request) error {
		return s.SendResult(req, &tg.AuthSentCode{Type: &tg.AuthSentCodeTypeApp{Length: 5}, PhoneCodeHash: "hash"})
	})
	d.HandleFunc(tg.AuthSignInRequestTypeID, func(s *tgtest.Server, req *tgtest.Request) error {
		var r tg.AuthSignInRequest
		if err := r.Decode(req.Buf); err != nil {
			return err
		}
		if r.PhoneCode != "12345" || r.PhoneCodeHash != "hash" {
			return s.SendErr(req, tgerr.New(400, "PHONE_CODE_INVALID"))
		}
		return s.SendResult(req, &tg.AuthAuthorization{User: f.me})
	})
	d.HandleFunc(tg.UsersGetUsersRequestTypeID, func(s *tgtest.Server, req *tgtest.Request) error {
		return s.SendVector(req, f.me)
	})
	d.HandleFunc(tg.MessagesGetDialogsRequestTypeID, func(s *tgtest.Server, req *tgtest.Request) error {
		err := s.SendResult(req, &tg.MessagesDialogs{
			Dialogs: []tg.DialogClass{&tg.Dialog{Peer: &tg.PeerChannel{ChannelID: channel.ID}}},
			Chats:   []tg.ChatClass{channel}, Users: f.users})
		f.mu.Lock()
		f.session = req.Session
		f.sessions++
		f.changedLocked()
		f.mu.Unlock()
		return err
	})
	d.HandleFunc(tg.MessagesGetHistoryRequestTypeID, func(s *tgtest.Server, req *tgtest.Request) error {
		var r tg.MessagesGetHistoryRequest
		if err := r.Decode(req.Buf); err != nil {
			return err
		}
		if _, ok := r.Peer.(*tg.InputPeerChannel); !ok {
			// Only the supergroup has history.
			return s.SendResult(req, &tg.MessagesMessages{Users: f.users})
		}
		f.mu.Lock()
		var page []tg.MessageClass
		for _, m := range slices.Backward(f.history) {
			if (r.OffsetID == 0 || m.ID < r.OffsetID) && m.ID > r.MinID && len(page) < r.Limit {
				page = append(page, m)
			}
		}
		count := len(f.history)
		f.mu.Unlock()
		return s.SendResult(req, &tg.MessagesChannelMessages{Count: count, Messages: page,
			Chats: []tg.ChatClass{channel}, Users: f.users})
	})
	d.HandleFunc(tg.MessagesSendMessageRequestTypeID, func(s *tgtest.Server, req *tgtest.Request) error {
		var r tg.MessagesSendMessageRequest
		if err := r.Decode(req.Buf); err != nil {
			return err
		}
		f.mu.Lock()
		if f.floods > 0 {
			f.floods--
			f.changedLocked()
			f.mu.Unlock()
			return s.SendErr(req, tgerr.New(420, "FLOOD_WAIT_1"))
		}
		f.sent = append(f.sent, &r)
		m := f.addLocked(f.me.ID, r.Message, 0)
		m.Out = true
		f.changedLocked()
		f.mu.Unlock()
		return s.SendResult(req, &tg.Updates{Updates: []tg.UpdateClass{
			&tg.UpdateMessageID{ID: m.ID, RandomID: r.RandomID},
			&tg.UpdateNewChannelMessage{Message: m, Pts: f.msgPts[m.ID], PtsCount: 1},
		}, Users: f.users, Chats: []tg.ChatClass{channel}, Date: m.Date})
	})
	d.HandleFunc(tg.MessagesSendReactionRequestTypeID, func(s *tgtest.Server, req *tgtest.Request) error {
		var r tg.MessagesSendReactionRequest
		if err := r.Decode(req.Buf); err != nil {
			return err
		}
		f.mu.Lock()
		f.reacted = append(f.reacted, &r)
		f.changedLocked()
		f.mu.Unlock()
		return s.SendResult(req, &tg.Updates{})
	})
	// The update state: the account's common pts stays 0 here (the test
	// pushes its private updates with pts of its own); the supergroup's
	// pts is its last message's ID.
	d.HandleFunc(tg.UpdatesGetStateRequestTypeID, func(s *tgtest.Server, req *tgtest.Request) error {
		return s.SendResult(req, &tg.UpdatesState{Date: 1_700_000_000})
	})
	d.HandleFunc(tg.UpdatesGetDifferenceRequestTypeID, func(s *tgtest.Server, req *tgtest.Request) error {
		return s.SendResult(req, &tg.UpdatesDifferenceEmpty{Date: 1_700_000_000})
	})
	d.HandleFunc(tg.UpdatesGetChannelDifferenceRequestTypeID, func(s *tgtest.Server, req *tgtest.Request) error {
		var r tg.UpdatesGetChannelDifferenceRequest
		if err := r.Decode(req.Buf); err != nil {
			return err
		}
		f.mu.Lock()
		f.channelDiffs++
		var missed []tg.MessageClass
		last := f.chPts
		for _, m := range f.history {
			if f.msgPts[m.ID] > r.Pts {
				missed = append(missed, m)
			}
		}
		f.changedLocked()
		f.mu.Unlock()
		if len(missed) == 0 {
			return s.SendResult(req, &tg.UpdatesChannelDifferenceEmpty{Final: true, Pts: last})
		}
		return s.SendResult(req, &tg.UpdatesChannelDifference{Final: true, Pts: last, NewMessages: missed,
			Chats: []tg.ChatClass{channel}, Users: f.users})
	})
	d.HandleFunc(tg.UploadGetFileRequestTypeID, func(s *tgtest.Server, req *tgtest.Request) error {
		// Every file (dave's profile photo, photo 8888) is the 1×1 PNG.
		var r tg.UploadGetFileRequest
		if err := r.Decode(req.Buf); err != nil {
			return err
		}
		switch loc := r.Location.(type) {
		case *tg.InputPeerPhotoFileLocation:
			if loc.PhotoID != 7777 {
				return s.SendErr(req, tgerr.New(400, "LOCATION_INVALID"))
			}
		case *tg.InputPhotoFileLocation:
			if loc.ID != 8888 || loc.ThumbSize != "x" {
				return s.SendErr(req, tgerr.New(400, "LOCATION_INVALID"))
			}
		default:
			return s.SendErr(req, tgerr.New(400, "LOCATION_INVALID"))
		}
		data := pngData[min(int(r.Offset), len(pngData)):]
		return s.SendResult(req, &tg.UploadFile{Type: &tg.StorageFilePng{}, Bytes: data})
	})
	d.HandleFunc(tg.UploadSaveFilePartRequestTypeID, func(s *tgtest.Server, req *tgtest.Request) error {
		var r tg.UploadSaveFilePartRequest
		if err := r.Decode(req.Buf); err != nil {
			return err
		}
		f.mu.Lock()
		if f.parts == nil {
			f.parts = map[int64][][]byte{}
		}
		parts := f.parts[r.FileID]
		for len(parts) <= r.FilePart {
			parts = append(parts, nil)
		}
		parts[r.FilePart] = r.Bytes
		f.parts[r.FileID] = parts
		f.mu.Unlock()
		return s.SendBool(req, true)
	})
	d.HandleFunc(tg.MessagesSendMediaRequestTypeID, func(s *tgtest.Server, req *tgtest.Request) error {
		var r tg.MessagesSendMediaRequest
		if err := r.Decode(req.Buf); err != nil {
			return err
		}
		var fileID int64
		switch m := r.Media.(type) {
		case *tg.InputMediaUploadedPhoto:
			fileID = m.File.(*tg.InputFile).ID
		case *tg.InputMediaUploadedDocument:
			fileID = m.File.(*tg.InputFile).ID
		}
		f.mu.Lock()
		f.media = append(f.media, sentMedia{req: &r, data: bytes.Join(f.parts[fileID], nil)})
		m := f.addLocked(f.me.ID, r.Message, 0)
		m.Out = true
		f.changedLocked()
		f.mu.Unlock()
		return s.SendResult(req, &tg.Updates{Updates: []tg.UpdateClass{
			&tg.UpdateMessageID{ID: m.ID, RandomID: r.RandomID},
			&tg.UpdateNewChannelMessage{Message: m, Pts: f.msgPts[m.ID], PtsCount: 1},
		}, Users: f.users, Chats: []tg.ChatClass{channel}, Date: m.Date})
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.cluster.Up(ctx) }()
	select {
	case <-f.cluster.Ready():
	case err := <-done:
		cancel()
		t.Fatalf("the fake MTProto server did not start: %v", err)
	}
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return f
}

type sentMedia struct {
	req  *tg.MessagesSendMediaRequest
	data []byte
}

// photoMessage is a supergroup message with a photo (ID 8888, which
// upload.getFile answers with the test PNG).
func (f *mtFake) photoMessage(from int64, caption string) *tg.Message {
	f.mu.Lock()
	defer f.mu.Unlock()
	m := f.addLocked(from, caption, 0)
	m.Media = &tg.MessageMediaPhoto{Photo: &tg.Photo{ID: 8888, AccessHash: 5, FileReference: []byte{1}, Date: m.Date,
		Sizes: []tg.PhotoSizeClass{&tg.PhotoSize{Type: "x", W: 1, H: 1, Size: len(pngData)}}, DCID: 2}}
	return m
}

// handleFuncs registers request handlers.
type handleFuncs func(id uint32, h func(*tgtest.Server, *tgtest.Request) error)

func (h handleFuncs) HandleFunc(id uint32, fn func(*tgtest.Server, *tgtest.Request) error) { h(id, fn) }

func (f *mtFake) changedLocked() {
	close(f.changed)
	f.changed = make(chan struct{})
}

// addLocked appends a message of the supergroup's.
func (f *mtFake) addLocked(from int64, text string, date int) *tg.Message {
	id := 1
	if n := len(f.history); n > 0 {
		id = f.history[n-1].ID + 1
	}
	if date == 0 {
		date = 1_700_000_000 + id*60
	}
	m := &tg.Message{ID: id, PeerID: &tg.PeerChannel{ChannelID: f.channel.ID}, FromID: &tg.PeerUser{UserID: from},
		Message: text, Date: date}
	f.history = append(f.history, m)
	f.chPts++
	if f.msgPts == nil {
		f.msgPts = map[int]int{}
	}
	f.msgPts[id] = f.chPts
	return m
}

// addHistory puts a message in the supergroup without telling anyone.
func (f *mtFake) addHistory(from int64, text string) *tg.Message {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.addLocked(from, text, 0)
}

// post puts a message in the supergroup and pushes it to the plugin's
// connection.
func (f *mtFake) post(ctx context.Context, from int64, text string) *tg.Message {
	f.t.Helper()
	f.mu.Lock()
	m := f.addLocked(from, text, 0)
	k := f.session
	f.mu.Unlock()
	f.wmu.Lock()
	defer f.wmu.Unlock()
	// As Telegram does, the updates carry the users and chats they name
	// (tgtest's SendUpdates would send none). 3 is the message type
	// "from the server" of gotd's internal proto package.
	if err := f.srv.Send(ctx, k, 3, &tg.Updates{
		Updates: []tg.UpdateClass{&tg.UpdateNewChannelMessage{Message: m, Pts: f.msgPts[m.ID], PtsCount: 1}},
		Users:   f.users, Chats: []tg.ChatClass{f.channel}, Date: m.Date}); err != nil {
		f.t.Fatalf("pushing the update: %v", err)
	}
	return m
}

// push sends updates to the plugin's connection, with the users and
// chats.
func (f *mtFake) push(ctx context.Context, updates ...tg.UpdateClass) {
	f.t.Helper()
	f.mu.Lock()
	k := f.session
	f.mu.Unlock()
	f.wmu.Lock()
	defer f.wmu.Unlock()
	if err := f.srv.Send(ctx, k, 3, &tg.Updates{Updates: updates, Users: f.users,
		Chats: []tg.ChatClass{f.channel}, Date: 1_700_000_000}); err != nil {
		f.t.Fatalf("pushing updates: %v", err)
	}
}

// pts is a supergroup message's pts.
func (f *mtFake) pts(id int) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.msgPts[id]
}

// edit changes a supergroup message's text and pushes the edit.
func (f *mtFake) edit(ctx context.Context, id int, text string) {
	f.t.Helper()
	f.mu.Lock()
	var edited tg.Message
	for _, m := range f.history {
		if m.ID == id {
			m.Message, m.EditDate = text, m.Date+30
			edited = *m
		}
	}
	f.chPts++
	pts := f.chPts
	f.mu.Unlock()
	f.push(ctx, &tg.UpdateEditChannelMessage{Message: &edited, Pts: pts, PtsCount: 1})
}

// waitFor waits until cond (called with the fake locked) holds.
func (f *mtFake) waitFor(ctx context.Context, what string, cond func() bool) {
	f.t.Helper()
	for {
		f.mu.Lock()
		ok, ch := cond(), f.changed
		f.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-ch:
		case <-ctx.Done():
			logs := ""
			if f.logs != nil {
				logs = f.logs()
			}
			f.t.Fatalf("the fake Telegram never saw %s; server log:\n%s", what, logs)
		}
	}
}

// publicKeyPEM is the server's RSA key, for the plugin's config.
func (f *mtFake) publicKeyPEM() string {
	return string(pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY",
		Bytes: x509.MarshalPKCS1PublicKey(f.cluster.Keys()[0].RSA)}))
}

func (f *mtFake) address() string {
	for _, o := range f.cluster.List().Options {
		if o.ID == 2 {
			return fmt.Sprintf("%s:%d", o.IPAddress, o.Port)
		}
	}
	f.t.Fatal("the fake has no DC 2")
	return ""
}

var _ bin.Encoder = (*tg.Message)(nil)
