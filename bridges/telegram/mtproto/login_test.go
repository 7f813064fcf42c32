package mtproto

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"math/big"
	"testing"
	"time"

	"github.com/gotd/td/bin"
	"github.com/gotd/td/tg"
	"github.com/gotd/td/tgerr"
	"github.com/gotd/td/tgmock"

	"maunium.net/go/mautrix/bridgev2"
)

const (
	appID   = 12345
	appHash = "0123456789abcdef"
)

// telegramPrime is the 2048-bit safe prime Telegram uses for DH and SRP
// (core.telegram.org/api/srp), with generator 3.
var telegramPrime, _ = hex.DecodeString("c71caeb9c6b1c9048e6c522f70f13f73980d40238e3e21c14934d037563d930f" +
	"48198a0aa7c14058229493d22530f4dbfa336f6e0ac925139543aed44cce7c37" +
	"20fd51f69458705ac68cd4fe6b6b13abdc9746512969328454f18faf8c595f64" +
	"2477fe96bb2a941d5bcd1d4ac8cc49880708fa9b378e3c4f3a9060bee67cf9a4" +
	"a4a695811051907e162753b56b0f6b410dba74d8a84b2a14b3144e0ef1284754" +
	"fd17ed950d5965b4b9dd46582db1178d169c6bc465b0d6ff9ca3928fef5b9ae4" +
	"e418fc15e83ebea0f87fa9ff5eed70050ded2849f47bf959d956850ce929851f" +
	"0d8115f635b105ee2e4e15d04b2454bf6f4fadf034b10403119cd8e3b92fcc5b")

// accountPassword is account.getPassword's answer for an account with a
// password: the server's SRP parameters (B = g^b mod p for a random b).
func accountPassword(t *testing.T) *tg.AccountPassword {
	t.Helper()
	b, err := rand.Int(rand.Reader, new(big.Int).SetBytes(telegramPrime))
	if err != nil {
		t.Fatal(err)
	}
	srpB := new(big.Int).Exp(big.NewInt(3), b, new(big.Int).SetBytes(telegramPrime)).FillBytes(make([]byte, 256))
	algo := &tg.PasswordKdfAlgoSHA256SHA256PBKDF2HMACSHA512iter100000SHA256ModPow{
		Salt1: []byte("salt one"), Salt2: []byte("salt two, longer"), G: 3, P: telegramPrime}
	p := &tg.AccountPassword{HasPassword: true, CurrentAlgo: algo, SRPB: srpB, SRPID: 77,
		NewAlgo: algo, NewSecureAlgo: &tg.SecurePasswordKdfAlgoUnknown{}, SecureRandom: []byte("random")}
	p.SetFlags()
	return p
}

func rpcErr(code int, typ string) *tgerr.Error {
	return &tgerr.Error{Code: code, Message: typ, Type: typ}
}

// authorized is auth.signIn's or auth.checkPassword's answer.
func authorized() *tg.AuthAuthorization {
	u := &tg.User{ID: 4711, FirstName: "Ann", Username: "ann", Phone: "15550001"}
	u.SetFlags()
	a := &tg.AuthAuthorization{User: u}
	a.SetFlags()
	return a
}

type loginTest struct {
	t     *testing.T
	mock  *tgmock.Mock
	login *Login
	user  *tg.User
}

func newLoginTest(t *testing.T) *loginTest {
	lt := &loginTest{t: t, mock: tgmock.New(t)}
	lt.login = NewLogin(lt.mock, rand.Reader, appID, appHash, func(_ context.Context, u *tg.User) (*bridgev2.LoginStep, error) {
		lt.user = u
		return &bridgev2.LoginStep{Type: bridgev2.LoginStepTypeComplete, StepID: "done"}, nil
	})
	t.Cleanup(func() {
		if !lt.mock.AllWereMet() {
			t.Error("not every expected MTProto call was made")
		}
	})
	return lt
}

