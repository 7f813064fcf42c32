package slack

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/slack-go/slack"
	"maunium.net/go/mautrix/bridgev2"
	"maunium.net/go/mautrix/bridgev2/database"
	"maunium.net/go/mautrix/bridgev2/networkid"
	"maunium.net/go/mautrix/event"

	"github.com/tributary-hs/tributary/bridges/slack/slackfmt"
)

// maxMembers bounds the member list a portal is synced with (the first
// page of conversations.members); a larger channel is not listed in full.
const maxMembers = 500

// GetChatInfo describes a conversation (or, for the portal "TEAM", the
// workspace's space).
func (c *Client) GetChatInfo(ctx context.Context, portal *bridgev2.Portal) (*bridgev2.ChatInfo, error) {
	team, channel := parsePortalID(portal.ID)
	if team != c.meta.TeamID {
		return nil, fmt.Errorf("portal %s is not of workspace %s", portal.ID, c.meta.TeamID)
	}
	if channel == "" {
		name := c.meta.TeamName
		if name == "" {
			name = team
		}
		return &bridgev2.ChatInfo{Name: &name, Type: new(database.RoomTypeSpace)}, nil
	}
	ch, err := c.api.GetConversationInfoContext(ctx, &slack.GetConversationInfoInput{ChannelID: channel})
	if err != nil {
		return nil, c.checkAuth(err)
	}
	info := &bridgev2.ChatInfo{CanBackfill: false}
	members := &bridgev2.ChatMemberList{MemberMap: bridgev2.ChatMemberMap{}}
	me := bridgev2.ChatMember{EventSender: c.sender(c.meta.UserID), Membership: event.MembershipJoin}
	members.MemberMap.Set(me)
	switch {
	case ch.IsIM:
		info.Type = new(database.RoomTypeDM)
		other := bridgev2.ChatMember{EventSender: c.sender(ch.User), Membership: event.MembershipJoin}
		members.MemberMap.Set(other)
		members.OtherUserID = other.Sender
		members.IsFull = true
	default:
		if ch.IsMpIM {
			info.Type = new(database.RoomTypeGroupDM)
		} else {
			info.Name = new(ch.Name)
			parent := networkid.PortalID(team)
			info.ParentID = &parent
		}
		if topic := slackfmt.DecodeEntities(ch.Topic.Value); topic != "" {
			info.Topic = &topic
		}
		ids, next, err := c.api.GetUsersInConversationContext(ctx, &slack.GetUsersInConversationParameters{
			ChannelID: channel, Limit: maxMembers})
		if err != nil {
			return nil, c.checkAuth(err)
		}
		for _, u := range ids {
			members.MemberMap.Set(bridgev2.ChatMember{EventSender: c.sender(u), Membership: event.MembershipJoin})
		}
		members.IsFull = next == ""
	}
	info.Members = members
	if c.relays() {
		info.ExtraUpdates = c.relayUpdater
	}
	return info, nil
}

// sender is the event sender of a Slack user as this login sees them.
func (c *Client) sender(slackUser string) bridgev2.EventSender {
	s := bridgev2.EventSender{Sender: userID(c.meta.TeamID, slackUser)}
	if slackUser == c.meta.UserID {
		s.IsFromMe = true
		s.SenderLogin = c.login.ID
	}
	return s
}

// GetUserInfo is a ghost's profile: the Slack user's name and picture.
func (c *Client) GetUserInfo(ctx context.Context, ghost *bridgev2.Ghost) (*bridgev2.UserInfo, error) {
	team, user := parseUserID(ghost.ID)
	if team != c.meta.TeamID {
		return nil, nil
	}
	u, err := c.user(ctx, user)
	var se slack.SlackErrorResponse
	if errors.As(err, &se) && se.Err == "user_not_found" {
		return nil, nil // a bot ID (B…) that posted with a name of its own
	} else if err != nil {
		return nil, err
	}
	name := displayName(u)
	info := &bridgev2.UserInfo{Name: &name, IsBot: &u.IsBot, Identifiers: []string{"slack:" + u.ID}}
	if src := u.Profile.Image512; src != "" {
		info.Avatar = &bridgev2.Avatar{ID: networkid.AvatarID(src), Get: func(ctx context.Context) ([]byte, error) {
			return c.download(ctx, src, false)
		}}
	}
	return info, nil
}

// download fetches a file of Slack: url_private wants the token, avatars
// are public.
func (c *Client) download(ctx context.Context, src string, withToken bool) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, src, nil)
	if err != nil {
		return nil, err
	}
	if withToken {
		if !c.mayGetToken(req.URL) {
			return nil, fmt.Errorf("refusing to send the Slack token to %s", req.URL.Host)
		}
		req.Header.Set("Authorization", "Bearer "+c.meta.Token)
	}
	resp, err := c.n.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", src, resp.Status)
	}
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		// Slack answers a file request without a working token with its
		// login page.
		return nil, fmt.Errorf("GET %s: a web page, not the file (is the token right?)", src)
	}
	return io.ReadAll(resp.Body)
}

// mayGetToken reports whether a file URL is Slack's: an https URL of
// slack.com or slack-files.com, or the configured API's own host (a fake
// Slack in tests). A message could name any URL as a file.
func (c *Client) mayGetToken(u *url.URL) bool {
	if api, err := url.Parse(c.n.Config.APIURL); err == nil && strings.EqualFold(api.Host, u.Host) && api.Scheme == u.Scheme {
		return true
	}
	host := strings.ToLower(u.Hostname())
	return u.Scheme == "https" && (host == "slack.com" || strings.HasSuffix(host, ".slack.com") ||
		host == "slack-files.com" || strings.HasSuffix(host, ".slack-files.com"))
}
