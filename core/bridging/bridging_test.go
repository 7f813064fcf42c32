package bridging

import (
	"context"
	"encoding/json/jsontext"
	"errors"
	"testing"

	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/core/events"
	"github.com/tributary-hs/tributary/core/rooms"
	"github.com/tributary-hs/tributary/core/types"
	"github.com/tributary-hs/tributary/core/users"
)

// fake stands in for the registrations, accounts, rooms and receipts: one
// appservice "as" with sender @bot and ghosts @_g…, and what was done.
type fake struct {
	accounts    map[id.UserID]bool
	deactivated map[id.UserID]bool
	devices     map[string]bool // "user|device"
	suspended   map[id.UserID]bool
	locked      map[id.UserID]bool
	members     map[id.UserID]bool // may be marked read
	hasMessage  bool

	sent    []*rooms.SendRequest
	batches []rooms.BatchOptions
	protos  [][]*events.Proto
	marked  []id.EventID
}

func (f *fake) Sender(asID string) id.UserID {
	if asID == "as" {
		return "@bot:hs"
	}
	return ""
}

func (f *fake) OwnsUser(asID string, u id.UserID) bool {
	return asID == "as" && (u == "@bot:hs" || len(u) > 3 && u[:3] == "@_g")
}

func (f *fake) GetAccount(_ context.Context, u id.UserID) (*users.Account, error) {
	if !f.accounts[u] {
		return nil, types.NotFound("No such user")
	}
	return &users.Account{UserID: u, Deactivated: f.deactivated[u]}, nil
}

func (f *fake) GetDevice(_ context.Context, u id.UserID, d id.DeviceID) (*users.Device, error) {
	if !f.devices[string(u)+"|"+string(d)] {
		return nil, types.NotFound("No such device")
	}
	return &users.Device{UserID: u, DeviceID: d}, nil
}

func (f *fake) Restrictions(_ context.Context, u id.UserID) (bool, bool, error) {
	return f.suspended[u], f.locked[u], nil
}

func (f *fake) Send(_ context.Context, req *rooms.SendRequest) (id.EventID, error) {
	f.sent = append(f.sent, req)
	return "$sent", nil
}

func (f *fake) BatchSend(_ context.Context, _ id.RoomID, protos []*events.Proto, opts rooms.BatchOptions) ([]id.EventID, error) {
	f.batches, f.protos = append(f.batches, opts), append(f.protos, protos)
	ids := make([]id.EventID, len(protos))
	for i := range ids {
		ids[i] = id.EventID("$e" + string(rune('0'+i)))
	}
	return ids, nil
}

func (f *fake) HasMessages(context.Context, id.RoomID) (bool, error) { return f.hasMessage, nil }

func (f *fake) CanBeMarkedRead(_ context.Context, _ id.RoomID, u id.UserID) (bool, error) {
	return f.members[u], nil
}

func (f *fake) MarkReadBy(_ context.Context, _ id.RoomID, _ id.UserID, e id.EventID) error {
	f.marked = append(f.marked, e)
	return nil
}

func newFake(t *testing.T) (*fake, *Service) {
	f := &fake{
		accounts: map[id.UserID]bool{"@bot:hs": true, "@_ga:hs": true, "@_gs:hs": true, "@_gl:hs": true,
			"@human:hs": true, "@gone:hs": true, "@held:hs": true},
		deactivated: map[id.UserID]bool{"@gone:hs": true},
		devices:     map[string]bool{"@_ga:hs|DEV": true},
		suspended:   map[id.UserID]bool{"@_gs:hs": true},
		locked:      map[id.UserID]bool{"@_gl:hs": true, "@held:hs": true},
		members:     map[id.UserID]bool{"@human:hs": true},
	}
	s, err := New(Deps{Namespaces: f, Accounts: f, Rooms: f, Receipts: f})
	if err != nil {
		t.Fatal(err)
	}
	return f, s
}

func code(err error) string {
	if err == nil {
		return ""
	}
	if me, ok := types.AsError(err); ok {
		return me.Code
	}
	return err.Error()
}

