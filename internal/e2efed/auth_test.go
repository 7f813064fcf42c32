package e2efed

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"go.mau.fi/util/exhttp"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/federation"
	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/internal/testserver"
)

func register(t *testing.T, s *testserver.Server, local string) *mautrix.Client {
	t.Helper()
	return s.Register(t, &mautrix.ReqRegister[any]{Username: local, Password: "correct horse battery"})
}

// A user on B looks up a user on A: B sends A a request signed with
// X-Matrix, A fetches B's key from B and accepts it.
func TestSignedRequestBetweenServers(t *testing.T) {
	a, b := start(t), start(t)
	alice := register(t, a, "alice")
	if err := alice.SetDisplayName(t.Context(), "Alice of A"); err != nil {
		t.Fatal(err)
	}
	bob := register(t, b, "bob")
	prof, err := bob.GetProfile(t.Context(), alice.UserID)
	if err != nil || prof.DisplayName != "Alice of A" {
		t.Fatalf("bob's view of alice's profile: %+v, %v", prof, err)
	}
	_, err = bob.GetProfile(t.Context(), id.NewUserID("nobody", a.Opts.ServerName))
	if !errors.Is(err, mautrix.MNotFound) {
		t.Fatalf("profile of a user A does not have: %v, want M_NOT_FOUND", err)
	}

	status, body := do(t, http.MethodGet, "https://"+a.FederationAddr+"/_matrix/federation/v1/version", nil, nil)
	var v federation.RespServerVersion
	if status != http.StatusOK || json.Unmarshal(body, &v) != nil || v.Server.Name != "Tributary" {
		t.Fatalf("version: %d %s", status, body)
	}
}

// fakeServer is a server C run by the test: it serves its key on loopback
// (named 127.0.0.1:PORT like the others) and signs requests with it.
type fakeServer struct {
	name string
	key  *federation.SigningKey
	// missing is what C answers to get_missing_events (nil: nothing);
	// missingAsked counts those requests.
	missing      atomic.Pointer[[]json.RawMessage]
	missingAsked atomic.Int32
	// inbox takes the transactions servers send C (outbound_test.go).
	inbox *inbox
	// hostPtr, when set, serves C's rooms (fakehost_test.go).
	hostPtr atomic.Pointer[fakeHost]
	// extra, when set, serves what it reports it served (edus_test.go).
	extra atomic.Pointer[func(w http.ResponseWriter, r *http.Request) bool]
}

func newFakeServer(t *testing.T) *fakeServer {
	t.Helper()
	f := &fakeServer{key: federation.GenerateSigningKey(), inbox: newInbox()}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if h := f.hostPtr.Load(); h != nil && h.serve(w, r) {
			return
		}
		if x := f.extra.Load(); x != nil && (*x)(w, r) {
			return
		}
		if strings.HasPrefix(r.URL.Path, "/_matrix/federation/v1/send/") {
			f.inbox.serve(t, f, w, r)
			return
		}
		if strings.HasPrefix(r.URL.Path, "/_matrix/federation/v1/get_missing_events/") {
			f.missingAsked.Add(1)
			evs := []json.RawMessage{}
			if m := f.missing.Load(); m != nil {
				evs = *m
			}
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(map[string]any{"events": evs})
			return
		}
		if r.URL.Path != "/_matrix/key/v2/server" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(f.key.GenerateKeyResponse(f.name, nil))
	}))
	srv.StartTLS()
	t.Cleanup(srv.Close)
	f.name = srv.Listener.Addr().String()
	return f
}

// authHeader is an X-Matrix header of C for a request, signed with key.
func (f *fakeServer) authHeader(t *testing.T, key *federation.SigningKey, method, uri, destination string) http.Header {
	t.Helper()
	sig, err := key.SignJSON(map[string]any{"method": method, "uri": uri, "origin": f.name, "destination": destination})
	if err != nil {
		t.Fatal(err)
	}
	h := http.Header{}
	h.Set("Authorization", federation.XMatrixAuth{Origin: f.name, Destination: destination, KeyID: f.key.ID,
		Signature: sig}.String())
	return h
}

// Requests that are unsigned, signed by a key that is not the origin's,
// signed for another destination or for another URI are refused with 401
// M_UNAUTHORIZED; the same request rightly signed is accepted (A fetches
// C's key from C).
func TestForgedRequestsRefused(t *testing.T) {
	a := start(t)
	alice := register(t, a, "alice")
	c := newFakeServer(t)

	uri := "/_matrix/federation/v1/query/profile?user_id=" + url.QueryEscape(alice.UserID.String())
	target := "https://" + a.FederationAddr + uri
	other := federation.GenerateSigningKey()
	otherURI := "/_matrix/federation/v1/query/profile?user_id=" + url.QueryEscape("@bob:"+a.Opts.ServerName)
	for name, header := range map[string]http.Header{
		"unsigned":              nil,
		"not X-Matrix":          {"Authorization": {"Bearer abc"}},
		"signed by another key": c.authHeader(t, other, http.MethodGet, uri, a.Opts.ServerName),
		"for another server":    c.authHeader(t, c.key, http.MethodGet, uri, "elsewhere.example"),
		"for another URI":       c.authHeader(t, c.key, http.MethodGet, otherURI, a.Opts.ServerName),
		"for another method":    c.authHeader(t, c.key, http.MethodPost, uri, a.Opts.ServerName),
	} {
		status, body := do(t, http.MethodGet, target, header, nil)
		wantError(t, name, status, body, http.StatusUnauthorized, "M_UNAUTHORIZED")
	}

	status, body := do(t, http.MethodGet, target, c.authHeader(t, c.key, http.MethodGet, uri, a.Opts.ServerName), nil)
	if status != http.StatusOK {
		t.Fatalf("rightly signed request: %d %s", status, body)
	}

	// mautrix's federation client, as another implementation would sign.
	settings := exhttp.SensibleClientSettings
	settings.InsecureTLS = true
	cli := federation.NewClient(c.name, c.key, nil, settings)
	cli.AllowIP = func(net.IP) bool { return true }
	prof, err := cli.QueryProfile(context.Background(), alice.UserID)
	if err != nil || prof == nil {
		t.Fatalf("mautrix client's signed request: %+v, %v", prof, err)
	}
}

// With federation off, neither the key nor the federation API is served
// (the OpenID userinfo endpoint, used by widgets, stays).
func TestFederationOff(t *testing.T) {
	s := testserver.Start(t, testserver.Options{Args: []string{"--no-federation"}})
	for _, path := range []string{"/_matrix/key/v2/server", "/_matrix/federation/v1/version", "/_matrix/key/v2/query/example.org"} {
		status, body := do(t, http.MethodGet, s.URL+path, nil, nil)
		wantError(t, path, status, body, http.StatusNotFound, "M_UNRECOGNIZED")
	}
	status, body := do(t, http.MethodGet, s.URL+"/_matrix/federation/v1/openid/userinfo?access_token=nope", nil, nil)
	wantError(t, "userinfo", status, body, http.StatusUnauthorized, "M_UNKNOWN_TOKEN")
}
