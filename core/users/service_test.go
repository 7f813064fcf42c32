package users

import (
	"context"
	"encoding/json"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/tributary-hs/tributary/core/stream"
	"github.com/tributary-hs/tributary/core/types"
	"github.com/tributary-hs/tributary/storage/sqlite"
)

// clock is a settable time source for expiry tests.
type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func newTestService(t *testing.T, opts Options) (*Service, *clock) {
	t.Helper()
	store, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "t.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	c := &clock{t: time.UnixMilli(1_700_000_000_000)}
	opts.ServerName = "example.org"
	opts.Now = c.now
	if opts.AccessTokenLifetime == 0 {
		opts.AccessTokenLifetime = 5 * time.Minute
	}
	if opts.LoginTokenLifetime == 0 {
		opts.LoginTokenLifetime = 2 * time.Minute
	}
	if opts.UIASessionLifetime == 0 {
		opts.UIASessionLifetime = 15 * time.Minute
	}
	s, err := New(store, opts)
	if err != nil {
		t.Fatal(err)
	}
	return s, c
}

func wantCode(t *testing.T, err error, status int, code string) *types.Error {
	t.Helper()
	me, ok := types.AsError(err)
	if !ok {
		t.Fatalf("got %v, want Matrix error %s", err, code)
	}
	if me.Status != status || me.Code != code {
		t.Fatalf("got %d %s (%s), want %d %s", me.Status, me.Code, me.Message, status, code)
	}
	return me
}

func login(t *testing.T, s *Service, user, pw string, refresh bool) *Session {
	t.Helper()
	sess, err := s.Login(context.Background(), &LoginRequest{Type: "m.login.password",
		Identifier: &Identifier{Type: "m.id.user", User: user}, Password: pw,
		Device: DeviceRequest{WantRefresh: refresh}})
	if err != nil {
		t.Fatal(err)
	}
	return sess
}

func TestExpiredAccessTokenIsSoftLogout(t *testing.T) {
	s, c := newTestService(t, Options{})
	ctx := context.Background()
	if _, err := s.CreateUser(ctx, "alice", "password1", false); err != nil {
		t.Fatal(err)
	}
	sess := login(t, s, "alice", "password1", true)
	if sess.ExpiresInMS != (5*time.Minute).Milliseconds() || sess.RefreshToken == "" {
		t.Fatalf("refresh login: %+v", sess)
	}
	if _, err := s.Authenticate(ctx, sess.AccessToken, ""); err != nil {
		t.Fatal(err)
	}
	c.t = c.t.Add(5 * time.Minute)
	me := wantCode(t, func() error { _, err := s.Authenticate(ctx, sess.AccessToken, ""); return err }(),
		http.StatusUnauthorized, types.CodeUnknownToken)
	if me.Extra["soft_logout"] != true {
		t.Fatalf("expired token: soft_logout = %v, want true", me.Extra["soft_logout"])
	}
	// The refresh token still works after the access token expired.
	next, err := s.Refresh(ctx, sess.RefreshToken)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Authenticate(ctx, next.AccessToken, ""); err != nil {
		t.Fatal(err)
	}
	// Tokens without refresh support never expire.
	plain := login(t, s, "alice", "password1", false)
	c.t = c.t.Add(365 * 24 * time.Hour)
	if _, err := s.Authenticate(ctx, plain.AccessToken, ""); err != nil {
		t.Fatalf("non-expiring token refused after a year: %v", err)
	}
}

