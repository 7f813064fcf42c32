package telegram

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/gotd/td/bin"
	"github.com/gotd/td/telegram/updates"
	"github.com/gotd/td/tg"
	"github.com/gotd/td/tgmock"

	"maunium.net/go/mautrix/bridgev2"
	"maunium.net/go/mautrix/bridgev2/database"
	"maunium.net/go/mautrix/bridgev2/networkid"
	"maunium.net/go/mautrix/bridgev2/simplevent"
	"maunium.net/go/mautrix/bridgev2/status"
	"maunium.net/go/mautrix/event"
)

const (
	meID      = int64(100)
	daveID    = int64(501)
	channelID = int64(1234) // a supergroup: Bot API chat -1000000001234
	forumID   = int64(77)
)

type userTest struct {
	t      *testing.T
	c      *UserClient
	mock   *tgmock.Mock
	events []bridgev2.RemoteEvent
	states []status.BridgeState
}

func newUserTest(t *testing.T) *userTest {
	n := &Connector{}
	if err := n.Config.validate(); err != nil {
		t.Fatal(err)
	}
	n.Config.MaxRetryWait = 10 * time.Second
	login := &bridgev2.UserLogin{UserLogin: &database.UserLogin{ID: userLoginIDOf(meID),
		Metadata: &LoginMetadata{Mode: modeUser, UserID: meID, Session: []byte("session")}}}
	ut := &userTest{t: t, mock: tgmock.New(t)}
	ut.c = newUserClient(n, login)
	ut.c.queue = func(ev bridgev2.RemoteEvent) { ut.events = append(ut.events, ev) }
	ut.c.setState = func(s status.BridgeState) { ut.states = append(ut.states, s) }
	ut.c.intentFor = func(context.Context, *bridgev2.Portal, bridgev2.EventSender) (bridgev2.MatrixAPI, bool) {
		return nil, true
	}
	ut.c.useAPI(ut.mock)
	t.Cleanup(func() {
		if !ut.mock.AllWereMet() {
			t.Error("not every expected MTProto call was made")
		}
	})
	// What updates bring along: dave (with his access hash), the
	// supergroup, a forum.
	ut.c.handleUpdates(context.Background(), &tg.Updates{
		Users: []tg.UserClass{&tg.User{ID: daveID, AccessHash: 9501, FirstName: "Dave", LastName: "Jones", Username: "dave"},
			&tg.User{ID: meID, Self: true, AccessHash: 9100, FirstName: "Me"}},
		Chats: []tg.ChatClass{&tg.Channel{ID: channelID, AccessHash: 91234, Title: "Telegram Group", Megagroup: true},
			&tg.Channel{ID: forumID, AccessHash: 977, Title: "Forum", Megagroup: true, Forum: true}},
	})
	return ut
}

// take returns the events queued so far and forgets them.
func (ut *userTest) take(n int) []bridgev2.RemoteEvent {
	ut.t.Helper()
	if len(ut.events) != n {
		for _, ev := range ut.events {
			ut.t.Logf("event %T %v", ev, ev.GetType())
		}
		ut.t.Fatalf("%d events, want %d", len(ut.events), n)
	}
	evs := ut.events
	ut.events = nil
	return evs
}

