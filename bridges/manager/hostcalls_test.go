package manager

import (
	"context"
	"io"
	"log/slog"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"maunium.net/go/mautrix/appservice"
	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/appservice/registry"
	"github.com/tributary-hs/tributary/core/config"
	"github.com/tributary-hs/tributary/core/rooms"
	"github.com/tributary-hs/tributary/core/types"
	"github.com/tributary-hs/tributary/core/users"
	"github.com/tributary-hs/tributary/plugins/proto"
	"github.com/tributary-hs/tributary/storage"
)

// fakeAccounts knows some local accounts.
type fakeAccounts struct {
	Accounts
	accounts  map[id.UserID]*users.Account
	suspended map[id.UserID]bool
}

func (f *fakeAccounts) GetAccount(_ context.Context, u id.UserID) (*users.Account, error) {
	if a := f.accounts[u]; a != nil {
		return a, nil
	}
	return nil, types.NotFound("No such user")
}

func (f *fakeAccounts) Restrictions(_ context.Context, u id.UserID) (bool, bool, error) {
	return f.suspended[u], false, nil
}

// fakeRooms says which users share a room.
type fakeRooms struct {
	RoomReader
	shared map[[2]id.UserID]bool
}

func (f *fakeRooms) MutualRooms(_ context.Context, a, b id.UserID) ([]id.RoomID, error) {
	if f.shared[[2]id.UserID{a, b}] {
		return []id.RoomID{"!shared:hs"}, nil
	}
	return []id.RoomID{}, nil
}

// fakeContract masquerades as the registry says.
type fakeContract struct {
	Contract
	reg *registry.Registry
}

func (f *fakeContract) Masquerade(_ context.Context, asID string, u id.UserID, _ id.DeviceID) (*types.Principal, error) {
	if !f.reg.OwnsUser(asID, u) {
		return nil, types.Forbidden("Application service cannot masquerade as %s", u)
	}
	return &types.Principal{Kind: types.PrincipalAppService, UserID: u, AppServiceID: asID}, nil
}

