package rooms

import (
	"context"
	"encoding/json/jsontext"
	"encoding/json/v2"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tidwall/gjson"
	"github.com/tidwall/sjson"
	"maunium.net/go/mautrix/federation"
	"maunium.net/go/mautrix/federation/pdu"
	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/core/events"
	"github.com/tributary-hs/tributary/core/state"
	"github.com/tributary-hs/tributary/storage"
	"github.com/tributary-hs/tributary/storage/sqlite"
)

// testKeyRing knows the keys of the signers it holds.
type testKeyRing map[string]*events.Signer

func (k testKeyRing) ServerKey(_ context.Context, server string, keyID id.KeyID, _ time.Time) (id.SigningKey, time.Time, error) {
	if sg := k[server]; sg != nil && sg.KeyID == keyID {
		return sg.Public(), time.Now().Add(time.Hour), nil
	}
	return "", time.Time{}, fmt.Errorf("no key %s for %s", keyID, server)
}

// fakeRemote counts calls: the intake must not fetch anything yet.
type fakeRemote struct{ calls atomic.Int32 }

var _ RemoteRooms = (*fakeRemote)(nil)

var errFake = errors.New("fake remote: not implemented")

func (f *fakeRemote) Event(context.Context, string, id.EventID) (jsontext.Value, error) {
	f.calls.Add(1)
	return nil, errFake
}
func (f *fakeRemote) MissingEvents(context.Context, string, id.RoomID, []id.EventID, []id.EventID, int, int64) ([]jsontext.Value, error) {
	f.calls.Add(1)
	return nil, errFake
}
func (f *fakeRemote) StateAt(context.Context, string, id.RoomID, id.EventID) (*RemoteState, error) {
	f.calls.Add(1)
	return nil, errFake
}
func (f *fakeRemote) AuthChain(context.Context, string, id.RoomID, id.EventID) ([]jsontext.Value, error) {
	f.calls.Add(1)
	return nil, errFake
}
func (f *fakeRemote) MakeJoin(context.Context, string, id.RoomID, id.UserID, []id.RoomVersion) (id.RoomVersion, jsontext.Value, error) {
	f.calls.Add(1)
	return "", nil, errFake
}
func (f *fakeRemote) SendJoin(context.Context, string, id.RoomID, id.EventID, jsontext.Value) (*RemoteJoin, error) {
	f.calls.Add(1)
	return nil, errFake
}
func (f *fakeRemote) StateIDs(context.Context, string, id.RoomID, id.EventID) ([]id.EventID, []id.EventID, error) {
	f.calls.Add(1)
	return nil, nil, errFake
}
func (f *fakeRemote) Backfill(context.Context, string, id.RoomID, []id.EventID, int) ([]jsontext.Value, error) {
	f.calls.Add(1)
	return nil, errFake
}
func (f *fakeRemote) MakeLeave(context.Context, string, id.RoomID, id.UserID) (id.RoomVersion, jsontext.Value, error) {
	f.calls.Add(1)
	return "", nil, errFake
}
func (f *fakeRemote) SendLeave(context.Context, string, id.RoomID, id.EventID, jsontext.Value) error {
	f.calls.Add(1)
	return errFake
}
func (f *fakeRemote) MakeKnock(context.Context, string, id.RoomID, id.UserID, []id.RoomVersion) (id.RoomVersion, jsontext.Value, error) {
	f.calls.Add(1)
	return "", nil, errFake
}
func (f *fakeRemote) SendKnock(context.Context, string, id.RoomID, id.EventID, jsontext.Value) ([]jsontext.Value, error) {
	f.calls.Add(1)
	return nil, errFake
}
func (f *fakeRemote) Invite(context.Context, string, id.RoomID, id.EventID, id.RoomVersion, jsontext.Value, []jsontext.Value) (jsontext.Value, error) {
	f.calls.Add(1)
	return nil, errFake
}
func (f *fakeRemote) QueryAlias(context.Context, id.RoomAlias) (id.RoomID, []string, error) {
	f.calls.Add(1)
	return "", nil, errFake
}