func TestMasquerade(t *testing.T) {
	for _, tc := range []struct {
		name, as       string
		user, wantUser id.UserID
		device         id.DeviceID
		want           string
		suspended      bool
	}{
		{name: "the sender", as: "as", wantUser: "@bot:hs"},
		{name: "a ghost", as: "as", user: "@_ga:hs", wantUser: "@_ga:hs"},
		{name: "a ghost's device", as: "as", user: "@_ga:hs", device: "DEV", wantUser: "@_ga:hs"},
		{name: "an unknown device", as: "as", user: "@_ga:hs", device: "NOPE", want: types.CodeUnknownDevice},
		{name: "outside the namespace", as: "as", user: "@human:hs", want: types.CodeForbidden},
		{name: "not registered", as: "as", user: "@_gnew:hs", want: types.CodeForbidden},
		{name: "unknown appservice", as: "other", want: types.CodeForbidden},
		{name: "a suspended ghost", as: "as", user: "@_gs:hs", wantUser: "@_gs:hs", suspended: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, s := newFake(t)
			p, err := s.Masquerade(t.Context(), tc.as, tc.user, tc.device)
			if code(err) != tc.want {
				t.Fatalf("error %v, want %s", err, tc.want)
			}
			if err == nil && (p.UserID != tc.wantUser || p.AppServiceID != tc.as || p.DeviceID != tc.device ||
				p.Suspended != tc.suspended) {
				t.Fatalf("principal %+v", p)
			}
		})
	}
}

func TestSendTimestamp(t *testing.T) {
	ghost := &types.Principal{Kind: types.PrincipalAppService, UserID: "@_ga:hs", AppServiceID: "as"}
	for _, tc := range []struct {
		name   string
		caller *types.Principal
		ts     int64
		want   string
		wantTS int64
	}{
		{name: "an appservice sets it", caller: ghost, ts: 1234, wantTS: 1234},
		{name: "an appservice without", caller: ghost},
		{name: "an appservice's invalid ts", caller: ghost, ts: -1, want: types.CodeInvalidParam},
		{name: "a user's is ignored", caller: &types.Principal{Kind: types.PrincipalUser, UserID: "@human:hs"}, ts: 1234},
		{name: "a user's invalid one too", caller: &types.Principal{Kind: types.PrincipalUser, UserID: "@human:hs"}, ts: -1},
		{name: "suspended", caller: &types.Principal{Kind: types.PrincipalAppService, UserID: "@_gs:hs", AppServiceID: "as", Suspended: true},
			want: types.CodeUserSuspended},
		{name: "locked", caller: &types.Principal{Kind: types.PrincipalUser, UserID: "@h:hs", Locked: true}, want: types.CodeUserLocked},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, s := newFake(t)
			_, err := s.Send(t.Context(), tc.caller, SendRequest{RoomID: "!r:hs", Type: "m.room.message",
				Content: jsontext.Value(`{}`), Timestamp: tc.ts})
			if code(err) != tc.want {
				t.Fatalf("error %v, want %s", err, tc.want)
			}
			if err != nil {
				if len(f.sent) != 0 {
					t.Fatal("refused, yet sent")
				}
				return
			}
			if got := f.sent[0]; got.Timestamp != tc.wantTS || got.Sender != tc.caller.UserID {
				t.Fatalf("sent %+v", got)
			}
		})
	}
}

