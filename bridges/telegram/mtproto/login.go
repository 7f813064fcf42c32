package mtproto

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/gotd/td/telegram/auth"
	"github.com/gotd/td/tg"
	"github.com/gotd/td/tgerr"

	"maunium.net/go/mautrix/bridgev2"
)

const (
	StepPhone    = "org.tributary.telegram.phone"
	StepCode     = "org.tributary.telegram.code"
	StepPassword = "org.tributary.telegram.password"

	FieldPhone    = "phone"
	FieldCode     = "code"
	FieldPassword = "password"
)

// Done completes a login: it gets the authorized user and makes the
// bridgev2 login (with the session the connection keeps).
type Done func(ctx context.Context, user *tg.User) (*bridgev2.LoginStep, error)

// Login is the phone login of a user account: phone number, then the code
// Telegram sends, then the 2FA password when the account has one. A wrong
// code or password asks again; a FLOOD_WAIT is waited out when short and
// told to the user when long.
type Login struct {
	auth *auth.Client
	done Done
	// MaxWait: a FLOOD_WAIT longer than this is reported, not waited for.
	MaxWait time.Duration

	phone, hash string
	step        string
}

var _ bridgev2.LoginProcessUserInput = (*Login)(nil)

// NewLogin is a login over api (a connection to Telegram's DC, or a mock),
// for the app's api_id and api_hash.
func NewLogin(api tg.Invoker, random io.Reader, appID int, appHash string, done Done) *Login {
	return &Login{auth: auth.NewClient(tg.NewClient(api), random, appID, appHash), done: done,
		MaxWait: time.Minute}
}

func (l *Login) Start(context.Context) (*bridgev2.LoginStep, error) { return l.phoneStep(""), nil }

func (l *Login) Cancel() {}

func (l *Login) phoneStep(note string) *bridgev2.LoginStep {
	l.step = StepPhone
	return &bridgev2.LoginStep{Type: bridgev2.LoginStepTypeUserInput, StepID: StepPhone,
		Instructions: strings.TrimSpace(note + " Send your phone number, with its country code."),
		UserInputParams: &bridgev2.LoginUserInputParams{Fields: []bridgev2.LoginInputDataField{{
			Type: bridgev2.LoginInputFieldTypePhoneNumber, ID: FieldPhone, Name: "Phone number",
		}}}}
}

func (l *Login) codeStep(note string) *bridgev2.LoginStep {
	l.step = StepCode
	return &bridgev2.LoginStep{Type: bridgev2.LoginStepTypeUserInput, StepID: StepCode,
		Instructions: strings.TrimSpace(note + " Send the code Telegram sent you."),
		UserInputParams: &bridgev2.LoginUserInputParams{Fields: []bridgev2.LoginInputDataField{{
			Type: bridgev2.LoginInputFieldType2FACode, ID: FieldCode, Name: "Code",
		}}}}
}

func (l *Login) passwordStep(note string) *bridgev2.LoginStep {
	l.step = StepPassword
	return &bridgev2.LoginStep{Type: bridgev2.LoginStepTypeUserInput, StepID: StepPassword,
		Instructions: strings.TrimSpace(note + " The account has two-step verification: send its password."),
		UserInputParams: &bridgev2.LoginUserInputParams{Fields: []bridgev2.LoginInputDataField{{
			Type: bridgev2.LoginInputFieldTypePassword, ID: FieldPassword, Name: "Password",
		}}}}
}

// call runs one request, waiting out short FLOOD_WAITs.
func (l *Login) call(ctx context.Context, fn func(context.Context) error) error {
	return Retry(ctx, l.MaxWait, l.MaxWait, nil, fn)
}

func (l *Login) SubmitUserInput(ctx context.Context, input map[string]string) (*bridgev2.LoginStep, error) {
	switch l.step {
	case StepPhone:
		phone := strings.TrimSpace(input[FieldPhone])
		var sent tg.AuthSentCodeClass
		err := l.call(ctx, func(ctx context.Context) (err error) {
			sent, err = l.auth.SendCode(ctx, phone, auth.SendCodeOptions{})
			return err
		})
		switch {
		case tgerr.Is(err, "PHONE_NUMBER_INVALID"):
			return l.phoneStep("Telegram does not know that number."), nil
		case err != nil:
			return nil, userError(err)
		}
		code, ok := sent.(*tg.AuthSentCode)
		if !ok {
			return nil, fmt.Errorf("telegram: unexpected answer to sendCode: %T", sent)
		}
		l.phone, l.hash = phone, code.PhoneCodeHash
		return l.codeStep(""), nil
	case StepCode:
		var a *tg.AuthAuthorization
		err := l.call(ctx, func(ctx context.Context) (err error) {
			a, err = l.auth.SignIn(ctx, l.phone, strings.TrimSpace(input[FieldCode]), l.hash)
			return err
		})
		switch {
		case errors.Is(err, auth.ErrPasswordAuthNeeded):
			return l.passwordStep(""), nil
		case tgerr.Is(err, "PHONE_CODE_INVALID", "PHONE_CODE_EMPTY"):
			return l.codeStep("That code is not right."), nil
		case tgerr.Is(err, "PHONE_CODE_EXPIRED"):
			return l.phoneStep("The code expired."), nil
		case err != nil:
			return nil, userError(err)
		}
		return l.finish(ctx, a)
	case StepPassword:
		var a *tg.AuthAuthorization
		err := l.call(ctx, func(ctx context.Context) (err error) {
			a, err = l.auth.Password(ctx, input[FieldPassword])
			return err
		})
		switch {
		case errors.Is(err, auth.ErrPasswordInvalid):
			return l.passwordStep("That password is not right."), nil
		case err != nil:
			return nil, userError(err)
		}
		return l.finish(ctx, a)
	}
	return nil, errors.New("telegram: the login has not started")
}

func (l *Login) finish(ctx context.Context, a *tg.AuthAuthorization) (*bridgev2.LoginStep, error) {
	user, ok := a.User.(*tg.User)
	if !ok {
		return nil, fmt.Errorf("telegram: signed in as %T", a.User)
	}
	return l.done(ctx, user)
}

// userError makes a FLOOD_WAIT too long to wait for a message the user
// sees.
func userError(err error) error {
	var fw *FloodWaitError
	if errors.As(err, &fw) {
		return bridgev2.WrapRespErrManual(fw, "FI.MAU.TELEGRAM_FLOOD_WAIT", 429)
	}
	return fmt.Errorf("telegram: %w", err)
}
