// Package e2ekeys holds the end-to-end tests of end-to-end encryption: the
// real tributary binary with clients using mautrix's crypto package (the
// pure-Go olm: run with -tags goolm) and raw requests for the error paths.
package e2ekeys

import (
	"os"
	"slices"
	"testing"

	"maunium.net/go/mautrix"

	"github.com/tributary-hs/tributary/internal/pgtest"
	"github.com/tributary-hs/tributary/internal/testserver"
)

func TestMain(m *testing.M) {
	code := m.Run()
	pgtest.StopShared()
	os.Exit(code)
}

const password = "correct horse battery"

func start(t *testing.T) *testserver.Server {
	t.Helper()
	return testserver.Start(t, testserver.Options{Args: slices.Clone([]string{"--enable-registration", "--disable-rate-limits"})})
}

// register creates a user with m.login.dummy and returns a logged-in client.
func register(t testing.TB, srv *testserver.Server, local string) *mautrix.Client {
	t.Helper()
	return srv.Register(t, &mautrix.ReqRegister[any]{Username: local, Password: password, InitialDeviceDisplayName: "first device"})
}

// login logs local in on a new device.
func login(t testing.TB, srv *testserver.Server, local string) *mautrix.Client {
	t.Helper()
	cli := srv.Client(t)
	_, err := cli.Login(t.Context(), &mautrix.ReqLogin{Type: mautrix.AuthTypePassword, Password: password,
		Identifier: mautrix.UserIdentifier{Type: mautrix.IdentifierTypeUser, User: local}, StoreCredentials: true,
		InitialDeviceDisplayName: "another device"})
	if err != nil {
		t.Fatalf("login %s: %v", local, err)
	}
	return cli
}

// wantStatus checks a raw answer: its status and, unless code is "", its errcode.
func wantStatus(t testing.TB, what string, gotStatus int, body map[string]any, status int, code string) {
	t.Helper()
	if gotStatus != status {
		t.Fatalf("%s: HTTP %d %v, want %d %s", what, gotStatus, body, status, code)
	}
	if got, _ := body["errcode"].(string); got != code {
		t.Fatalf("%s: errcode %q (body %v), want %q", what, got, body, code)
	}
}