func convert(t *testing.T, ev bridgev2.RemoteEvent) *bridgev2.ConvertedMessage {
	t.Helper()
	m, ok := ev.(bridgev2.RemoteMessage)
	if !ok {
		t.Fatalf("%T is no message", ev)
	}
	cm, err := m.ConvertMessage(context.Background(), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	return cm
}

func TestUserUpdatesMessages(t *testing.T) {
	ut := newUserTest(t)
	ctx := context.Background()
	group := &tg.PeerChannel{ChannelID: channelID}
	msg := &tg.Message{ID: 7, PeerID: group, FromID: &tg.PeerUser{UserID: daveID}, Date: 1700000000,
		Message:  "hello bold world",
		Entities: []tg.MessageEntityClass{&tg.MessageEntityBold{Offset: 6, Length: 4}},
		ReplyTo:  &tg.MessageReplyHeader{ReplyToMsgID: 5}}
	ut.c.handleUpdates(ctx, &tg.Updates{Updates: []tg.UpdateClass{&tg.UpdateNewChannelMessage{Message: msg}}})
	ev := ut.take(1)[0]
	wantKey := networkid.PortalKey{ID: "-1000000001234"} // shared with every login, bot or user
	if ev.GetType() != bridgev2.RemoteEventMessage || ev.GetPortalKey() != wantKey ||
		ev.GetSender().Sender != "501" || ev.GetSender().IsFromMe {
		t.Fatalf("message event: %v %+v %+v", ev.GetType(), ev.GetPortalKey(), ev.GetSender())
	}
	if ts := ev.(bridgev2.RemoteEventWithTimestamp).GetTimestamp(); !ts.Equal(time.Unix(1700000000, 0)) {
		t.Errorf("timestamp %s", ts)
	}
	if id := ev.(bridgev2.RemoteMessage).GetID(); id != "-1000000001234:7" {
		t.Errorf("message ID %s", id)
	}
	cm := convert(t, ev)
	if c := cm.Parts[0].Content; c.Body != "hello bold world" || c.FormattedBody != "hello <strong>bold</strong> world" {
		t.Errorf("content %q %q", c.Body, c.FormattedBody)
	}
	if cm.ReplyTo == nil || cm.ReplyTo.MessageID != "-1000000001234:5" {
		t.Errorf("reply to %+v", cm.ReplyTo)
	}

	// An edit, then the deletion (channels name themselves).
	edited := *msg
	edited.Message, edited.Entities, edited.EditDate = "hello again", nil, 1700000100
	ut.c.handleUpdates(ctx, &tg.Updates{Updates: []tg.UpdateClass{
		&tg.UpdateEditChannelMessage{Message: &edited},
		&tg.UpdateDeleteChannelMessages{ChannelID: channelID, Messages: []int{7}},
	}})
	evs := ut.take(2)
	edit := evs[0].(bridgev2.RemoteEdit)
	if edit.GetType() != bridgev2.RemoteEventEdit || edit.GetTargetMessage() != "-1000000001234:7" {
		t.Fatalf("edit %v %s", edit.GetType(), edit.GetTargetMessage())
	}
	existing := []*database.Message{{ID: "-1000000001234:7", Metadata: &MessageMetadata{}}}
	ce, err := edit.ConvertEdit(ctx, nil, nil, existing)
	if err != nil || ce.ModifiedParts[0].Content.Body != "hello again" {
		t.Errorf("converted edit %+v %v", ce, err)
	}
	if ts := evs[0].(bridgev2.RemoteEventWithTimestamp).GetTimestamp(); !ts.Equal(time.Unix(1700000100, 0)) {
		t.Errorf("edit time %s", ts)
	}
	del := evs[1].(*simplevent.MessageRemove)
	if del.GetType() != bridgev2.RemoteEventMessageRemove || del.TargetMessage != "-1000000001234:7" || del.PortalKey != wantKey {
		t.Errorf("deletion %+v", del)
	}

	// A private message in short form, one of the account's own, and one
	// in a forum topic.
	ut.c.handleUpdates(ctx, &tg.UpdateShortMessage{ID: 20, UserID: daveID, Message: "psst", Date: 1700000200})
	ut.c.handleUpdates(ctx, &tg.UpdateShort{Update: &tg.UpdateNewMessage{Message: &tg.Message{ID: 21, Out: true,
		PeerID: &tg.PeerUser{UserID: daveID}, Message: "from my phone", Date: 1700000201}}})
	ut.c.handleUpdates(ctx, &tg.UpdateShort{Update: &tg.UpdateNewChannelMessage{Message: &tg.Message{ID: 31,
		PeerID: &tg.PeerChannel{ChannelID: forumID}, FromID: &tg.PeerUser{UserID: daveID}, Message: "in a topic",
		ReplyTo: &tg.MessageReplyHeader{ForumTopic: true, ReplyToMsgID: 30}, Date: 1700000202}}})
	// Deleting the private message: the update names no chat.
	ut.c.handleUpdates(ctx, &tg.UpdateShort{Update: &tg.UpdateDeleteMessages{Messages: []int{20}}})
	evs = ut.take(4)
	dm := networkid.PortalKey{ID: "501", Receiver: "user100"}
	if del := evs[3].(*simplevent.MessageRemove); del.PortalKey != dm || del.TargetMessage != "501:20" {
		t.Errorf("private deletion %+v", del)
	}
	if evs[0].GetPortalKey() != dm || evs[0].GetSender().Sender != "501" || convert(t, evs[0]).Parts[0].Content.Body != "psst" {
		t.Errorf("short message: %+v %+v", evs[0].GetPortalKey(), evs[0].GetSender())
	}
	if s := evs[1].GetSender(); evs[1].GetPortalKey() != dm || !s.IsFromMe || s.SenderLogin != "user100" || s.Sender != "100" {
		t.Errorf("own message: %+v %+v", evs[1].GetPortalKey(), s)
	}
	if k := evs[2].GetPortalKey(); k.ID != "-1000000000077/30" {
		t.Errorf("topic message in %+v", k)
	}
	if cm := convert(t, evs[2]); cm.ReplyTo != nil {
		t.Errorf("a topic's message replies to the topic's first message: %+v", cm.ReplyTo)
	}
}

func TestUserUpdatesReactionsTypingReads(t *testing.T) {
	ut := newUserTest(t)
	ctx := context.Background()
	group := &tg.PeerChannel{ChannelID: channelID}
	ut.c.handleUpdates(ctx, &tg.Updates{Updates: []tg.UpdateClass{
		&tg.UpdateMessageReactions{Peer: group, MsgID: 7, Reactions: tg.MessageReactions{
			Results: []tg.ReactionCount{{Reaction: &tg.ReactionEmoji{Emoticon: "👍"}, Count: 2}},
			RecentReactions: []tg.MessagePeerReaction{
				{PeerID: &tg.PeerUser{UserID: daveID}, Date: 1700000300, Reaction: &tg.ReactionEmoji{Emoticon: "👍"}},
				{PeerID: &tg.PeerUser{UserID: meID}, Date: 1700000301, Reaction: &tg.ReactionEmoji{Emoticon: "👍"}, My: true},
			}}},
		&tg.UpdateChannelUserTyping{ChannelID: channelID, FromID: &tg.PeerUser{UserID: daveID},
			Action: &tg.SendMessageTypingAction{}},
		&tg.UpdateReadChannelInbox{ChannelID: channelID, MaxID: 7},
		&tg.UpdateReadHistoryOutbox{Peer: &tg.PeerUser{UserID: daveID}, MaxID: 21},
	}})
	evs := ut.take(4)
	sync := evs[0].(*simplevent.ReactionSync)
	if sync.TargetMessage != "-1000000001234:7" || !sync.Reactions.HasAllUsers || len(sync.Reactions.Users) != 2 {
		t.Fatalf("reaction sync %+v %+v", sync, sync.Reactions)
	}
	dave := sync.Reactions.Users["501"]
	if dave == nil || len(dave.Reactions) != 1 || dave.Reactions[0].Emoji != "👍" ||
		!dave.Reactions[0].Timestamp.Equal(time.Unix(1700000300, 0)) {
		t.Errorf("dave's reactions %+v", dave)
	}
	if me := sync.Reactions.Users["100"]; me == nil || !me.Reactions[0].Sender.IsFromMe {
		t.Errorf("own reaction %+v", me)
	}
	typing := evs[1].(*simplevent.Typing)
	if typing.Sender.Sender != "501" || typing.Timeout == 0 {
		t.Errorf("typing %+v", typing)
	}
	read := evs[2].(*simplevent.Receipt)
	if !read.Sender.IsFromMe || read.LastTarget != "-1000000001234:7" {
		t.Errorf("own read %+v", read)
	}
	theirs := evs[3].(*simplevent.Receipt)
	if theirs.Sender.Sender != "501" || theirs.PortalKey.ID != "501" || theirs.LastTarget != "501:21" {
		t.Errorf("dave's read %+v", theirs)
	}
}

func TestUserUpdatesService(t *testing.T) {
	ut := newUserTest(t)
	ctx := context.Background()
	group := &tg.PeerChannel{ChannelID: channelID}
	ut.c.handleUpdates(ctx, &tg.Updates{Updates: []tg.UpdateClass{
		&tg.UpdateNewChannelMessage{Message: &tg.MessageService{ID: 8, PeerID: group, FromID: &tg.PeerUser{UserID: meID},
			Action: &tg.MessageActionChatAddUser{Users: []int64{daveID}}, Date: 1700000400}},
		&tg.UpdateNewChannelMessage{Message: &tg.MessageService{ID: 9, PeerID: group, FromID: &tg.PeerUser{UserID: meID},
			Action: &tg.MessageActionChatEditTitle{Title: "New Title"}, Date: 1700000401}},
		&tg.UpdateNewChannelMessage{Message: &tg.MessageService{ID: 40, PeerID: &tg.PeerChannel{ChannelID: forumID},
			FromID: &tg.PeerUser{UserID: meID}, Action: &tg.MessageActionTopicCreate{Title: "Ideas"}, Date: 1700000402}},
	}})
	evs := ut.take(3)
	join := evs[0].(*simplevent.ChatInfoChange).ChatInfoChange.MemberChanges.MemberMap["501"]
	if join.Membership != event.MembershipJoin || join.UserInfo == nil || *join.UserInfo.Name != "Dave Jones" {
		t.Errorf("join %+v", join)
	}
	if name := evs[1].(*simplevent.ChatInfoChange).ChatInfoChange.ChatInfo.Name; *name != "New Title" {
		t.Errorf("title %s", *name)
	}
	topic := evs[2].(*simplevent.ChatInfoChange)
	if topic.PortalKey.ID != "-1000000000077/40" || *topic.ChatInfoChange.ChatInfo.Name != "Ideas" {
		t.Errorf("topic %+v", topic.PortalKey)
	}
	info, err := ut.c.GetChatInfo(ctx, &bridgev2.Portal{Portal: &database.Portal{PortalKey: topic.PortalKey}})
	if err != nil || *info.Name != "Ideas" || *info.ParentID != "-1000000000077" {
		t.Errorf("topic info %+v %v", info, err)
	}
}

func portal(id networkid.PortalID) *bridgev2.Portal {
	return &bridgev2.Portal{Portal: &database.Portal{PortalKey: networkid.PortalKey{ID: id, Receiver: "user100"}}}
}

func TestUserSend(t *testing.T) {
	ut := newUserTest(t)
	ctx := context.Background()
	var random int64
	ut.mock.ExpectFunc(func(b bin.Encoder) {
		req, ok := b.(*tg.MessagesSendMessageRequest)
		if !ok {
			t.Fatalf("want messages.sendMessage, got %#v", b)
		}
		peer, _ := req.Peer.(*tg.InputPeerChannel)
		if peer == nil || peer.ChannelID != channelID || peer.AccessHash != 91234 || req.Message != "hi dave" {
			t.Errorf("sendMessage %+v to %+v", req, req.Peer)
		}
		if len(req.Entities) != 1 {
			t.Fatalf("entities %+v", req.Entities)
		}
		if b, ok := req.Entities[0].(*tg.MessageEntityBold); !ok || b.Offset != 0 || b.Length != 2 {
			t.Errorf("entity %+v", req.Entities[0])
		}
		if r, ok := req.ReplyTo.(*tg.InputReplyToMessage); !ok || r.ReplyToMsgID != 7 {
			t.Errorf("reply to %+v", req.ReplyTo)
		}
		random = req.RandomID
	}).ThenResult(&tg.Updates{Updates: []tg.UpdateClass{
		&tg.UpdateNewChannelMessage{Message: &tg.Message{ID: 50, Out: true, PeerID: &tg.PeerChannel{ChannelID: channelID},
			FromID: &tg.PeerUser{UserID: meID}, Message: "hi dave", Date: 1700000500}},
	}})
	p := portal("-1000000001234")
	resp, err := ut.c.HandleMatrixMessage(ctx, &bridgev2.MatrixMessage{MatrixEventBase: bridgev2.MatrixEventBase[*event.MessageEventContent]{
		Event: &event.Event{Type: event.EventMessage}, Portal: p,
		Content: &event.MessageEventContent{MsgType: event.MsgText, Body: "hi dave", Format: event.FormatHTML,
			FormattedBody: "<strong>hi</strong> dave"}},
		ReplyTo: &database.Message{ID: "-1000000001234:7"}})
	if err != nil {
		t.Fatal(err)
	}
	if random == 0 || resp.DB.ID != "-1000000001234:50" || resp.DB.SenderID != "100" || !resp.DB.Timestamp.Equal(time.Unix(1700000500, 0)) {
		t.Errorf("response %+v", resp.DB)
	}
	// Its echo is not bridged back.
	ut.c.handleUpdates(ctx, &tg.UpdateShort{Update: &tg.UpdateNewChannelMessage{Message: &tg.Message{ID: 50, Out: true,
		PeerID: &tg.PeerChannel{ChannelID: channelID}, Message: "hi dave"}}})
	ut.take(0)

	// Edit, reaction, its removal, deletion.
	ut.mock.ExpectFunc(func(b bin.Encoder) {
		req, ok := b.(*tg.MessagesEditMessageRequest)
		if !ok || req.ID != 50 || req.Message != "hi Dave" {
			t.Errorf("want messages.editMessage, got %#v", b)
		}
	}).ThenResult(&tg.Updates{})
	ut.mock.ExpectFunc(func(b bin.Encoder) {
		req, ok := b.(*tg.MessagesSendReactionRequest)
		if !ok || req.MsgID != 7 || len(req.Reaction) != 1 || req.Reaction[0].(*tg.ReactionEmoji).Emoticon != "❤" {
			t.Errorf("want messages.sendReaction ❤, got %#v", b)
		}
	}).ThenResult(&tg.Updates{})
	ut.mock.ExpectFunc(func(b bin.Encoder) {
		req, ok := b.(*tg.MessagesSendReactionRequest)
		if !ok || req.MsgID != 7 || len(req.Reaction) != 0 {
			t.Errorf("want messages.sendReaction of none, got %#v", b)
		}
	}).ThenResult(&tg.Updates{})
	ut.mock.ExpectFunc(func(b bin.Encoder) {
		req, ok := b.(*tg.ChannelsDeleteMessagesRequest)
		if !ok || len(req.ID) != 1 || req.ID[0] != 50 || req.Channel.(*tg.InputChannel).AccessHash != 91234 {
			t.Errorf("want channels.deleteMessages, got %#v", b)
		}
	}).ThenResult(&tg.MessagesAffectedMessages{Pts: 1, PtsCount: 1})
	base := func() bridgev2.MatrixEventBase[*event.MessageEventContent] {
		return bridgev2.MatrixEventBase[*event.MessageEventContent]{Event: &event.Event{}, Portal: p,
			Content: &event.MessageEventContent{MsgType: event.MsgText, Body: "hi Dave"}}
	}
	if err := ut.c.HandleMatrixEdit(ctx, &bridgev2.MatrixEdit{MatrixEventBase: base(),
		EditTarget: &database.Message{ID: "-1000000001234:50"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := ut.c.HandleMatrixReaction(ctx, &bridgev2.MatrixReaction{
		MatrixEventBase: bridgev2.MatrixEventBase[*event.ReactionEventContent]{Event: &event.Event{}, Portal: p,
			Content: &event.ReactionEventContent{RelatesTo: event.RelatesTo{Key: "❤️"}}},
		TargetMessage: &database.Message{ID: "-1000000001234:7"}}); err != nil {
		t.Fatal(err)
	}
	if err := ut.c.HandleMatrixReactionRemove(ctx, &bridgev2.MatrixReactionRemove{
		MatrixEventBase: bridgev2.MatrixEventBase[*event.RedactionEventContent]{Event: &event.Event{}, Portal: p},
		TargetReaction:  &database.Reaction{MessageID: "-1000000001234:7"}}); err != nil {
		t.Fatal(err)
	}
	if err := ut.c.HandleMatrixMessageRemove(ctx, &bridgev2.MatrixMessageRemove{
		MatrixEventBase: bridgev2.MatrixEventBase[*event.RedactionEventContent]{Event: &event.Event{}, Portal: p},
		TargetMessage:   &database.Message{ID: "-1000000001234:50"}}); err != nil {
		t.Fatal(err)
	}
}

// TestUserFloodWait: FLOOD_WAIT delays the message (it is sent once
// Telegram takes it, exactly once), and the login's state says so
// meanwhile and recovers after.
func TestUserFloodWait(t *testing.T) {
	ut := newUserTest(t)
	sends := 0
	expectSend := func() *tgmock.RequestBuilder {
		return ut.mock.ExpectFunc(func(b bin.Encoder) {
			if _, ok := b.(*tg.MessagesSendMessageRequest); !ok {
				t.Errorf("want messages.sendMessage, got %#v", b)
			}
			sends++
		})
	}
	expectSend().ThenFlood(1)
	expectSend().ThenFlood(1)
	expectSend().ThenResult(&tg.UpdateShortSentMessage{ID: 60, Date: 1700000600})
	start := time.Now()
	resp, err := ut.c.HandleMatrixMessage(context.Background(), &bridgev2.MatrixMessage{
		MatrixEventBase: bridgev2.MatrixEventBase[*event.MessageEventContent]{Event: &event.Event{Type: event.EventMessage},
			Portal: portal("501"), Content: &event.MessageEventContent{MsgType: event.MsgText, Body: "patience"}}})
	if err != nil {
		t.Fatal(err)
	}
	// FLOOD_WAIT_1 twice: a second, then two.
	if waited := time.Since(start); waited < 3*time.Second {
		t.Errorf("sent after %s", waited)
	}
	if sends != 3 || resp.DB.ID != "501:60" {
		t.Errorf("%d sends, %+v", sends, resp.DB)
	}
	if len(ut.states) != 2 || ut.states[0].StateEvent != status.StateTransientDisconnect ||
		ut.states[0].Error != errRateLimited || ut.states[1].StateEvent != status.StateConnected {
		t.Errorf("bridge states %+v", ut.states)
	}
}

// TestUserBackfill: a page of history (newest first from Telegram) comes
// back oldest first, with the original senders and times, and a cursor
// for the page before.
func TestUserBackfill(t *testing.T) {
	ut := newUserTest(t)
	group := &tg.PeerChannel{ChannelID: channelID}
	erin := &tg.User{ID: 502, AccessHash: 9502, FirstName: "Erin"}
	ut.mock.ExpectFunc(func(b bin.Encoder) {
		req, ok := b.(*tg.MessagesGetHistoryRequest)
		if !ok || req.Limit != 3 || req.OffsetID != 0 {
			t.Errorf("want messages.getHistory, got %#v", b)
		}
	}).ThenResult(&tg.MessagesChannelMessages{Count: 10, Users: []tg.UserClass{erin}, Messages: []tg.MessageClass{
		&tg.Message{ID: 12, PeerID: group, FromID: &tg.PeerUser{UserID: 502}, Message: "third", Date: 1700000012},
		&tg.Message{ID: 11, PeerID: group, Out: true, FromID: &tg.PeerUser{UserID: meID}, Message: "second", Date: 1700000011},
		&tg.Message{ID: 10, PeerID: group, FromID: &tg.PeerUser{UserID: daveID}, Message: "first", Date: 1700000010},
	}})
	ut.mock.ExpectFunc(func(b bin.Encoder) {
		req, ok := b.(*tg.MessagesGetHistoryRequest)
		if !ok || req.OffsetID != 10 {
			t.Errorf("want messages.getHistory before 10, got %#v", b)
		}
	}).ThenResult(&tg.MessagesChannelMessages{Count: 10, Messages: []tg.MessageClass{
		&tg.Message{ID: 9, PeerID: group, FromID: &tg.PeerUser{UserID: daveID}, Message: "zeroth", Date: 1700000009},
	}})
	p := portal("-1000000001234")
	resp, err := ut.c.FetchMessages(context.Background(), bridgev2.FetchMessagesParams{Portal: p, Count: 3})
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		id, sender, body string
		ts               int64
	}{{"-1000000001234:10", "501", "first", 1700000010}, {"-1000000001234:11", "100", "second", 1700000011},
		{"-1000000001234:12", "502", "third", 1700000012}}
	if len(resp.Messages) != 3 || !resp.HasMore || resp.Cursor != "10" {
		t.Fatalf("%d messages, more %v, cursor %q", len(resp.Messages), resp.HasMore, resp.Cursor)
	}
	for i, w := range want {
		m := resp.Messages[i]
		if string(m.ID) != w.id || string(m.Sender.Sender) != w.sender || m.Parts[0].Content.Body != w.body ||
			!m.Timestamp.Equal(time.Unix(w.ts, 0)) {
			t.Errorf("message %d: %s from %s %q at %s", i, m.ID, m.Sender.Sender, m.Parts[0].Content.Body, m.Timestamp)
		}
	}
	if !resp.Messages[1].Sender.IsFromMe {
		t.Error("the account's own message is not from the login")
	}
	if u := ut.c.user(502); u == nil || u.AccessHash != 9502 {
		t.Error("the page's users are not remembered")
	}
	resp, err = ut.c.FetchMessages(context.Background(), bridgev2.FetchMessagesParams{Portal: p, Count: 3, Cursor: resp.Cursor})
	if err != nil || len(resp.Messages) != 1 || resp.HasMore || resp.Messages[0].Parts[0].Content.Body != "zeroth" {
		t.Errorf("second page: %+v %v", resp, err)
	}
}

// TestPeersKept: the access hashes of private chats' users and of
// channels are kept in the login, so that a restarted client (which knows
// no users yet) can still send to them.
func TestPeersKept(t *testing.T) {
	ut := newUserTest(t)
	ctx := context.Background()
	ut.c.handleUpdates(ctx, &tg.UpdateShortMessage{ID: 20, UserID: daveID, Message: "psst", Date: 1700000200})
	ut.c.handleUpdates(ctx, &tg.UpdateShort{Update: &tg.UpdateNewChannelMessage{Message: &tg.Message{ID: 7,
		PeerID: &tg.PeerChannel{ChannelID: channelID}, FromID: &tg.PeerUser{UserID: daveID}, Message: "hi"}}})
	ut.take(2)
	restarted := newUserClient(ut.c.net, ut.c.login)
	for chatID, want := range map[int64]tg.InputPeerClass{
		501:            &tg.InputPeerUser{UserID: daveID, AccessHash: 9501},
		-1000000001234: &tg.InputPeerChannel{ChannelID: channelID, AccessHash: 91234},
	} {
		if got, err := restarted.inputPeer(chatID); err != nil || got.String() != want.String() {
			t.Errorf("chat %d after a restart: %v %v", chatID, got, err)
		}
	}
	if _, err := restarted.inputPeer(502); err == nil {
		t.Error("a user never met is known")
	}
}

// TestSharedPortals: a group is the same portal for a bot login and a user
// login, a private chat each login's own.
func TestSharedPortals(t *testing.T) {
	ut := newUserTest(t)
	bot := &Client{login: &bridgev2.UserLogin{UserLogin: &database.UserLogin{ID: loginIDOf(4242)}}}
	for _, chatID := range []int64{-1000000001234, -42} {
		if b, u := bot.portalKey(chatID), ut.c.portalKey(chatID); b != u || b.Receiver != "" {
			t.Errorf("chat %d: bot portal %+v, user portal %+v", chatID, b, u)
		}
	}
	if b, u := bot.portalKey(501), ut.c.portalKey(501); b.Receiver != "bot4242" || u.Receiver != "user100" {
		t.Errorf("private chat: bot portal %+v, user portal %+v", b, u)
	}
}

func TestPeerIDs(t *testing.T) {
	for _, p := range []tg.PeerClass{&tg.PeerUser{UserID: 5}, &tg.PeerChat{ChatID: 5}, &tg.PeerChannel{ChannelID: 5}} {
		id := botAPIChatID(p)
		back := peerOfChatID(id)
		if back.String() != p.String() {
			t.Errorf("%v → %d → %v", p, id, back)
		}
	}
	if botAPIChatID(&tg.PeerChannel{ChannelID: 1234}) != -1000000001234 || botAPIChatID(&tg.PeerChat{ChatID: 42}) != -42 {
		t.Error("not the Bot API's chat IDs")
	}
}

func TestUserReadTypingTopics(t *testing.T) {
	ut := newUserTest(t)
	ctx := context.Background()
	ut.mock.ExpectFunc(func(b bin.Encoder) {
		req, ok := b.(*tg.ChannelsReadHistoryRequest)
		if !ok || req.MaxID != 7 || req.Channel.(*tg.InputChannel).ChannelID != channelID {
			t.Errorf("want channels.readHistory up to 7, got %#v", b)
		}
	}).ThenTrue()
	ut.mock.ExpectFunc(func(b bin.Encoder) {
		req, ok := b.(*tg.MessagesReadHistoryRequest)
		if !ok || req.MaxID != 20 || req.Peer.(*tg.InputPeerUser).AccessHash != 9501 {
			t.Errorf("want messages.readHistory up to 20, got %#v", b)
		}
	}).ThenResult(&tg.MessagesAffectedMessages{Pts: 3, PtsCount: 1})
	ut.mock.ExpectFunc(func(b bin.Encoder) {
		req, ok := b.(*tg.MessagesSetTypingRequest)
		if _, typing := req.Action.(*tg.SendMessageTypingAction); !ok || !typing || req.TopMsgID != 30 {
			t.Errorf("want messages.setTyping in topic 30, got %#v", b)
		}
	}).ThenTrue()
	ut.mock.ExpectFunc(func(b bin.Encoder) {
		req, ok := b.(*tg.ChannelsGetForumTopicsByIDRequest)
		if !ok || len(req.Topics) != 1 || req.Topics[0] != 30 {
			t.Errorf("want channels.getForumTopicsByID 30, got %#v", b)
		}
	}).ThenResult(&tg.MessagesForumTopics{Topics: []tg.ForumTopicClass{&tg.ForumTopic{ID: 30, Title: "Plans",
		FromID: &tg.PeerUser{UserID: daveID}, NotifySettings: tg.PeerNotifySettings{}}}})
	if err := ut.c.HandleMatrixReadReceipt(ctx, &bridgev2.MatrixReadReceipt{Portal: portal("-1000000001234"),
		ExactMessage: &database.Message{ID: "-1000000001234:7"}}); err != nil {
		t.Fatal(err)
	}
	if err := ut.c.HandleMatrixReadReceipt(ctx, &bridgev2.MatrixReadReceipt{Portal: portal("501"),
		ExactMessage: &database.Message{ID: "501:20"}}); err != nil {
		t.Fatal(err)
	}
	if err := ut.c.HandleMatrixTyping(ctx, &bridgev2.MatrixTyping{Portal: portal("-1000000000077/30"), IsTyping: true}); err != nil {
		t.Fatal(err)
	}
	// A topic no service message named: its title is asked for.
	info, err := ut.c.GetChatInfo(ctx, portal("-1000000000077/30"))
	if err != nil || *info.Name != "Plans" {
		t.Errorf("topic info %+v %v", info, err)
	}
}

// TestUpdateStateInLogin: gotd's update state and the channels' access
// hashes live in the login's metadata (and so survive a restart).
func TestUpdateStateInLogin(t *testing.T) {
	ut := newUserTest(t)
	ctx := context.Background()
	st := metaState{ut.c}
	if _, found, err := st.GetState(ctx, meID); found || err != nil {
		t.Fatalf("a new login has a state: %v %v", found, err)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(st.SetState(ctx, meID, updates.State{Pts: 10, Qts: 2, Date: 1700000000, Seq: 3}))
	must(st.SetPts(ctx, meID, 11))
	must(st.SetDateSeq(ctx, meID, 1700000100, 4))
	must(st.SetChannelPts(ctx, meID, channelID, 40))
	must(st.SetChannelAccessHash(ctx, meID, channelID, 91234))
	must(st.SetChannelAccessHash(ctx, meID, 999, 5)) // a channel with no pts yet
	got, found, err := st.GetState(ctx, meID)
	if !found || err != nil || got != (updates.State{Pts: 11, Qts: 2, Date: 1700000100, Seq: 4}) {
		t.Errorf("state %+v %v %v", got, found, err)
	}
	if pts, found, _ := st.GetChannelPts(ctx, meID, channelID); !found || pts != 40 {
		t.Errorf("channel pts %d %v", pts, found)
	}
	if _, found, _ := st.GetChannelPts(ctx, meID, 999); found {
		t.Error("a channel without pts has one")
	}
	if hash, found, _ := st.GetChannelAccessHash(ctx, meID, 999); !found || hash != 5 {
		t.Errorf("access hash %d %v", hash, found)
	}
	var chans []int64
	must(st.ForEachChannels(ctx, meID, func(_ context.Context, id int64, pts int) error {
		chans = append(chans, id)
		return nil
	}))
	if len(chans) != 1 || chans[0] != channelID {
		t.Errorf("channels %v", chans)
	}
	// It is the login's metadata, which bridgev2 saves as JSON.
	raw, err := json.Marshal(ut.c.meta())
	if err != nil {
		t.Fatal(err)
	}
	var back LoginMetadata
	if err := json.Unmarshal(raw, &back); err != nil || back.Updates == nil || back.Updates.Pts != 11 ||
		back.Updates.Channels[channelID].Pts != 40 || string(back.Session) != "session" {
		t.Errorf("metadata round trip %s: %+v %v", raw, back.Updates, err)
	}
}

// TestLoginMetadataMarshalledWhileChanging: a login's Save (bridgev2
// marshals the metadata) may come from any goroutine while the update
// manager's goroutines change the update state and the access hashes
// (under -race, and a map iterated while written can end the process).
func TestLoginMetadataMarshalledWhileChanging(t *testing.T) {
	ut := newUserTest(t)
	st := metaState{ut.c}
	ctx := context.Background()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 300 {
			_ = st.SetChannelPts(ctx, meID, int64(i), i+1)
			_ = st.SetChannelAccessHash(ctx, meID, int64(i), int64(i)+7)
			_ = st.SetPts(ctx, meID, i)
		}
	}()
	for range 300 {
		if _, err := json.Marshal(ut.c.login.Metadata); err != nil {
			t.Fatal(err)
		}
	}
	<-done
	raw, err := json.Marshal(ut.c.login.Metadata)
	if err != nil {
		t.Fatal(err)
	}
	var back LoginMetadata
	if err := json.Unmarshal(raw, &back); err != nil {
		t.Fatal(err)
	}
	if back.Updates == nil || back.Updates.Pts != 299 || len(back.Updates.Channels) != 300 ||
		back.Updates.Channels[299] != (channelState{Pts: 300, AccessHash: 306}) || back.Session == nil {
		t.Errorf("marshalled metadata: %s", raw)
	}
}