func TestBatchSend(t *testing.T) {
	msg := func(sender id.UserID) *BatchEvent {
		return &BatchEvent{Type: "m.room.message", Sender: sender, Content: jsontext.Value(`{"body":"x"}`)}
	}
	for _, tc := range []struct {
		name        string
		as          string
		req         BatchRequest
		hasMessages bool
		want        string
		history     bool
		marked      int
	}{
		{name: "forward", as: "as", req: BatchRequest{Forward: true, Events: []*BatchEvent{msg("@_ga:hs")}}},
		{name: "backward", as: "as", req: BatchRequest{Events: []*BatchEvent{msg("@_ga:hs")}}, history: true},
		{name: "forward if no messages, none", as: "as", req: BatchRequest{ForwardIfNoMessages: true,
			Events: []*BatchEvent{msg("@_ga:hs")}}},
		{name: "forward if no messages, some", as: "as", hasMessages: true, req: BatchRequest{ForwardIfNoMessages: true,
			Events: []*BatchEvent{msg("@_ga:hs")}}, history: true},
		{name: "mark_read_by", as: "as", req: BatchRequest{Forward: true, MarkReadBy: "@human:hs",
			Events: []*BatchEvent{msg("@_ga:hs"), msg("@bot:hs")}}, marked: 1},
		{name: "mark_read_by not in the room", as: "as", req: BatchRequest{Forward: true, MarkReadBy: "@other:hs",
			Events: []*BatchEvent{msg("@_ga:hs")}}, want: types.CodeForbidden},
		{name: "not an appservice", req: BatchRequest{Forward: true, Events: []*BatchEvent{msg("@_ga:hs")}},
			want: types.CodeForbidden},
		{name: "outside the namespace", as: "as", req: BatchRequest{Forward: true,
			Events: []*BatchEvent{msg("@_ga:hs"), msg("@human:hs")}}, want: types.CodeForbidden},
		{name: "a suspended sender", as: "as", req: BatchRequest{Forward: true,
			Events: []*BatchEvent{msg("@_ga:hs"), msg("@_gs:hs")}}, want: types.CodeUserSuspended},
		{name: "a locked sender", as: "as", req: BatchRequest{Forward: true, Events: []*BatchEvent{msg("@_gl:hs")}},
			want: types.CodeUserLocked},
		{name: "no sender", as: "as", req: BatchRequest{Forward: true, Events: []*BatchEvent{{Type: "m.room.message"}}},
			want: types.CodeBadJSON},
		{name: "content not an object", as: "as", req: BatchRequest{Forward: true, Events: []*BatchEvent{{
			Type: "m.room.message", Sender: "@_ga:hs", Content: jsontext.Value(`[]`)}}}, want: types.CodeBadJSON},
		{name: "negative timestamp", as: "as", req: BatchRequest{Forward: true, Events: []*BatchEvent{{
			Type: "m.room.message", Sender: "@_ga:hs", Content: jsontext.Value(`{}`), OriginServerTS: -1}}},
			want: types.CodeInvalidParam},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, s := newFake(t)
			f.hasMessage = tc.hasMessages
			ids, err := s.BatchSend(t.Context(), tc.as, "!r:hs", &tc.req)
			if code(err) != tc.want {
				t.Fatalf("error %v, want %s", err, tc.want)
			}
			if err != nil {
				var me *types.Error
				if len(f.batches) != 0 || len(f.marked) != 0 || !errors.As(err, &me) || me.Status != 403 && me.Status != 400 {
					t.Fatalf("refused (%v), yet batch %v marked %v", err, f.batches, f.marked)
				}
				return
			}
			if len(ids) != len(tc.req.Events) || f.batches[0].History != tc.history || len(f.marked) != tc.marked {
				t.Fatalf("ids %v, options %+v, marked %v", ids, f.batches[0], f.marked)
			}
			if tc.marked > 0 && f.marked[0] != ids[len(ids)-1] {
				t.Fatalf("marked %s, not the last event %s", f.marked[0], ids[len(ids)-1])
			}
		})
	}
}

// An import may speak for local people outside the namespace (those it maps
// Slack users to), never for unknown or deactivated accounts; batch send
// over HTTP still may not.
func TestImport(t *testing.T) {
	msg := func(sender id.UserID) *BatchEvent {
		return &BatchEvent{Type: "m.room.message", Sender: sender, Content: jsontext.Value(`{"body":"x"}`)}
	}
	for _, tc := range []struct {
		name string
		as   string
		evs  []*BatchEvent
		want string
	}{
		{name: "a ghost and a local person", as: "as", evs: []*BatchEvent{msg("@_ga:hs"), msg("@human:hs"), msg("@human:hs")}},
		{name: "an unknown account", as: "as", evs: []*BatchEvent{msg("@_ga:hs"), msg("@nobody:hs")}, want: types.CodeForbidden},
		{name: "a deactivated account", as: "as", evs: []*BatchEvent{msg("@gone:hs")}, want: types.CodeForbidden},
		{name: "a locked account", as: "as", evs: []*BatchEvent{msg("@held:hs")}, want: types.CodeUserLocked},
		{name: "no appservice", evs: []*BatchEvent{msg("@_ga:hs")}, want: types.CodeForbidden},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, s := newFake(t)
			ids, err := s.Import(t.Context(), tc.as, "!r:hs", tc.evs)
			if code(err) != tc.want {
				t.Fatalf("error %v, want %s", err, tc.want)
			}
			if err != nil {
				if len(f.batches) != 0 {
					t.Fatal("refused, yet sent")
				}
				return
			}
			if len(ids) != len(tc.evs) || f.batches[0].History || f.batches[0].Notify {
				t.Fatalf("ids %v, options %+v", ids, f.batches[0])
			}
		})
	}
	_, s := newFake(t)
	if _, err := s.BatchSend(t.Context(), "as", "!r:hs", &BatchRequest{Forward: true,
		Events: []*BatchEvent{msg("@human:hs")}}); code(err) != types.CodeForbidden {
		t.Fatalf("batch send as a local person outside the namespace: %v", err)
	}
}