// submit sends a step's input and checks which step comes next.
func (lt *loginTest) submit(field, value, wantStep string) *bridgev2.LoginStep {
	lt.t.Helper()
	step, err := lt.login.SubmitUserInput(context.Background(), map[string]string{field: value})
	if err != nil {
		lt.t.Fatalf("%s: %v", field, err)
	}
	if step.StepID != wantStep {
		lt.t.Fatalf("after %s: step %s (%s), want %s", field, step.StepID, step.Instructions, wantStep)
	}
	return step
}

func (lt *loginTest) expectSendCode(phone string) *tgmock.RequestBuilder {
	return lt.mock.ExpectFunc(func(b bin.Encoder) {
		req, ok := b.(*tg.AuthSendCodeRequest)
		if !ok || req.PhoneNumber != phone || req.APIID != appID || req.APIHash != appHash {
			lt.t.Errorf("want auth.sendCode for %s, got %#v", phone, b)
		}
	})
}

func (lt *loginTest) expectSignIn(code string) *tgmock.RequestBuilder {
	return lt.mock.ExpectFunc(func(b bin.Encoder) {
		req, ok := b.(*tg.AuthSignInRequest)
		if !ok || req.PhoneCode != code || req.PhoneCodeHash != "code-hash" || req.PhoneNumber != "+15550001" {
			lt.t.Errorf("want auth.signIn with %s, got %#v", code, b)
		}
	})
}

var sentCode = &tg.AuthSentCode{Type: &tg.AuthSentCodeTypeApp{Length: 5}, PhoneCodeHash: "code-hash"}

func TestLoginPhoneCode(t *testing.T) {
	lt := newLoginTest(t)
	if step, err := lt.login.Start(context.Background()); err != nil || step.StepID != StepPhone {
		t.Fatalf("start: %+v %v", step, err)
	}
	lt.expectSendCode("+15550001").ThenResult(sentCode)
	lt.submit(FieldPhone, " +15550001 ", StepCode)
	lt.expectSignIn("12345").ThenResult(authorized())
	lt.submit(FieldCode, "12345", "done")
	if lt.user == nil || lt.user.ID != 4711 || lt.user.Username != "ann" {
		t.Errorf("signed in as %+v", lt.user)
	}
}

func TestLoginWrongCodeThenPassword(t *testing.T) {
	lt := newLoginTest(t)
	_, _ = lt.login.Start(context.Background())
	lt.expectSendCode("+15550001").ThenResult(sentCode)
	lt.submit(FieldPhone, "+15550001", StepCode)
	lt.expectSignIn("11111").ThenRPCErr(rpcErr(400, "PHONE_CODE_INVALID"))
	if step := lt.submit(FieldCode, "11111", StepCode); step.Instructions == "" {
		t.Error("no word on the wrong code")
	}
	lt.expectSignIn("12345").ThenRPCErr(rpcErr(401, "SESSION_PASSWORD_NEEDED"))
	lt.submit(FieldCode, "12345", StepPassword)
	// A wrong password asks again; the right one signs in. Each try
	// fetches fresh SRP parameters and answers with an SRP proof, never
	// the password.
	for _, c := range []struct {
		password string
		result   func(*tgmock.RequestBuilder) *tgmock.Mock
		want     string
	}{
		{"wrong", func(r *tgmock.RequestBuilder) *tgmock.Mock { return r.ThenRPCErr(rpcErr(400, "PASSWORD_HASH_INVALID")) }, StepPassword},
		{"hunter2", func(r *tgmock.RequestBuilder) *tgmock.Mock { return r.ThenResult(authorized()) }, "done"},
	} {
		lt.mock.ExpectCall(&tg.AccountGetPasswordRequest{}).ThenResult(accountPassword(t))
		c.result(lt.mock.ExpectFunc(func(b bin.Encoder) {
			req, ok := b.(*tg.AuthCheckPasswordRequest)
			if !ok {
				t.Fatalf("want auth.checkPassword, got %#v", b)
			}
			srp, ok := req.Password.(*tg.InputCheckPasswordSRP)
			if !ok || srp.SRPID != 77 || len(srp.A) != 256 || len(srp.M1) != 32 {
				t.Errorf("checkPassword with %#v", req.Password)
			}
		}))
		lt.submit(FieldPassword, c.password, c.want)
	}
	if lt.user == nil || lt.user.ID != 4711 {
		t.Errorf("signed in as %+v", lt.user)
	}
}

