package irc

import (
	"strings"

	"maunium.net/go/mautrix/bridgev2/commands"
)

// commands are the bot commands the IRC bridge adds to bridgev2's.
func (n *Connector) commands() []commands.CommandHandler {
	return []commands.CommandHandler{
		&commands.FullHandler{
			Func: n.cmdJoin,
			Name: "join",
			Help: commands.HelpMeta{Section: commands.HelpSectionChats,
				Description: "Join an IRC channel; its room is created or you are invited to it",
				Args:        "<_#channel_> [_key_]"},
			RequiresLogin: true,
		},
		&commands.FullHandler{
			Func: n.cmdPart,
			Name: "part",
			Help: commands.HelpMeta{Section: commands.HelpSectionChats,
				Description: "Leave an IRC channel (in a portal: its channel)",
				Args:        "[_#channel_] [_reason_]"},
			RequiresLogin: true,
		},
		&commands.FullHandler{
			Func: n.cmdNick,
			Name: "nick",
			Help: commands.HelpMeta{Section: commands.HelpSectionAuth,
				Description: "Change your IRC nick (kept across reconnects)",
				Args:        "<_nick_>"},
			RequiresLogin: true,
		},
	}
}

func (n *Connector) clientFor(ce *commands.Event) *Client {
	c, ok := n.loginByUser(ce.User.MXID)
	if !ok {
		ce.Reply("You are not logged in to %s.", n.Config.DisplayName)
		return nil
	}
	return c
}

func (n *Connector) cmdJoin(ce *commands.Event) {
	if len(ce.Args) == 0 {
		ce.Reply("Usage: `join <#channel> [key]`")
		return
	}
	c := n.clientFor(ce)
	if c == nil {
		return
	}
	key := ""
	if len(ce.Args) > 1 {
		key = ce.Args[1]
	}
	if err := c.JoinChannel(ce.Ctx, ce.Args[0], key); err != nil {
		ce.Reply("Failed to join %s: %v", ce.Args[0], err)
		return
	}
	ce.Reply("Joined %s: you are invited to its room.", ce.Args[0])
}

func (n *Connector) cmdPart(ce *commands.Event) {
	c := n.clientFor(ce)
	if c == nil {
		return
	}
	var channel, reason string
	args := ce.Args
	if len(args) > 0 && strings.ContainsAny(args[0][:1], "#&+!") {
		channel, args = args[0], args[1:]
	} else if ce.Portal != nil {
		if name, isChannel, err := c.target(ce.Ctx, ce.Portal); err == nil && isChannel {
			channel = name
		}
	}
	if channel == "" {
		ce.Reply("Usage: `part [#channel] [reason]` (without a channel, in a channel's room)")
		return
	}
	reason = strings.Join(args, " ")
	if err := c.PartChannel(ce.Ctx, channel, reason); err != nil {
		ce.Reply("Failed to leave %s: %v", channel, err)
		return
	}
	ce.Reply("Left %s.", channel)
}

func (n *Connector) cmdNick(ce *commands.Event) {
	if len(ce.Args) != 1 || !ValidNick(ce.Args[0]) {
		ce.Reply("Usage: `nick <nick>` (letters, digits and `[]\\`^_{|}-`, not starting with a digit)")
		return
	}
	c := n.clientFor(ce)
	if c == nil {
		return
	}
	nick := ce.Args[0]
	c.mu.Lock()
	c.meta().Nick = nick
	c.login.RemoteName = nick
	c.mu.Unlock()
	c.saveLogin(ce.Ctx)
	if conn := c.currentConn(); conn != nil {
		if err := conn.SetNick(ce.Ctx, nick); err != nil {
			ce.Reply("Failed to change nick: %v", err)
			return
		}
	}
	ce.Reply("Your nick is now %s (if the server lets you have it; the bridge keeps asking).", nick)
}
