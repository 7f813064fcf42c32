package e2ebridgev2

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.mau.fi/util/configupgrade"
	"go.mau.fi/util/ptr"

	"maunium.net/go/mautrix/bridgev2"
	"maunium.net/go/mautrix/bridgev2/database"
	"maunium.net/go/mautrix/bridgev2/networkid"
	"maunium.net/go/mautrix/bridgev2/simplevent"
	"maunium.net/go/mautrix/event"
)

// testNetwork is a remote network that exists only in memory: one chat
// whose history is a fixed sequence of text messages from a few users. It
// implements bridgev2.NetworkConnector; each login gets a testClient.
type testNetwork struct {
	chat   networkid.PortalKey
	ghosts []networkid.UserID
	count  int
	base   time.Time
	selfID networkid.UserID

	mu      sync.Mutex
	fetches []fetchCall
	// fromMatrix receives what the network is sent from Matrix.
	fromMatrix chan sentMessage
}

// fetchCall records one FetchMessages call and what it returned.
type fetchCall struct {
	Forward  bool
	Count    int
	Anchor   networkid.MessageID
	Cursor   networkid.PaginationCursor
	Returned int
	HasMore  bool
}

// sentMessage is a message sent to the network from Matrix: its text and
// the network message it replies to, if bridgev2 found one.
type sentMessage struct {
	Body    string
	ReplyTo networkid.MessageID
}

var (
	_ bridgev2.NetworkConnector      = (*testNetwork)(nil)
	_ bridgev2.NetworkAPI            = (*testClient)(nil)
	_ bridgev2.BackfillingNetworkAPI = (*testClient)(nil)
)

func newTestNetwork(count int) *testNetwork {
	return &testNetwork{
		chat:   networkid.PortalKey{ID: "chat1"},
		ghosts: []networkid.UserID{"ghost0", "ghost1", "ghost2", "ghost3", "ghost4"},
		count:  count,
		// A fixed past instant: history the bridge did not see happen,
		// older than any unread threshold.
		base:       time.Date(2021, 3, 4, 5, 6, 7, 0, time.UTC),
		selfID:     "me",
		fromMatrix: make(chan sentMessage, 16),
	}
}

// message i of the chat's history.
func (n *testNetwork) sender(i int) networkid.UserID { return n.ghosts[i%len(n.ghosts)] }
func (n *testNetwork) body(i int) string             { return fmt.Sprintf("msg %d", i) }
func (n *testNetwork) ts(i int) time.Time            { return n.base.Add(time.Duration(i) * time.Second) }
func messageID(i int) networkid.MessageID            { return networkid.MessageID(fmt.Sprintf("m%06d", i)) }

func messageIndex(mid networkid.MessageID) (int, error) {
	return strconv.Atoi(strings.TrimPrefix(string(mid), "m"))
}

func (n *testNetwork) chatInfo() *bridgev2.ChatInfo {
	members := &bridgev2.ChatMemberList{IsFull: true, MemberMap: bridgev2.ChatMemberMap{}}
	members.MemberMap.Set(bridgev2.ChatMember{EventSender: bridgev2.EventSender{IsFromMe: true, Sender: n.selfID},
		Membership: event.MembershipJoin})
	for _, g := range n.ghosts {
		members.MemberMap.Set(bridgev2.ChatMember{EventSender: bridgev2.EventSender{Sender: g},
			Membership: event.MembershipJoin})
	}
	return &bridgev2.ChatInfo{
		Name:        ptr.Ptr("Backfill test chat"),
		Topic:       ptr.Ptr("10,000 messages of history"),
		Members:     members,
		Type:        ptr.Ptr(database.RoomTypeDefault),
		CanBackfill: true,
	}
}

// page answers FetchMessages over the history, oldest first as bridgev2
// wants them, the way a chat network's history API does: a forward page is
// the newest messages after the anchor (of the whole chat when there is
// none), at most Count of them; a backward page is the Count messages just
// before the cursor, or before the anchor when there is no cursor yet.
// HasMore says whether older messages remain that this page did not reach.
func (n *testNetwork) page(p bridgev2.FetchMessagesParams) (*bridgev2.FetchMessagesResponse, error) {
	anchor := -1
	if p.AnchorMessage != nil {
		i, err := messageIndex(p.AnchorMessage.ID)
		if err != nil {
			return nil, fmt.Errorf("anchor %q: %w", p.AnchorMessage.ID, err)
		}
		anchor = i
	}
	var lo, hi int
	resp := &bridgev2.FetchMessagesResponse{Forward: p.Forward}
	if p.Forward {
		hi = n.count
		lo = max(anchor+1, hi-max(p.Count, 0))
		resp.HasMore = lo > anchor+1
	} else {
		hi = n.count
		if anchor >= 0 {
			hi = anchor
		}
		if p.Cursor != "" {
			c, err := strconv.Atoi(string(p.Cursor))
			if err != nil {
				return nil, fmt.Errorf("cursor %q: %w", p.Cursor, err)
			}
			hi = c
		}
		lo = max(0, hi-max(p.Count, 0))
		resp.Cursor = networkid.PaginationCursor(strconv.Itoa(lo))
		resp.HasMore = lo > 0
	}
	for i := lo; i < hi; i++ {
		resp.Messages = append(resp.Messages, &bridgev2.BackfillMessage{
			ConvertedMessage: &bridgev2.ConvertedMessage{Parts: []*bridgev2.ConvertedMessagePart{{
				Type:    event.EventMessage,
				Content: &event.MessageEventContent{MsgType: event.MsgText, Body: n.body(i)},
			}}},
			Sender:      bridgev2.EventSender{Sender: n.sender(i)},
			ID:          messageID(i),
			Timestamp:   n.ts(i),
			StreamOrder: int64(i),
		})
	}
	return resp, nil
}