func TestRefreshRotation(t *testing.T) {
	s, _ := newTestService(t, Options{})
	ctx := context.Background()
	if _, err := s.CreateUser(ctx, "bob", "password1", false); err != nil {
		t.Fatal(err)
	}
	first := login(t, s, "bob", "password1", true)
	second, err := s.Refresh(ctx, first.RefreshToken)
	if err != nil {
		t.Fatal(err)
	}
	if second.DeviceID != first.DeviceID || second.UserID != first.UserID {
		t.Fatalf("refreshed tokens moved device: %+v vs %+v", second, first)
	}
	wantCode(t, func() error { _, err := s.Authenticate(ctx, first.AccessToken, ""); return err }(),
		http.StatusUnauthorized, types.CodeUnknownToken)
	// A client that lost the answer can refresh again with the old token…
	retry, err := s.Refresh(ctx, first.RefreshToken)
	if err != nil {
		t.Fatalf("old refresh token refused before the new tokens were used: %v", err)
	}
	// …which retires the pair it lost.
	wantCode(t, func() error { _, err := s.Authenticate(ctx, second.AccessToken, ""); return err }(),
		http.StatusUnauthorized, types.CodeUnknownToken)
	wantCode(t, func() error { _, err := s.Refresh(ctx, second.RefreshToken); return err }(),
		http.StatusUnauthorized, types.CodeUnknownToken)
	// …until a new access token is used.
	if _, err := s.Authenticate(ctx, retry.AccessToken, ""); err != nil {
		t.Fatal(err)
	}
	wantCode(t, func() error { _, err := s.Refresh(ctx, first.RefreshToken); return err }(),
		http.StatusUnauthorized, types.CodeUnknownToken)
	// Using the new refresh token also retires its predecessor.
	third, err := s.Refresh(ctx, retry.RefreshToken)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Refresh(ctx, third.RefreshToken); err != nil {
		t.Fatal(err)
	}
	wantCode(t, func() error { _, err := s.Refresh(ctx, retry.RefreshToken); return err }(),
		http.StatusUnauthorized, types.CodeUnknownToken)
}

func TestLoginTokenExpiry(t *testing.T) {
	s, c := newTestService(t, Options{})
	ctx := context.Background()
	uid, err := s.CreateUser(ctx, "carol", "password1", false)
	if err != nil {
		t.Fatal(err)
	}
	tok, life, err := s.CreateLoginToken(ctx, uid)
	if err != nil || life != (2*time.Minute).Milliseconds() {
		t.Fatal(err, life)
	}
	c.t = c.t.Add(2 * time.Minute)
	wantCode(t, func() error { _, err := s.Login(ctx, &LoginRequest{Type: "m.login.token", Token: tok}); return err }(),
		http.StatusForbidden, types.CodeForbidden)
	tok, _, _ = s.CreateLoginToken(ctx, uid)
	sess, err := s.Login(ctx, &LoginRequest{Type: "m.login.token", Token: tok})
	if err != nil || sess.UserID != uid {
		t.Fatalf("login token: %v %+v", err, sess)
	}
}

func TestUIASessionExpiresAndIsBound(t *testing.T) {
	s, c := newTestService(t, Options{RegistrationEnabled: true})
	ctx := context.Background()
	_, err := s.CheckUIA(ctx, &UIARequest{Endpoint: "register", Flows: [][]string{{StageDummy}}})
	me := wantCode(t, err, http.StatusUnauthorized, "")
	session := me.Extra["session"].(string)
	auth, _ := json.Marshal(map[string]string{"type": StageDummy, "session": session})
	// Bound to its endpoint and user.
	_, err = s.CheckUIA(ctx, &UIARequest{Auth: auth, UserID: "@x:example.org", Endpoint: "register", Flows: [][]string{{StageDummy}}})
	wantCode(t, err, http.StatusForbidden, types.CodeForbidden)
	c.t = c.t.Add(16 * time.Minute)
	_, err = s.CheckUIA(ctx, &UIARequest{Auth: auth, Endpoint: "register", Flows: [][]string{{StageDummy}}})
	wantCode(t, err, http.StatusBadRequest, types.CodeUnknown)
}

func TestUIAMultiStageFlow(t *testing.T) {
	s, _ := newTestService(t, Options{})
	ctx := context.Background()
	uid, err := s.CreateUser(ctx, "dave", "password1", false)
	if err != nil {
		t.Fatal(err)
	}
	flows := [][]string{{StagePassword, StageDummy}}
	pw, _ := json.Marshal(map[string]any{"type": StagePassword, "password": "password1",
		"identifier": map[string]string{"type": "m.id.user", "user": "dave"}})
	_, err = s.CheckUIA(ctx, &UIARequest{Auth: pw, UserID: uid, Endpoint: "x", Flows: flows})
	me := wantCode(t, err, http.StatusUnauthorized, "")
	if got := me.Extra["completed"].([]string); len(got) != 1 || got[0] != StagePassword {
		t.Fatalf("completed = %v", got)
	}
	dummy, _ := json.Marshal(map[string]any{"type": StageDummy, "session": me.Extra["session"]})
	res, err := s.CheckUIA(ctx, &UIARequest{Auth: dummy, UserID: uid, Endpoint: "x", Flows: flows})
	if err != nil || res == nil {
		t.Fatalf("flow not complete after both stages: %v", err)
	}
}