const (
	alice = id.UserID("@alice:example.org")
	rita  = id.UserID("@rita:remote.example")
)

// intakeRoom is a public room of example.org, created by alice, that
// events of remote.example (signed with its own key) arrive in.
type intakeRoom struct {
	t      *testing.T
	ctx    context.Context
	s      *Service
	store  storage.Store
	remote *events.Signer
	fake   *fakeRemote
	roomID id.RoomID
	rv     id.RoomVersion
}

func newIntakeRoom(t *testing.T, rv id.RoomVersion, opts ...func(*Options)) *intakeRoom {
	t.Helper()
	ctx := context.Background()
	store, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "rooms.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	local := events.NewSigner("example.org", federation.GenerateSigningKey())
	remote := events.NewSigner("remote.example", federation.GenerateSigningKey())
	fake := &fakeRemote{}
	o := Options{ServerName: "example.org", Signer: local, KeyRing: testKeyRing{"remote.example": remote}, Remote: fake}
	for _, f := range opts {
		f(&o)
	}
	s, err := New(store, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	roomID, err := s.CreateRoom(ctx, &CreateRequest{Creator: alice, Preset: "public_chat", RoomVersion: rv})
	if err != nil {
		t.Fatal(err)
	}
	return &intakeRoom{t: t, ctx: ctx, s: s, store: store, remote: remote, fake: fake, roomID: roomID, rv: rv}
}

// extremities are the room's stored forward extremities.
func (r *intakeRoom) extremities() []id.EventID {
	r.t.Helper()
	ext, err := r.store.GetForwardExtremities(r.ctx, r.roomID)
	if err != nil {
		r.t.Fatal(err)
	}
	out := slices.Clone(ext)
	slices.Sort(out)
	return out
}

// stateAt is the state after a stored event.
func (r *intakeRoom) stateAt(eid id.EventID) state.Map {
	r.t.Helper()
	e, err := r.store.GetEvent(r.ctx, eid)
	if err != nil {
		r.t.Fatal(err)
	}
	m, err := r.s.stateMap(r.ctx, e.StateGroup)
	if err != nil {
		r.t.Fatal(err)
	}
	return m
}

// build signs an event of remote.example on prev, with the auth events
// the selection picks from authState (default: the state after prev[0]).
func (r *intakeRoom) build(p *events.Proto, prev []id.EventID, authState state.Map) (*pdu.PDU, []byte) {
	r.t.Helper()
	if authState == nil {
		authState = r.stateAt(prev[0])
	}
	content, err := json.Marshal(p.Content)
	if err != nil {
		r.t.Fatal(err)
	}
	probe := &pdu.PDU{Type: p.Type, StateKey: p.StateKey, Sender: p.Sender, Content: content}
	var auth []id.EventID
	for _, k := range probe.AuthEventSelection(r.rv) {
		if eid := authState[k]; eid != "" {
			auth = append(auth, eid)
		}
	}
	var depth int64
	evs, err := r.store.GetEvents(r.ctx, prev)
	if err != nil {
		r.t.Fatal(err)
	}
	for _, e := range evs {
		depth = max(depth, e.Depth)
	}
	if p.OriginServerTS == 0 {
		p.OriginServerTS = time.Now().UnixMilli()
	}
	refs := func(ids []id.EventID) ([]pdu.V1EventReference, error) {
		rs, err := r.s.loadRoomState(r.ctx, r.roomID)
		if err != nil {
			return nil, err
		}
		return r.s.references(r.ctx, newBatch(rs), ids)
	}
	ev, raw, err := r.remote.Build(r.rv, r.roomID, p, prev, auth, depth+1, refs)
	if err != nil {
		r.t.Fatal(err)
	}
	return ev, raw
}

func (r *intakeRoom) intake(raw []byte) (*IntakeResult, error) {
	return r.s.Intake(r.ctx, "remote.example", raw)
}

// mustIntake takes an event that must end with status.
func (r *intakeRoom) mustIntake(raw []byte, status IntakeStatus) *IntakeResult {
	r.t.Helper()
	res, err := r.intake(raw)
	if err != nil {
		r.t.Fatalf("intake: %v", err)
	}
	if res.Status != status {
		r.t.Fatalf("intake: %s (%v), want %s", res.Status, res.Reason, status)
	}
	return res
}

// joinRita lets rita join through remote.example; it returns her join.
func (r *intakeRoom) joinRita() id.EventID {
	r.t.Helper()
	sk := string(rita)
	ev, raw := r.build(&events.Proto{Type: "m.room.member", StateKey: &sk, Sender: rita,
		Content: map[string]any{"membership": "join", "displayname": "Rita"}}, r.extremities(), nil)
	r.mustIntake(raw, IntakeAccepted)
	return ev.InternalMeta.EventID
}

func (r *intakeRoom) message(sender id.UserID, body string, prev []id.EventID, authState state.Map) (*pdu.PDU, []byte) {
	return r.build(&events.Proto{Type: "m.room.message", Sender: sender,
		Content: map[string]any{"msgtype": "m.text", "body": body}}, prev, authState)
}

// sendLocal sends a message of alice and returns its prev events.
func (r *intakeRoom) sendLocal(body string) []id.EventID {
	r.t.Helper()
	eid, err := r.s.Send(r.ctx, &SendRequest{RoomID: r.roomID, Sender: alice, Type: "m.room.message",
		Content: []byte(`{"msgtype":"m.text","body":"` + body + `"}`)})
	if err != nil {
		r.t.Fatal(err)
	}
	ps, err := r.s.loadPDUs(r.ctx, []id.EventID{eid})
	if err != nil || ps[0] == nil {
		r.t.Fatal(err)
	}
	prev := slices.Clone(ps[0].PrevEvents)
	slices.Sort(prev)
	return prev
}

// timeline lists the events alice is served by /messages.
func (r *intakeRoom) timeline() []id.EventID {
	r.t.Helper()
	page, err := r.s.Messages(r.ctx, &MessagesRequest{RoomID: r.roomID, User: alice, Backwards: true, Limit: 100})
	if err != nil {
		r.t.Fatal(err)
	}
	var out []id.EventID
	for _, ev := range page.Chunk {
		out = append(out, ev.EventID)
	}
	return out
}

func (r *intakeRoom) stored(eid id.EventID) *storage.Event {
	r.t.Helper()
	e, err := r.store.GetEvent(r.ctx, eid)
	if err != nil {
		r.t.Fatalf("event %s: %v", eid, err)
	}
	return e
}

func (r *intakeRoom) notStored(eid id.EventID) {
	r.t.Helper()
	if _, err := r.store.GetEvent(r.ctx, eid); !errors.Is(err, storage.ErrNotFound) {
		r.t.Fatalf("event %s stored (%v)", eid, err)
	}
}

// currentMember is the event holding user's membership in the current state.
func (r *intakeRoom) currentMember(user id.UserID) id.EventID {
	r.t.Helper()
	eid, err := r.store.CurrentStateEvent(r.ctx, r.roomID, "m.room.member", string(user))
	if err != nil {
		r.t.Fatal(err)
	}
	return eid
}

func sorted(ids ...id.EventID) []id.EventID {
	out := slices.Clone(ids)
	slices.Sort(out)
	return out
}

// The checks on receipt of a PDU (server-server API), with events of a
// remote server built by hand.
func TestIntake(t *testing.T) {
	t.Run("remote join passes auth", func(t *testing.T) {
		r := newIntakeRoom(t, events.DefaultRoomVersion)
		join := r.joinRita()
		if got := r.extremities(); !slices.Equal(got, []id.EventID{join}) {
			t.Fatalf("extremities %v, want the join", got)
		}
		if got := r.currentMember(rita); got != join {
			t.Fatalf("rita's current membership is %s, want %s", got, join)
		}
		members, err := r.store.RoomMembers(r.ctx, r.roomID, []string{"join"})
		if err != nil {
			t.Fatal(err)
		}
		if !slices.ContainsFunc(members, func(m storage.CurrentMember) bool { return m.UserID == rita }) {
			t.Fatalf("rita not among the joined members %v", members)
		}
		// Offered again (a retried transaction): known, nothing changes.
		raw := r.stored(join).JSON
		res := r.mustIntake(raw, IntakeAccepted)
		if !res.Known || res.EventID != join {
			t.Fatalf("second intake: %+v", res)
		}
	})

	t.Run("accepted message becomes the extremity and the next local event cites it", func(t *testing.T) {
		r := newIntakeRoom(t, events.DefaultRoomVersion)
		r.joinRita()
		msg, raw := r.message(rita, "hello from afar", r.extremities(), nil)
		res := r.mustIntake(raw, IntakeAccepted)
		eid := msg.InternalMeta.EventID
		if res.EventID != eid || res.Redacted || res.Known {
			t.Fatalf("result %+v", res)
		}
		if got := r.extremities(); !slices.Equal(got, []id.EventID{eid}) {
			t.Fatalf("extremities %v, want the message", got)
		}
		if !slices.Contains(r.timeline(), eid) {
			t.Fatal("the message is not in /messages")
		}
		if prev := r.sendLocal("hello back"); !slices.Equal(prev, []id.EventID{eid}) {
			t.Fatalf("local event after it has prev_events %v, want %s", prev, eid)
		}
		if r.fake.calls.Load() != 0 {
			t.Fatal("the intake called RemoteRooms")
		}
	})

	t.Run("control characters pass the hash and signature checks", func(t *testing.T) {
		r := newIntakeRoom(t, events.DefaultRoomVersion)
		r.joinRita()
		var body strings.Builder
		for c := rune(0); c < 0x20; c++ {
			body.WriteRune(c)
		}
		body.WriteString("\u007f\u0085\u2028\u2029😀")
		msg, raw := r.message(rita, body.String(), r.extremities(), nil)
		res := r.mustIntake(raw, IntakeAccepted)
		if res.Redacted || res.EventID != msg.InternalMeta.EventID {
			t.Fatalf("result %+v, want the event accepted as it is", res)
		}
		if got := gjson.GetBytes(r.stored(res.EventID).JSON, "content.body").Str; got != body.String() {
			t.Fatalf("stored body %q", got)
		}
	})

	t.Run("bad signature is dropped", func(t *testing.T) {
		r := newIntakeRoom(t, events.DefaultRoomVersion)
		r.joinRita()
		before := r.extremities()
		_, raw := r.message(rita, "forged", r.extremities(), nil)
		// origin_server_ts is covered by the signature (and the event ID).
		forged, err := sjson.SetBytes(raw, "origin_server_ts", gjson.GetBytes(raw, "origin_server_ts").Int()+1)
		if err != nil {
			t.Fatal(err)
		}
		_, err = r.intake(forged)
		var dropped *DroppedError
		if !errors.As(err, &dropped) || dropped.Check != "signature" || !errors.Is(err, ErrDropped) {
			t.Fatalf("forged event: %v, want dropped for its signature", err)
		}
		r.notStored(dropped.EventID)
		if got := r.extremities(); !slices.Equal(got, before) {
			t.Fatalf("extremities moved to %v", got)
		}
	})

	t.Run("not a valid event of its room version is dropped", func(t *testing.T) {
		r := newIntakeRoom(t, events.DefaultRoomVersion)
		r.joinRita()
		// Room v6 on, canonical JSON has no fractions (which Build refuses
		// to sign: the float is added after, and the format check comes
		// before the signature's).
		_, raw := r.message(rita, "pi", r.extremities(), nil)
		raw, err := sjson.SetRawBytes(raw, "content.approx", []byte("3.14"))
		if err != nil {
			t.Fatal(err)
		}
		_, err = r.intake(raw)
		var dropped *DroppedError
		if !errors.As(err, &dropped) || dropped.Check != "format" {
			t.Fatalf("event with a float: %v, want dropped as invalid", err)
		}
		// A room this server does not know has no version to check with.
		_, raw = r.message(rita, "elsewhere", r.extremities(), nil)
		raw, _ = sjson.SetBytes(raw, "room_id", "!elsewhere:remote.example")
		if _, err := r.intake(raw); !errors.As(err, &dropped) || dropped.Check != "format" {
			t.Fatalf("event of an unknown room: %v, want dropped", err)
		}
	})

	t.Run("signature with an unknown key is dropped", func(t *testing.T) {
		r := newIntakeRoom(t, events.DefaultRoomVersion)
		r.joinRita()
		// Signed by a key of remote.example the key ring does not know.
		r.remote = events.NewSigner("remote.example", federation.GenerateSigningKey())
		msg, raw := r.message(rita, "who signed this?", r.extremities(), nil)
		_, err := r.intake(raw)
		var dropped *DroppedError
		if !errors.As(err, &dropped) || dropped.Check != "signature" {
			t.Fatalf("event signed with an unknown key: %v, want dropped", err)
		}
		r.notStored(msg.InternalMeta.EventID)
	})

	t.Run("bad content hash is redacted, then checked", func(t *testing.T) {
		r := newIntakeRoom(t, events.DefaultRoomVersion)
		r.joinRita()
		msg, raw := r.message(rita, "original", r.extremities(), nil)
		// A message's content is outside what is signed: the signature
		// holds, the content hash does not.
		tampered, err := sjson.SetBytes(raw, "content.body", "tampered")
		if err != nil {
			t.Fatal(err)
		}
		res := r.mustIntake(tampered, IntakeAccepted)
		eid := msg.InternalMeta.EventID
		if !res.Redacted || res.EventID != eid {
			t.Fatalf("result %+v, want the event redacted under its own ID", res)
		}
		if c := gjson.GetBytes(r.stored(eid).JSON, "content").Raw; c != "{}" {
			t.Fatalf("stored content %s, want the redacted {}", c)
		}
		if got := r.extremities(); !slices.Equal(got, []id.EventID{eid}) {
			t.Fatalf("extremities %v", got)
		}
	})

	t.Run("fails its own auth events: rejected", func(t *testing.T) {
		r := newIntakeRoom(t, events.DefaultRoomVersion)
		before := r.extremities()
		// Mallory never joined: her auth events hold no membership of hers.
		mallory := id.UserID("@mallory:remote.example")
		msg, raw := r.message(mallory, "let me in", before, nil)
		res := r.mustIntake(raw, IntakeRejected)
		if !isAuthFailure(res.Reason) {
			t.Fatalf("reason %v, want an auth failure", res.Reason)
		}
		eid := msg.InternalMeta.EventID
		if e := r.stored(eid); !e.Rejected || e.SoftFailed {
			t.Fatalf("stored rejected=%v soft_failed=%v", e.Rejected, e.SoftFailed)
		}
		if got := r.extremities(); !slices.Equal(got, before) {
			t.Fatalf("extremities %v, want %v", got, before)
		}
		if slices.Contains(r.timeline(), eid) {
			t.Fatal("a rejected event is in /messages")
		}
		if _, err := r.s.Event(r.ctx, r.roomID, alice, eid); err == nil {
			t.Fatal("a rejected event is served")
		}
		if prev := r.sendLocal("after"); !slices.Equal(prev, before) {
			t.Fatalf("local event cites %v, want %v", prev, before)
		}
	})

	t.Run("passes its auth events but not the state before it: rejected", func(t *testing.T) {
		r := newIntakeRoom(t, events.DefaultRoomVersion)
		join := r.joinRita()
		ban, err := r.s.ChangeMembership(r.ctx, &MembershipRequest{RoomID: r.roomID, Sender: alice, Target: rita, Membership: "ban"})
		if err != nil {
			t.Fatal(err)
		}
		// rita's server knows of the ban (it is the prev event) but cites
		// her join as auth event.
		msg, raw := r.message(rita, "banned, still talking", []id.EventID{ban}, r.stateAt(join))
		if !slices.Contains(msg.AuthEvents, join) {
			t.Fatalf("auth events %v lack the join", msg.AuthEvents)
		}
		res := r.mustIntake(raw, IntakeRejected)
		if !isAuthFailure(res.Reason) {
			t.Fatalf("reason %v", res.Reason)
		}
		eid := msg.InternalMeta.EventID
		if !r.stored(eid).Rejected {
			t.Fatal("not stored as rejected")
		}
		if got := r.extremities(); !slices.Equal(got, []id.EventID{ban}) {
			t.Fatalf("extremities %v, want the ban", got)
		}
		if slices.Contains(r.timeline(), eid) {
			t.Fatal("a rejected event is in /messages")
		}
	})

	t.Run("passes the state before it but not the current state: soft-failed", func(t *testing.T) {
		r := newIntakeRoom(t, events.DefaultRoomVersion)
		join := r.joinRita()
		ban, err := r.s.ChangeMembership(r.ctx, &MembershipRequest{RoomID: r.roomID, Sender: alice, Target: rita, Membership: "ban"})
		if err != nil {
			t.Fatal(err)
		}
		// Built on the graph before the ban: a ban evasion, or a delay.
		msg, raw := r.message(rita, "from before the ban", []id.EventID{join}, nil)
		res := r.mustIntake(raw, IntakeSoftFailed)
		if !isAuthFailure(res.Reason) {
			t.Fatalf("reason %v", res.Reason)
		}
		eid := msg.InternalMeta.EventID
		if e := r.stored(eid); !e.SoftFailed || e.Rejected {
			t.Fatalf("stored rejected=%v soft_failed=%v", e.Rejected, e.SoftFailed)
		}
		if got := r.extremities(); !slices.Equal(got, []id.EventID{ban}) {
			t.Fatalf("extremities %v, want only the ban", got)
		}
		if slices.Contains(r.timeline(), eid) {
			t.Fatal("a soft-failed event is in /messages")
		}
		if _, err := r.s.Event(r.ctx, r.roomID, alice, eid); err == nil {
			t.Fatal("a soft-failed event is served")
		}
		if prev := r.sendLocal("after"); !slices.Equal(prev, []id.EventID{ban}) {
			t.Fatalf("local event cites %v, want only the ban", prev)
		}
	})

	t.Run("two concurrent remote events on the same prev fork the room", func(t *testing.T) {
		r := newIntakeRoom(t, events.DefaultRoomVersion)
		r.joinRita()
		base := r.extremities()
		m1, raw1 := r.message(rita, "one", base, nil)
		sk := string(rita)
		m2, raw2 := r.build(&events.Proto{Type: "m.room.member", StateKey: &sk, Sender: rita,
			Content: map[string]any{"membership": "join", "displayname": "Rita, renamed"}}, base, nil)
		var wg sync.WaitGroup
		errs := make([]error, 2)
		for i, raw := range [][]byte{raw1, raw2} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				res, err := r.intake(raw)
				if err == nil && res.Status != IntakeAccepted {
					err = fmt.Errorf("%s: %v", res.Status, res.Reason)
				}
				errs[i] = err
			}()
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			t.Fatal(err)
		}
		want := sorted(m1.InternalMeta.EventID, m2.InternalMeta.EventID)
		if got := r.extremities(); !slices.Equal(got, want) {
			t.Fatalf("extremities %v, want both %v", got, want)
		}
		// The current state is the resolution of both branches: the
		// rename is in it whichever came first.
		if got := r.currentMember(rita); got != m2.InternalMeta.EventID {
			t.Fatalf("rita's current membership %s, want the rename %s", got, m2.InternalMeta.EventID)
		}
		if prev := r.sendLocal("after the fork"); !slices.Equal(prev, want) {
			t.Fatalf("local event cites %v, want both %v", prev, want)
		}
	})

	t.Run("unknown prev events: typed error, nothing stored", func(t *testing.T) {
		r := newIntakeRoom(t, events.DefaultRoomVersion)
		r.joinRita()
		before := r.extremities()
		unknown := id.EventID("$" + strings.Repeat("A", 43))
		msg, raw := r.message(rita, "after something you missed", []id.EventID{unknown}, r.stateAt(before[0]))
		_, err := r.intake(raw)
		var missing *MissingEventsError
		if !errors.As(err, &missing) || !errors.Is(err, ErrMissingEvents) {
			t.Fatalf("intake: %v, want missing events", err)
		}
		if !slices.Equal(missing.Prev, []id.EventID{unknown}) || len(missing.Auth) != 0 ||
			missing.Origin != "remote.example" || missing.EventID != msg.InternalMeta.EventID {
			t.Fatalf("missing %+v", missing)
		}
		r.notStored(msg.InternalMeta.EventID)
		if got := r.extremities(); !slices.Equal(got, before) {
			t.Fatalf("extremities %v", got)
		}
		if r.fake.calls.Load() != 0 {
			t.Fatal("the intake called RemoteRooms")
		}
	})

	t.Run("remote redactions apply under the rules of room v3 on", func(t *testing.T) {
		r := newIntakeRoom(t, events.DefaultRoomVersion)
		r.joinRita()
		own, raw := r.message(rita, "oops", r.extremities(), nil)
		r.mustIntake(raw, IntakeAccepted)
		aliceMsg, err := r.s.Send(r.ctx, &SendRequest{RoomID: r.roomID, Sender: alice, Type: "m.room.message",
			Content: []byte(`{"msgtype":"m.text","body":"mine"}`)})
		if err != nil {
			t.Fatal(err)
		}
		redact := func(target id.EventID) id.EventID {
			ev, raw := r.build(&events.Proto{Type: "m.room.redaction", Sender: rita,
				Content: map[string]any{"redacts": target}}, r.extremities(), nil)
			r.mustIntake(raw, IntakeAccepted) // the auth rules allow any redaction
			return ev.InternalMeta.EventID
		}
		// Her server sent the target: it applies.
		if red := redact(own.InternalMeta.EventID); r.stored(own.InternalMeta.EventID).RedactedBy != red {
			t.Fatal("rita's redaction of her own message did not apply")
		}
		// Another server's event, without the redact level: it does not.
		redact(aliceMsg)
		if by := r.stored(aliceMsg).RedactedBy; by != "" {
			t.Fatalf("rita redacted alice's message (%s)", by)
		}
	})

	t.Run("room v2: legacy format, signed by the event ID's server too", func(t *testing.T) {
		r := newIntakeRoom(t, id.RoomV2)
		join := r.joinRita()
		msg, raw := r.message(rita, "old school", []id.EventID{join}, nil)
		if !strings.HasSuffix(string(msg.InternalMeta.EventID), ":remote.example") {
			t.Fatalf("event ID %s", msg.InternalMeta.EventID)
		}
		r.mustIntake(raw, IntakeAccepted)
		if prev := r.sendLocal("reply"); !slices.Equal(prev, []id.EventID{msg.InternalMeta.EventID}) {
			t.Fatalf("local event cites %v", prev)
		}
	})
}