func testHost(t *testing.T) (*matrixHost, *fakeRooms) {
	t.Helper()
	regs, err := Registrations([]config.Plugin{{Name: "net", GhostPrefix: "net_", BotLocalpart: "netbot"}}, "hs")
	if err != nil {
		t.Fatal(err)
	}
	other := &appservice.Registration{ID: "other", AppToken: "a", ServerToken: "h", SenderLocalpart: "otherbot",
		Namespaces: appservice.Namespaces{UserIDs: []appservice.Namespace{{Regex: "@other_.*:hs", Exclusive: true}}}}
	reg, err := registry.LoadWith(nil, "hs", append(regs, registry.Internal{Source: "test", Reg: other}))
	if err != nil {
		t.Fatal(err)
	}
	rooms := &fakeRooms{shared: map[[2]id.UserID]bool{}}
	accounts := &fakeAccounts{accounts: map[id.UserID]*users.Account{}, suspended: map[id.UserID]bool{}}
	for _, u := range []id.UserID{"@alice:hs", "@stranger:hs", "@gone:hs", "@other_x:hs", "@suspended:hs"} {
		accounts.accounts[u] = &users.Account{UserID: u}
	}
	accounts.accounts["@gone:hs"].Deactivated = true
	accounts.accounts["@other_x:hs"].AppServiceID = "other"
	accounts.suspended["@suspended:hs"] = true
	for _, u := range []id.UserID{"@alice:hs", "@gone:hs", "@other_x:hs", "@suspended:hs", "@remote:elsewhere"} {
		rooms.shared[[2]id.UserID{u, "@netbot:hs"}] = true
	}
	asID := AppServiceID("net")
	h := newMatrixHost(asID, reg.ByID(asID), "hs", HostDeps{Contract: &fakeContract{reg: reg}, Accounts: accounts,
		Rooms: rooms, Exclusive: reg}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	return h, rooms
}

// The host vouches for a local user who uses the bridge (shares a room
// with its bot), and no one else: the plugin may then act as that user,
// restricted as the user is.
func TestDoublePuppetVouching(t *testing.T) {
	h, _ := testHost(t)
	ctx := context.Background()
	for _, tc := range []struct {
		user id.UserID
		ok   bool
	}{
		{"@alice:hs", true},
		{"@stranger:hs", false},      // never talked to the bot
		{"@gone:hs", false},          // deactivated
		{"@other_x:hs", false},       // another appservice's user
		{"@remote:elsewhere", false}, // not a user of this server
		{"@nobody:hs", false},        // no such account
		{"@net_ghost:hs", false},     // the plugin's own ghost: no puppet
		{"@netbot:hs", false},
	} {
		t.Run(string(tc.user), func(t *testing.T) {
			_, err := h.DoublePuppet(ctx, &proto.DoublePuppetRequest{UserId: string(tc.user)})
			if tc.ok && err != nil {
				t.Fatalf("refused: %v", err)
			}
			if !tc.ok && status.Code(err) != codes.PermissionDenied {
				t.Fatalf("got %v, want PERMISSION_DENIED", err)
			}
			_, err = h.act(ctx, string(tc.user))
			owned := h.as.OwnsUser(tc.user)
			if (tc.ok || owned) != (err == nil) {
				t.Fatalf("acting as %s afterwards: %v", tc.user, err)
			}
		})
	}
	// A vouched-for user's principal is an appservice's (so ts counts),
	// restricted as the account is.
	p, err := h.act(ctx, "@alice:hs")
	if err != nil || p.Kind != types.PrincipalAppService || p.AppServiceID != h.asID || p.Suspended {
		t.Fatalf("alice's principal: %+v, %v", p, err)
	}
	if _, err := h.DoublePuppet(ctx, &proto.DoublePuppetRequest{UserId: "@suspended:hs"}); err != nil {
		t.Fatal(err)
	}
	if p, err := h.act(ctx, "@suspended:hs"); err != nil || !p.Suspended {
		t.Fatalf("a suspended user's principal: %+v, %v", p, err)
	}
}

// A bridge state per login, the bridge's own only while no login reports;
// a logged out login is forgotten.
func TestReportBridgeState(t *testing.T) {
	h, _ := testHost(t)
	ctx := context.Background()
	report := func(state, user, remote string) {
		t.Helper()
		if _, err := h.ReportBridgeState(ctx, &proto.BridgeState{StateEvent: state, UserId: user, RemoteId: remote}); err != nil {
			t.Fatal(err)
		}
	}
	states := func() string {
		var s string
		for _, l := range h.loginStates() {
			s += l.UserID + "/" + l.RemoteID + "=" + l.State + " "
		}
		return s
	}
	report("UNCONFIGURED", "", "")
	if got := states(); got != "/=UNCONFIGURED " {
		t.Fatalf("states %q", got)
	}
	report("CONNECTED", "@b:hs", "b1")
	report("CONNECTING", "@a:hs", "a1")
	report("TRANSIENT_DISCONNECT", "@a:hs", "a1")
	if got := states(); got != "@a:hs/a1=TRANSIENT_DISCONNECT @b:hs/b1=CONNECTED " {
		t.Fatalf("states %q", got)
	}
	report("LOGGED_OUT", "@b:hs", "b1")
	if got := states(); got != "@a:hs/a1=TRANSIENT_DISCONNECT " {
		t.Fatalf("states %q", got)
	}
	if _, err := h.ReportBridgeState(ctx, &proto.BridgeState{}); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("an empty state: %v", err)
	}
}

// fakePortals holds the portal rooms an import made.
type fakePortals map[string]*storage.BridgePortal

func (f fakePortals) GetBridgePortal(_ context.Context, network, portalID, receiver string) (*storage.BridgePortal, error) {
	if p := f[network+"/"+portalID+"/"+receiver]; p != nil {
		return p, nil
	}
	return nil, storage.ErrNotFound
}

func (f fakePortals) GetBridgePortalByRoom(_ context.Context, roomID id.RoomID) (*storage.BridgePortal, error) {
	for _, p := range f {
		if p.RoomID == roomID {
			return p, nil
		}
	}
	return nil, storage.ErrNotFound
}