// resync is what the network says about the chat when it (re)connects:
// its info and its newest message. bridgev2 creates the portal from it, or
// forward-backfills after the last message it bridged when that is older
// than the network's newest.
func (n *testNetwork) resync(create bool) *simplevent.ChatResync {
	return &simplevent.ChatResync{
		EventMeta:       simplevent.EventMeta{Type: bridgev2.RemoteEventChatResync, PortalKey: n.chat, CreatePortal: create},
		ChatInfo:        n.chatInfo(),
		LatestMessageTS: n.ts(n.count - 1),
	}
}

func (n *testNetwork) Init(*bridgev2.Bridge)               {}
func (n *testNetwork) Start(context.Context) error         { return nil }
func (n *testNetwork) GetDBMetaTypes() database.MetaTypes  { return database.MetaTypes{} }
func (n *testNetwork) GetBridgeInfoVersion() (int, int)    { return 1, 1 }
func (n *testNetwork) GetLoginFlows() []bridgev2.LoginFlow { return nil }

func (n *testNetwork) GetName() bridgev2.BridgeName {
	return bridgev2.BridgeName{
		DisplayName:          "Test network",
		NetworkURL:           "https://testnet.invalid",
		NetworkID:            "testnet",
		BeeperBridgeType:     "github.com/tributary-hs/tributary/internal/e2ebridgev2",
		DefaultCommandPrefix: "!testnet",
	}
}

func (n *testNetwork) GetCapabilities() *bridgev2.NetworkGeneralCapabilities {
	return &bridgev2.NetworkGeneralCapabilities{}
}

func (n *testNetwork) GetConfig() (string, any, configupgrade.Upgrader) { return "", nil, nil }

func (n *testNetwork) LoadUserLogin(_ context.Context, login *bridgev2.UserLogin) error {
	login.Client = &testClient{net: n, login: login}
	return nil
}

func (n *testNetwork) CreateLogin(context.Context, *bridgev2.User, string) (bridgev2.LoginProcess, error) {
	return nil, errors.New("the test network has no login flows")
}

// testClient is one login's connection to the test network.
type testClient struct {
	net   *testNetwork
	login *bridgev2.UserLogin
}

// The test network has no connection to keep.
func (c *testClient) Connect(context.Context) {}
func (c *testClient) Disconnect()             {}

func (c *testClient) IsLoggedIn() bool             { return true }
func (c *testClient) LogoutRemote(context.Context) {}

func (c *testClient) IsThisUser(_ context.Context, userID networkid.UserID) bool {
	return userID == c.net.selfID
}

func (c *testClient) GetChatInfo(_ context.Context, portal *bridgev2.Portal) (*bridgev2.ChatInfo, error) {
	if portal.PortalKey != c.net.chat {
		return nil, fmt.Errorf("no chat %s on the test network", portal.ID)
	}
	return c.net.chatInfo(), nil
}

func (c *testClient) GetUserInfo(_ context.Context, ghost *bridgev2.Ghost) (*bridgev2.UserInfo, error) {
	return &bridgev2.UserInfo{Name: ptr.Ptr("Test user " + string(ghost.ID))}, nil
}

// GetCapabilities: the chat takes replies; without that bridgev2 would not
// look up what a Matrix reply replies to.
func (c *testClient) GetCapabilities(context.Context, *bridgev2.Portal) *event.RoomFeatures {
	return &event.RoomFeatures{Reply: event.CapLevelFullySupported}
}

// HandleMatrixMessage takes text messages from Matrix and hands them to the
// test with the network message they reply to, as bridgev2 resolved it.
func (c *testClient) HandleMatrixMessage(ctx context.Context, msg *bridgev2.MatrixMessage) (*bridgev2.MatrixMessageResponse, error) {
	if msg.Content.MsgType != event.MsgText {
		return nil, fmt.Errorf("the test network takes only text, not %s", msg.Content.MsgType)
	}
	sent := sentMessage{Body: msg.Content.Body}
	if msg.ReplyTo != nil {
		sent.ReplyTo = msg.ReplyTo.ID
	}
	select {
	case c.net.fromMatrix <- sent:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return &bridgev2.MatrixMessageResponse{DB: &database.Message{
		ID:        networkid.MessageID("matrix-" + string(msg.Event.ID)),
		SenderID:  c.net.selfID,
		Timestamp: time.UnixMilli(msg.Event.Timestamp),
	}}, nil
}

func (c *testClient) FetchMessages(_ context.Context, p bridgev2.FetchMessagesParams) (*bridgev2.FetchMessagesResponse, error) {
	if p.Portal.PortalKey != c.net.chat || p.ThreadRoot != "" {
		return &bridgev2.FetchMessagesResponse{}, nil
	}
	resp, err := c.net.page(p)
	call := fetchCall{Forward: p.Forward, Count: p.Count, Cursor: p.Cursor}
	if p.AnchorMessage != nil {
		call.Anchor = p.AnchorMessage.ID
	}
	if resp != nil {
		call.Returned = len(resp.Messages)
		call.HasMore = resp.HasMore
	}
	c.net.mu.Lock()
	c.net.fetches = append(c.net.fetches, call)
	c.net.mu.Unlock()
	return resp, err
}

func (n *testNetwork) fetchCalls() []fetchCall {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]fetchCall(nil), n.fetches...)
}
