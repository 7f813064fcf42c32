package slack

import (
	"context"
	"fmt"
	"strings"

	"maunium.net/go/mautrix/bridgev2"
	"maunium.net/go/mautrix/bridgev2/database"
)

const (
	modeBot  = "bot"
	modeUser = "user"

	fieldToken    = "token"
	fieldAppToken = "app_token"
	stepTokens    = "org.tributary.slack.tokens"
	stepDone      = "org.tributary.slack.complete"
)

func (n *Connector) GetLoginFlows() []bridgev2.LoginFlow {
	return []bridgev2.LoginFlow{{
		ID:   modeBot,
		Name: "Bot token",
		Description: "Bridge as a Slack app's bot (xoxb- token, and the app-level xapp- token for Socket Mode). " +
			"Your messages and those relayed for other Matrix users are posted by the bot.",
	}, {
		ID:   modeUser,
		Name: "User token",
		Description: "Bridge as yourself (xoxp- user token of the app, and the app-level xapp- token for " +
			"Socket Mode): your Matrix messages are posted as you.",
	}}
}

func (n *Connector) CreateLogin(_ context.Context, user *bridgev2.User, flowID string) (bridgev2.LoginProcess, error) {
	if flowID != modeBot && flowID != modeUser {
		return nil, fmt.Errorf("slack: unknown login flow %q", flowID)
	}
	return &loginProcess{n: n, user: user, mode: flowID}, nil
}

// loginProcess asks for the tokens, checks them with auth.test and makes
// the login.
type loginProcess struct {
	n    *Connector
	user *bridgev2.User
	mode string
}

var _ bridgev2.LoginProcessUserInput = (*loginProcess)(nil)

func (lp *loginProcess) Start(context.Context) (*bridgev2.LoginStep, error) {
	prefix, what := "xoxb-", "Bot token"
	if lp.mode == modeUser {
		prefix, what = "xoxp-", "User token"
	}
	return &bridgev2.LoginStep{
		Type:         bridgev2.LoginStepTypeUserInput,
		StepID:       stepTokens,
		Instructions: "Give the tokens of your Slack app (OAuth & Permissions, and Basic Information → App-Level Tokens).",
		UserInputParams: &bridgev2.LoginUserInputParams{Fields: []bridgev2.LoginInputDataField{{
			Type: bridgev2.LoginInputFieldTypeToken, ID: fieldToken, Name: what,
			Validate: tokenValidator(prefix),
		}, {
			Type: bridgev2.LoginInputFieldTypeToken, ID: fieldAppToken, Name: "App-level token",
			Validate: tokenValidator("xapp-"),
		}}},
	}, nil
}

func tokenValidator(prefix string) func(string) (string, error) {
	return func(s string) (string, error) {
		s = strings.TrimSpace(s)
		if !strings.HasPrefix(s, prefix) {
			return "", fmt.Errorf("a %s… token is needed", prefix)
		}
		return s, nil
	}
}

func (lp *loginProcess) SubmitUserInput(ctx context.Context, input map[string]string) (*bridgev2.LoginStep, error) {
	meta := &LoginMetadata{Mode: lp.mode, Token: strings.TrimSpace(input[fieldToken]),
		AppToken: strings.TrimSpace(input[fieldAppToken])}
	api := newAPI(lp.n, meta.Token, meta.AppToken)
	auth, err := api.AuthTestContext(ctx)
	if err != nil {
		if code, ok := authError(err); ok {
			return nil, fmt.Errorf("slack refused the token: %s (%s)", authErrors[code], code)
		}
		return nil, fmt.Errorf("asking Slack who the token is: %w", err)
	}
	if (lp.mode == modeBot) != (auth.BotID != "") {
		return nil, fmt.Errorf("that is not a %s token", lp.mode)
	}
	meta.TeamID, meta.TeamName, meta.UserID = auth.TeamID, auth.Team, auth.UserID
	remote := auth.User + " (" + auth.Team + ")"
	login, err := lp.user.NewLogin(ctx, &database.UserLogin{
		ID:         loginID(auth.TeamID, auth.UserID),
		RemoteName: remote,
		Metadata:   meta,
	}, &bridgev2.NewLoginParams{
		DeleteOnConflict: true,
		LoadUserLogin: func(_ context.Context, login *bridgev2.UserLogin) error {
			lp.n.newClient(login)
			return nil
		},
	})
	if err != nil {
		return nil, fmt.Errorf("saving the login: %w", err)
	}
	login.Client.Connect(login.Log.WithContext(context.WithoutCancel(ctx)))
	return &bridgev2.LoginStep{
		Type:           bridgev2.LoginStepTypeComplete,
		StepID:         stepDone,
		Instructions:   fmt.Sprintf("Logged in to Slack as %s.", remote),
		CompleteParams: &bridgev2.LoginCompleteParams{UserLoginID: login.ID, UserLogin: login},
	}, nil
}

func (lp *loginProcess) Cancel() {}