// importedMessages: in !imported, the message T-C-1 of two parts (the
// second one not visible), in !someone-elses the message T-OTHER-1.
var importedMessages = []*storage.BridgeMessage{
	{RoomID: "!imported:hs", MessageID: "T-C-1", PartID: "", EventID: "$text"},
	{RoomID: "!imported:hs", MessageID: "T-C-1", PartID: "file-1-F", EventID: "$file"},
	{RoomID: "!imported:hs", MessageID: "T-C-1", PartID: "file-2-G", EventID: "$purged"},
	{RoomID: "!someone-elses:hs", MessageID: "T-OTHER-1", PartID: "", EventID: "$other"},
	{RoomID: "!imported:hs", MessageID: "T-C-0", PartID: "", EventID: "$root"}, // T-C-1's thread's root
}

// importedReactions: two reactions to T-C-1, the second one redacted.
var importedReactions = []*storage.BridgeMessage{
	{RoomID: "!imported:hs", MessageID: "T-C-1", EventID: "$react", Alias: "$react:alias", SenderID: "t-u2", EmojiID: "tada"},
	{RoomID: "!imported:hs", MessageID: "T-C-1", EventID: "$redacted", SenderID: "t-u3", EmojiID: "tada"},
}

func (fakePortals) BridgeMessageReactions(_ context.Context, roomID id.RoomID, messageID string) ([]*storage.BridgeMessage, error) {
	var out []*storage.BridgeMessage
	for _, m := range importedReactions {
		if m.RoomID == roomID && m.MessageID == messageID {
			out = append(out, m)
		}
	}
	return out, nil
}

func (fakePortals) BridgeMessageOf(_ context.Context, eventID id.EventID) (*storage.BridgeMessage, error) {
	for _, m := range append(importedMessages, importedReactions...) {
		if m.EventID == eventID {
			return m, nil
		}
	}
	return nil, storage.ErrNotFound
}

func (fakePortals) BridgeMessageParts(_ context.Context, roomID id.RoomID, messageID string) ([]*storage.BridgeMessage, error) {
	var out []*storage.BridgeMessage
	for _, m := range importedMessages {
		if m.RoomID == roomID && m.MessageID == messageID {
			out = append(out, m)
		}
	}
	return out, nil
}

// memberRooms answers memberships: the bot is joined to !imported only.
type memberRooms struct{ *fakeRooms }

func (memberRooms) Event(_ context.Context, roomID id.RoomID, _ id.UserID, eventID id.EventID) (*rooms.ClientEvent, error) {
	if eventID == "$purged" {
		return nil, types.NotFound("Event not found")
	}
	ev := &rooms.ClientEvent{EventID: eventID, RoomID: roomID, Sender: "@net_t-u1:hs", OriginServerTS: 1000, Content: []byte(`{}`)}
	if eventID == "$text" {
		ev.Content = []byte(`{"body":"in a thread","m.relates_to":{"rel_type":"m.thread","event_id":"$root"}}`)
	}
	if eventID == "$react" {
		ev.Content = []byte(`{"m.relates_to":{"rel_type":"m.annotation","event_id":"$text","key":"🎉"}}`)
	}
	return ev, nil
}