func TestRegistrationTokenExpiryAndUses(t *testing.T) {
	s, c := newTestService(t, Options{RegistrationEnabled: true, RequiresToken: true})
	ctx := context.Background()
	one := int64(1)
	exp := c.t.Add(time.Hour).UnixMilli()
	tok, err := s.NewRegistrationToken(ctx, "", 0, &one, &exp)
	if err != nil || len(tok.Token) != 16 {
		t.Fatalf("new token: %v %+v", err, tok)
	}
	register := func(name string) error {
		auth, _ := json.Marshal(map[string]string{"type": StageRegistrationToken, "token": tok.Token})
		_, _, err := s.Register(ctx, &RegisterRequest{Username: name, Password: "password1", Auth: auth})
		return err
	}
	if err := register("erin"); err != nil {
		t.Fatal(err)
	}
	err = register("frank")
	wantCode(t, err, http.StatusUnauthorized, types.CodeUnauthorized)
	// An expired token is refused even with uses left.
	tok2, err := s.NewRegistrationToken(ctx, "later", 0, nil, &exp)
	if err != nil {
		t.Fatal(err)
	}
	c.t = c.t.Add(2 * time.Hour)
	if ok, _ := s.RegistrationTokenValid(ctx, tok2.Token); ok {
		t.Fatal("expired token reported valid")
	}
	if _, err := s.NewRegistrationToken(ctx, "", 65, nil, nil); err == nil {
		t.Fatal("length 65 accepted")
	}
}

func TestValidateLocalpart(t *testing.T) {
	s, _ := newTestService(t, Options{})
	for in, want := range map[string]string{"Alice": "alice", "@bob:example.org": "bob", "a.b_c=d-e/f+g": "a.b_c=d-e/f+g"} {
		got, err := s.ValidateLocalpart(in)
		if err != nil || got != want {
			t.Errorf("ValidateLocalpart(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "a b", "é", "@x:other.org", "a:b", string(make([]byte, 300))} {
		_, err := s.ValidateLocalpart(bad)
		if me, ok := types.AsError(err); !ok || me.Code != types.CodeInvalidUsername {
			t.Errorf("ValidateLocalpart(%q) = %v, want M_INVALID_USERNAME", bad, err)
		}
	}
}

// Two account services on one database and one notifier stand for two
// processes: a suspension made through one reaches the other's cached
// restrictions at once.
func TestRestrictionsFollowAnotherProcess(t *testing.T) {
	ctx := context.Background()
	n := stream.NewLocal(stream.Positions{})
	s1, _ := newTestService(t, Options{Notifier: n})
	s2, err := New(s1.store, Options{ServerName: "example.org", Notifier: n})
	if err != nil {
		t.Fatal(err)
	}
	admin, err := s1.CreateUser(ctx, "admin", "admin password 1", true)
	if err != nil {
		t.Fatal(err)
	}
	target, err := s1.CreateUser(ctx, "target", "target password 1", false)
	if err != nil {
		t.Fatal(err)
	}
	if sus, _, err := s2.Restrictions(ctx, target); err != nil || sus {
		t.Fatalf("before: suspended=%v %v", sus, err) // s2 caches "not suspended"
	}
	if err := s1.Restrict(ctx, admin, target, Suspension, true); err != nil {
		t.Fatal(err)
	}
	if sus, _, err := s2.Restrictions(ctx, target); err != nil || !sus {
		t.Fatalf("the other process still sees the account unsuspended (%v)", err)
	}
	if sus, _, err := s1.Restrictions(ctx, target); err != nil || !sus {
		t.Fatalf("the process that suspended sees it unsuspended (%v)", err)
	}
}