func TestLoginFloodWait(t *testing.T) {
	// A short FLOOD_WAIT is waited out and the call made again.
	lt := newLoginTest(t)
	_, _ = lt.login.Start(context.Background())
	lt.expectSendCode("+15550001").ThenFlood(1)
	lt.expectSendCode("+15550001").ThenResult(sentCode)
	start := time.Now()
	lt.submit(FieldPhone, "+15550001", StepCode)
	if waited := time.Since(start); waited < time.Second {
		t.Errorf("sent the code again after %s, FLOOD_WAIT_1 asked for a second", waited)
	}

	// A long one is told to the user, not waited for.
	lt = newLoginTest(t)
	_, _ = lt.login.Start(context.Background())
	lt.expectSendCode("+15550001").ThenFlood(3600)
	_, err := lt.login.SubmitUserInput(context.Background(), map[string]string{FieldPhone: "+15550001"})
	var re bridgev2.RespError
	if !errors.As(err, &re) || re.StatusCode != 429 || re.Err != "Telegram asks to wait 1h0m0s before trying again" {
		t.Errorf("long FLOOD_WAIT: %v", err)
	}
}

func TestRetryFloodWait(t *testing.T) {
	mock := tgmock.New(t)
	api := tg.NewClient(mock)
	mock.ExpectCall(&tg.UpdatesGetStateRequest{}).ThenFlood(1)
	mock.ExpectCall(&tg.UpdatesGetStateRequest{}).ThenFlood(1)
	mock.ExpectCall(&tg.UpdatesGetStateRequest{}).ThenResult(&tg.UpdatesState{Pts: 5})
	var waits []time.Duration
	var state *tg.UpdatesState
	err := Retry(context.Background(), 10*time.Second, 0, func(d time.Duration, _ int) { waits = append(waits, d) },
		func(ctx context.Context) (err error) {
			state, err = api.UpdatesGetState(ctx)
			return err
		})
	if err != nil || state.Pts != 5 {
		t.Fatalf("%+v %v", state, err)
	}
	// FLOOD_WAIT_1 twice: a second, then twice that.
	if len(waits) != 2 || waits[0] != time.Second || waits[1] != 2*time.Second {
		t.Errorf("waits %v", waits)
	}
	// Other errors end it at once.
	mock.ExpectCall(&tg.UpdatesGetStateRequest{}).ThenRPCErr(rpcErr(401, "AUTH_KEY_UNREGISTERED"))
	err = Retry(context.Background(), time.Second, 0, nil, func(ctx context.Context) error {
		_, err := api.UpdatesGetState(ctx)
		return err
	})
	if !tgerr.Is(err, "AUTH_KEY_UNREGISTERED") {
		t.Errorf("other error: %v", err)
	}
}

func TestWait(t *testing.T) {
	const limit = 10 * time.Second
	for _, c := range []struct{ asked, last, want time.Duration }{
		{0, 0, time.Second},
		{3 * time.Second, 0, 3 * time.Second},
		{time.Second, 2 * time.Second, 4 * time.Second},
		{time.Second, 8 * time.Second, limit},
		{30 * time.Second, 8 * time.Second, 30 * time.Second},
	} {
		if got := Wait(c.asked, c.last, limit); got != c.want {
			t.Errorf("Wait(%s, %s) = %s, want %s", c.asked, c.last, got, c.want)
		}
	}
}
