package slack

import (
	"context"
	"net/http"
	"slices"
	"strings"

	"github.com/rs/zerolog"
	"github.com/slack-go/slack"
	"maunium.net/go/mautrix/bridgev2"
	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/bridges/slack/slackfmt"
)

// Relay. A bot login is the relay of its workspace's portals (Config.Relay,
// on by default): a Matrix user without a Slack login of their own talks
// through the bot, as with mautrix-slack's relay, but without anyone having
// to run set-relay in each room, since relaying is what an app installed in
// the workspace is for. Their messages, like those of the login's own
// user (the bot posts for both), carry their Matrix name and avatar as
// the post's username and icon_url, which Slack honours when the app
// has the chat:write.customize scope; without it Slack silently ignores
// both, so the bridge, seeing the scope missing from X-OAuth-Scopes,
// writes "*name*: text" instead. A user token cannot relay (Slack never
// lets a user post under another name).

// relayUpdater makes the bot the relay of a portal that has none.
func (c *Client) relayUpdater(ctx context.Context, portal *bridgev2.Portal) bool {
	if portal.Relay != nil {
		return false
	}
	if err := portal.SetRelay(ctx, c.login); err != nil {
		zerolog.Ctx(ctx).Err(err).Msg("setting the Slack bot as the portal's relay")
	}
	return false
}

// relays reports whether this login relays for its portals.
func (c *Client) relays() bool { return c.meta.Mode == modeBot && c.n.Config.Relay }

// scopeWatcher hands the headers of every Web API answer to seen (slack-go's
// OptionOnResponseHeaders misses the chat.* calls, which it sends itself).
type scopeWatcher struct {
	next *http.Client
	seen func(http.Header)
}

func (s scopeWatcher) Do(req *http.Request) (*http.Response, error) {
	resp, err := s.next.Do(req)
	// apps.connections.open answers the app-level token, with its scopes.
	if err == nil && !strings.HasSuffix(req.URL.Path, "/apps.connections.open") {
		s.seen(resp.Header)
	}
	return resp, err
}

// scopes notes from Slack's answers whether the token may customize posts.
func (c *Client) scopes(h http.Header) {
	if list := h.Get("X-OAuth-Scopes"); list != "" {
		scopes := strings.Split(list, ",")
		for i := range scopes {
			scopes[i] = strings.TrimSpace(scopes[i])
		}
		c.noCustomize.Store(!slices.Contains(scopes, "chat:write.customize"))
	}
}

// poster is the Matrix user a bot login posts for: the relayed user
// (bridgev2's disambiguated name), or the login's own user (their display
// name in the room). nil: the post is the login's own (a user token).
func (c *Client) poster(ctx context.Context, portal *bridgev2.Portal, sender id.UserID, orig *bridgev2.OrigSender) *bridgev2.OrigSender {
	if orig != nil || c.meta.Mode != modeBot {
		return orig
	}
	p := &bridgev2.OrigSender{UserID: sender, DisambiguatedName: sender.String()}
	if m, err := c.n.br.Matrix.GetMemberInfo(ctx, portal.MXID, sender); err == nil && m != nil {
		p.MemberEventContent = *m
		if m.Displayname != "" {
			p.DisambiguatedName = m.Displayname
		}
	}
	return p
}

// relayName is the name a Matrix user posts under.
func relayName(p *bridgev2.OrigSender) string {
	name := p.DisambiguatedName
	if name == "" {
		name = p.UserID.String()
	}
	// Slack cuts usernames at 80 characters.
	if r := []rune(name); len(r) > 80 {
		name = string(r[:80])
	}
	return name
}

// postOptions are the options and text of a post for a Matrix user: their
// name and avatar; or, when Slack would ignore them (a user token, or a bot
// token without chat:write.customize), the text prefixed with the name.
func (c *Client) postOptions(p *bridgev2.OrigSender, text string) (string, []slack.MsgOption) {
	if p == nil {
		return text, nil
	}
	if c.namesInText() {
		return relayPrefix(p, text), nil
	}
	opts := []slack.MsgOption{slack.MsgOptionUsername(relayName(p))}
	if icon := c.n.Config.avatarURL(p.AvatarURL); icon != "" {
		opts = append(opts, slack.MsgOptionIconURL(icon))
	}
	return text, opts
}

// namesInText: a post can carry no username, so the text names its sender.
func (c *Client) namesInText() bool { return c.meta.Mode != modeBot || c.noCustomize.Load() }

// relayPrefix is "*name*: text" (mrkdwn bold).
func relayPrefix(p *bridgev2.OrigSender, text string) string {
	name := "*" + slackfmt.Escape(relayName(p)) + "*"
	if text == "" {
		return name
	}
	return name + ": " + text
}
