package users

import (
	"context"
	"testing"
	"time"

	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/core/stream"
	"github.com/tributary-hs/tributary/core/types"
	"github.com/tributary-hs/tributary/storage"
)

// Access tokens are cached for the requests that use them; every way of
// ending a token ends it at once, in the process that ended it and (two
// services on one database and one notifier stand for two processes) in
// the others.
func TestCachedTokensEndAtOnce(t *testing.T) {
	ctx := context.Background()
	n := stream.NewLocal(stream.Positions{})
	s, c := newTestService(t, Options{Notifier: n})
	other, err := New(s.store, Options{ServerName: "example.org", Notifier: n, Now: c.now})
	if err != nil {
		t.Fatal(err)
	}
	user, err := s.CreateUser(ctx, "alice", "password1", false)
	if err != nil {
		t.Fatal(err)
	}
	// use authenticates with both services, so that both cache the token.
	use := func(token string) {
		t.Helper()
		for _, svc := range []*Service{s, other} {
			if _, err := svc.Authenticate(ctx, token, ""); err != nil {
				t.Fatalf("a live token was refused: %v", err)
			}
		}
	}
	ended := func(what, token string) {
		t.Helper()
		for i, svc := range []*Service{s, other} {
			_, err := svc.Authenticate(ctx, token, "")
			if me, ok := types.AsError(err); !ok || me.Code != "M_UNKNOWN_TOKEN" {
				t.Fatalf("%s: process %d still accepts the token (%v)", what, i, err)
			}
		}
	}
	cases := []struct {
		what string
		end  func(sess *Session) error
	}{
		{"logout", func(sess *Session) error {
			return s.Logout(ctx, &types.Principal{UserID: user, DeviceID: sess.DeviceID})
		}},
		{"logout all", func(sess *Session) error {
			return s.LogoutAll(ctx, &types.Principal{UserID: user, DeviceID: sess.DeviceID})
		}},
		{"device deleted", func(sess *Session) error { return s.DeleteDevices(ctx, user, []id.DeviceID{sess.DeviceID}) }},
		{"password changed", func(sess *Session) error {
			keep := login(t, s, "alice", "password1", false)
			err := s.ChangePassword(ctx, &types.Principal{UserID: user, DeviceID: keep.DeviceID}, "password1", true)
			use(keep.AccessToken) // the device that changed it stays
			return err
		}},
		{"login on the same device", func(sess *Session) error {
			_, err := s.Login(ctx, &LoginRequest{Type: "m.login.password",
				Identifier: &Identifier{Type: "m.id.user", User: "alice"}, Password: "password1",
				Device: DeviceRequest{DeviceID: sess.DeviceID}})
			return err
		}},
		{"refreshed", func(sess *Session) error {
			_, err := s.Refresh(ctx, sess.RefreshToken)
			return err
		}},
	}
	for _, tc := range cases {
		sess := login(t, s, "alice", "password1", tc.what == "refreshed")
		use(sess.AccessToken)
		use(sess.AccessToken) // from the cache now
		if err := tc.end(sess); err != nil {
			t.Fatalf("%s: %v", tc.what, err)
		}
		ended(tc.what, sess.AccessToken)
	}

	// Expiry needs no change: a cached token past its expiry is refused.
	sess := login(t, s, "alice", "password1", true)
	use(sess.AccessToken)
	c.t = c.t.Add(s.opts.AccessTokenLifetime)
	if _, err := s.Authenticate(ctx, sess.AccessToken, ""); err == nil {
		t.Fatal("an expired cached token was accepted")
	}

	// Deactivation last: it ends everything.
	sess = login(t, s, "alice", "password1", false)
	use(sess.AccessToken)
	if err := s.Deactivate(ctx, user, false); err != nil {
		t.Fatal(err)
	}
	ended("deactivated", sess.AccessToken)
}

// A token read while a forget lands is not kept.
func TestTokenCacheDropsReadsThatRacedAForget(t *testing.T) {
	var c tokenCache
	_, gen, ok := c.get("h")
	if ok {
		t.Fatal("an empty cache had a token")
	}
	c.forget("@a:x")
	c.put(gen, &storage.AccessToken{TokenHash: "h", UserID: "@a:x"})
	if _, _, ok := c.get("h"); ok {
		t.Fatal("a token read before a forget was kept")
	}
	_, gen, _ = c.get("h")
	c.put(gen, &storage.AccessToken{TokenHash: "h", UserID: "@a:x"})
	if _, _, ok := c.get("h"); !ok {
		t.Fatal("a token read without a forget was not kept")
	}
	c.sweep() // used since the last sweep: kept
	if _, _, ok := c.get("h"); !ok {
		t.Fatal("a used token was swept")
	}
	c.sweep()
	c.sweep()
	if _, _, ok := c.get("h"); ok {
		t.Fatal("a token unused for a sweep period stayed")
	}
}

// A cached token is found without waiting for the cache's writers: every
// request looks its token up, and a lock there queued them all behind
// whichever holder the scheduler had put aside.
func TestTokenCacheHitTakesNoLock(t *testing.T) {
	var c tokenCache
	_, gen, _ := c.get("h")
	c.put(gen, &storage.AccessToken{TokenHash: "h", UserID: "@a:x"})
	c.mu.Lock() // a writer holds the cache
	found := make(chan bool)
	go func() {
		_, _, ok := c.get("h")
		found <- ok
	}()
	select {
	case ok := <-found:
		if !ok {
			t.Fatal("the cached token was not found")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a lookup waited for the writer's lock")
	}
	c.mu.Unlock()
}