// FindMessage finds an imported message from any of its events or from
// its key, in a portal room of the plugin's network its bot is in.
func TestFindMessage(t *testing.T) {
	h, rooms := testHost(t)
	ctx := context.Background()
	h.d.Portals = fakePortals{
		"net/T-C/":     {Network: "net", PortalID: "T-C", RoomID: "!imported:hs", Kind: "channel"},
		"net/T-OTHER/": {Network: "net", PortalID: "T-OTHER", RoomID: "!someone-elses:hs", Kind: "channel"},
	}
	h.d.Rooms = memberRooms{rooms}
	for _, req := range []*proto.FindMessageRequest{
		{Network: "net", EventId: "$file"},
		{Network: "net", PortalId: "T-C", MessageId: "T-C-1"},
		{Network: "net", EventId: "$react"}, // a reaction to it
	} {
		resp, err := h.FindMessage(ctx, req)
		if err != nil {
			t.Fatalf("%+v: %v", req, err)
		}
		if resp.PortalId != "T-C" || resp.RoomId != "!imported:hs" || resp.MessageId != "T-C-1" || len(resp.Parts) != 2 ||
			resp.Parts[0].EventId != "$text" || resp.Parts[1].PartId != "file-1-F" || resp.Parts[1].Sender != "@net_t-u1:hs" ||
			resp.Parts[1].Timestamp != 1000 || resp.Parts[0].ThreadRoot != "T-C-0" || resp.Parts[1].ThreadRoot != "" {
			t.Errorf("%+v: %+v", req, resp)
		}
		// The redacted reaction is one too, without its key: a plugin
		// asks about a redaction after it was applied.
		if len(resp.Reactions) != 2 || resp.Reactions[0].EventId != "$react" || resp.Reactions[0].Emoji != "🎉" ||
			resp.Reactions[0].EmojiId != "tada" || resp.Reactions[0].SenderId != "t-u2" || resp.Reactions[0].Alias != "$react:alias" ||
			resp.Reactions[1].EventId != "$redacted" || resp.Reactions[1].Emoji != "" {
			t.Errorf("%+v: reactions %+v", req, resp.Reactions)
		}
	}
	for _, req := range []*proto.FindMessageRequest{
		{Network: "net", EventId: "$unknown"},                    // no import wrote it
		{Network: "other", EventId: "$text"},                     // another network's portal
		{Network: "net", EventId: "$other"},                      // the bot is not in the room
		{Network: "net", PortalId: "T-C", MessageId: "T-C-2"},    // no such message
		{Network: "net", PortalId: "T-NONE", MessageId: "T-C-1"}, // no such portal
		{Network: "net", PortalId: "T-OTHER", MessageId: "T-OTHER-1"},
	} {
		if _, err := h.FindMessage(ctx, req); status.Code(err) != codes.NotFound {
			t.Errorf("%+v: %v, want NOT_FOUND", req, err)
		}
	}
	if _, err := h.FindMessage(ctx, &proto.FindMessageRequest{Network: "net"}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("no message named: %v, want INVALID_ARGUMENT", err)
	}
}

func (memberRooms) Membership(_ context.Context, roomID id.RoomID, user id.UserID) (string, id.EventID, error) {
	if roomID == "!imported:hs" && user == "@netbot:hs" {
		return "join", "$join", nil
	}
	return "leave", "", nil
}

// FindPortal hands a plugin the room an import made for a portal key of
// its network, and only a room its bot is in.
func TestFindPortal(t *testing.T) {
	h, rooms := testHost(t)
	ctx := context.Background()
	if _, err := h.FindPortal(ctx, &proto.FindPortalRequest{Network: "net", PortalId: "T-C"}); status.Code(err) != codes.NotFound {
		t.Fatalf("no portal store: %v, want NOT_FOUND", err)
	}
	h.d.Portals = fakePortals{
		"net/T-C/":     {Network: "net", PortalID: "T-C", RoomID: "!imported:hs", Kind: "channel"},
		"net/T-OTHER/": {Network: "net", PortalID: "T-OTHER", RoomID: "!someone-elses:hs", Kind: "channel"},
	}
	h.d.Rooms = memberRooms{rooms}
	resp, err := h.FindPortal(ctx, &proto.FindPortalRequest{Network: "net", PortalId: "T-C"})
	if err != nil || resp.RoomId != "!imported:hs" || resp.Kind != "channel" {
		t.Fatalf("imported portal: %+v, %v", resp, err)
	}
	for _, req := range []*proto.FindPortalRequest{
		{Network: "net", PortalId: "T-NONE"},                 // never imported
		{Network: "net", PortalId: "T-C", Receiver: "login"}, // another key
		{Network: "other", PortalId: "T-C"},                  // another network
		{Network: "net", PortalId: "T-OTHER"},                // the bot is not in the room
	} {
		if _, err := h.FindPortal(ctx, req); status.Code(err) != codes.NotFound {
			t.Errorf("%+v: %v, want NOT_FOUND", req, err)
		}
	}
}
