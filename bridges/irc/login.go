package irc

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"maunium.net/go/mautrix/bridgev2"
	"maunium.net/go/mautrix/bridgev2/database"
	"maunium.net/go/mautrix/bridgev2/status"

	"github.com/tributary-hs/tributary/bridges/irc/ircconn"
)

const (
	flowNick   = "nick"
	stepNick   = "org.tributary.irc.nick"
	stepDone   = "org.tributary.irc.complete"
	fieldNick  = "nick"
	fieldPass  = "password"
	fieldAcct  = "account"
	errSASLBad = status.BridgeStateErrorCode("irc-sasl-failed")
)

func (n *Connector) GetLoginFlows() []bridgev2.LoginFlow {
	return []bridgev2.LoginFlow{{
		ID:   flowNick,
		Name: "Nick",
		Description: fmt.Sprintf("Connect to %s with a nick of your own; give the password of a registered "+
			"account to log in to it with SASL.", n.Config.Server),
	}}
}

func (n *Connector) CreateLogin(_ context.Context, user *bridgev2.User, flowID string) (bridgev2.LoginProcess, error) {
	if flowID != flowNick {
		return nil, fmt.Errorf("irc: unknown login flow %q", flowID)
	}
	return &loginProcess{net: n, user: user}, nil
}

// loginProcess asks for a nick (and SASL credentials), connects with them
// and hands the registered connection to the new login.
type loginProcess struct {
	net  *Connector
	user *bridgev2.User
}

var _ bridgev2.LoginProcessUserInput = (*loginProcess)(nil)

func (lp *loginProcess) Start(context.Context) (*bridgev2.LoginStep, error) {
	return &bridgev2.LoginStep{
		Type:   bridgev2.LoginStepTypeUserInput,
		StepID: stepNick,
		Instructions: fmt.Sprintf("Choose your nick on %s. If the nick is registered, give the account's "+
			"password: the bridge logs in with SASL.", lp.net.Config.DisplayName),
		UserInputParams: &bridgev2.LoginUserInputParams{Fields: []bridgev2.LoginInputDataField{{
			Type:         bridgev2.LoginInputFieldTypeUsername,
			ID:           fieldNick,
			Name:         "Nick",
			DefaultValue: lp.net.Config.defaultNick(lp.user.MXID),
			Validate: func(s string) (string, error) {
				s = strings.TrimSpace(s)
				if !ValidNick(s) {
					return "", fmt.Errorf("%q is not a valid nick", s)
				}
				return s, nil
			},
		}, {
			Type:     bridgev2.LoginInputFieldTypePassword,
			ID:       fieldPass,
			Name:     "SASL password",
			Optional: true,
		}, {
			Type:        bridgev2.LoginInputFieldTypeUsername,
			ID:          fieldAcct,
			Name:        "SASL account",
			Description: "The account to log in to, when it is not the nick",
			Optional:    true,
		}}},
	}, nil
}

func (lp *loginProcess) SubmitUserInput(ctx context.Context, input map[string]string) (*bridgev2.LoginStep, error) {
	meta := &LoginMetadata{Nick: strings.TrimSpace(input[fieldNick]), Password: input[fieldPass],
		Account: strings.TrimSpace(input[fieldAcct])}
	if !ValidNick(meta.Nick) {
		return nil, fmt.Errorf("%q is not a valid nick", meta.Nick)
	}
	if meta.Password != "" && meta.Account == "" {
		meta.Account = meta.Nick
	}
	if meta.Password == "" {
		meta.Account = ""
	}
	lid := loginID(lp.net.Config.NetworkID, lp.user.MXID)
	// A login that exists keeps its channels.
	if old, err := lp.net.br.GetExistingUserLoginByID(ctx, lid); err == nil && old != nil {
		if om, ok := old.Metadata.(*LoginMetadata); ok {
			meta.Channels = om.Channels
		}
		// Its connection holds the nick: let it go before connecting again.
		if oc, ok := old.Client.(*Client); ok {
			oc.Disconnect()
		}
	}
	conn, err := lp.net.dial(ctx, lp.user.MXID, meta)
	if err != nil {
		if errors.Is(err, ircconn.ErrSASLFailed) {
			return nil, fmt.Errorf("the server refused the SASL login: %w", err)
		}
		return nil, fmt.Errorf("connecting to %s: %w", lp.net.Config.Server, err)
	}
	prepared := &preparedConn{conn: conn}
	login, err := lp.user.NewLogin(ctx, &database.UserLogin{
		ID:         lid,
		RemoteName: meta.Nick,
		Metadata:   meta,
	}, &bridgev2.NewLoginParams{
		LoadUserLogin: func(_ context.Context, login *bridgev2.UserLogin) error {
			lp.net.newClient(login, prepared)
			return nil
		},
	})
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("saving the login: %w", err)
	}
	login.Client.Connect(login.Log.WithContext(context.WithoutCancel(ctx)))
	instructions := fmt.Sprintf("Connected to %s as %s.", lp.net.Config.DisplayName, conn.Nick())
	if conn.Nick() != meta.Nick {
		instructions += fmt.Sprintf(" The nick %s is taken: the bridge takes it as soon as it is free.", meta.Nick)
	}
	return &bridgev2.LoginStep{
		Type:           bridgev2.LoginStepTypeComplete,
		StepID:         stepDone,
		Instructions:   instructions,
		CompleteParams: &bridgev2.LoginCompleteParams{UserLoginID: login.ID, UserLogin: login},
	}, nil
}

func (lp *loginProcess) Cancel() {}
