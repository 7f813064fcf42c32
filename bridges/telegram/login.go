package telegram

import (
	"context"
	"errors"
	"fmt"
	"strings"

	tgbot "github.com/go-telegram/bot"

	"maunium.net/go/mautrix/bridgev2"
	"maunium.net/go/mautrix/bridgev2/database"
)

const (
	flowBot    = "bot"
	stepToken  = "org.tributary.telegram.bot_token"
	stepDone   = "org.tributary.telegram.complete"
	fieldToken = "token"
)

func (n *Connector) GetLoginFlows() []bridgev2.LoginFlow {
	flows := []bridgev2.LoginFlow{{
		ID:          flowBot,
		Name:        "Bot token",
		Description: "Bridge the chats of a Telegram bot (a relay bot): give the token @BotFather gave you.",
	}}
	if n.Config.APIID != 0 {
		flows = append(flows, bridgev2.LoginFlow{
			ID:          flowPhone,
			Name:        "Phone number",
			Description: "Log in with your own Telegram account: phone number, the code Telegram sends, and the two-step password if you have one.",
		})
	}
	return flows
}

func (n *Connector) CreateLogin(ctx context.Context, user *bridgev2.User, flowID string) (bridgev2.LoginProcess, error) {
	if flowID == flowPhone && n.Config.APIID != 0 {
		return n.newPhoneLogin(ctx, user)
	}
	if flowID != flowBot {
		return nil, fmt.Errorf("telegram: unknown login flow %q", flowID)
	}
	return &botLogin{net: n, user: user}, nil
}

// botLogin asks for a bot token, checks it with getMe and makes the login.
type botLogin struct {
	net  *Connector
	user *bridgev2.User
}

var _ bridgev2.LoginProcessUserInput = (*botLogin)(nil)

func (lp *botLogin) Start(context.Context) (*bridgev2.LoginStep, error) {
	return &bridgev2.LoginStep{
		Type:         bridgev2.LoginStepTypeUserInput,
		StepID:       stepToken,
		Instructions: "Send the bot's token (from @BotFather). Add the bot to the groups to bridge; it bridges what it can see there.",
		UserInputParams: &bridgev2.LoginUserInputParams{Fields: []bridgev2.LoginInputDataField{{
			Type: bridgev2.LoginInputFieldTypePassword,
			ID:   fieldToken,
			Name: "Bot token",
			Validate: func(s string) (string, error) {
				s = strings.TrimSpace(s)
				if id, _, ok := strings.Cut(s, ":"); !ok || id == "" {
					return "", errors.New("a bot token looks like 123456:ABC-DEF…")
				}
				return s, nil
			},
		}}},
	}, nil
}

func (lp *botLogin) Cancel() {}

func (lp *botLogin) SubmitUserInput(ctx context.Context, input map[string]string) (*bridgev2.LoginStep, error) {
	token := strings.TrimSpace(input[fieldToken])
	b, err := lp.net.newBot(token)
	if err != nil {
		return nil, err
	}
	me, err := b.GetMe(ctx)
	if err != nil {
		if errors.Is(err, tgbot.ErrorUnauthorized) || errors.Is(err, tgbot.ErrorNotFound) {
			return nil, fmt.Errorf("this token is unknown to Telegram: %w", err)
		}
		return nil, fmt.Errorf("telegram: getMe: %w", err)
	}
	name := "@" + me.Username
	login, err := lp.user.NewLogin(ctx, &database.UserLogin{
		ID:         loginIDOf(me.ID),
		RemoteName: name,
		Metadata:   &LoginMetadata{Token: token, BotID: me.ID, Username: me.Username},
	}, &bridgev2.NewLoginParams{DeleteOnConflict: true})
	if err != nil {
		return nil, fmt.Errorf("telegram: saving the login: %w", err)
	}
	go login.Client.Connect(login.Log.WithContext(lp.net.br.BackgroundCtx))
	return &bridgev2.LoginStep{
		Type:           bridgev2.LoginStepTypeComplete,
		StepID:         stepDone,
		Instructions:   fmt.Sprintf("Logged in as the bot %s", name),
		CompleteParams: &bridgev2.LoginCompleteParams{UserLoginID: login.ID, UserLogin: login},
	}, nil
}
