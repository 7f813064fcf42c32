package discord

import (
	"context"
	"time"

	"github.com/bwmarrin/discordgo"
	"maunium.net/go/mautrix/bridgev2"
	"maunium.net/go/mautrix/bridgev2/networkid"
	"maunium.net/go/mautrix/bridgev2/simplevent"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

// Roles ↔ power levels. A guild member's ghost gets, in the guild's space
// and in each of its channels' rooms:
//
//   - 100 (admin) as the guild's owner, or with a role granting
//     Administrator or Manage Server;
//   - 50 (moderator) with a role granting Manage Messages, Manage
//     Channels, Manage Roles, Kick Members, Ban Members or Timeout Members;
//   - 0 otherwise.
//
// The permissions are the guild-level ones: the @everyone role's and the
// member's roles', ORed; channel permission overwrites are not read.
// Levels are set in the power levels without making ghosts join: a ghost
// joins when it first speaks. Only members the gateway told of (the
// guild's member list, member updates) count, so the bot needs the Server
// Members intent. Role and member changes on Discord resync the levels of
// the guild's rooms; a ghost that is no longer admin or moderator goes
// back to 0. Levels set on Matrix are not sent to Discord.
const (
	levelAdmin     = 100
	levelModerator = 50
)

const (
	permsAdmin     = discordgo.PermissionAdministrator | discordgo.PermissionManageServer
	permsModerator = discordgo.PermissionManageMessages | discordgo.PermissionManageChannels |
		discordgo.PermissionManageRoles | discordgo.PermissionKickMembers | discordgo.PermissionBanMembers |
		discordgo.PermissionModerateMembers
)

// levelOf is the power level of a guild's member with roles (by ID).
func levelOf(g *discordgo.Guild, userID string, roles []string) int {
	if userID != "" && userID == g.OwnerID {
		return levelAdmin
	}
	var perms int64
	for _, r := range g.Roles {
		if r.ID == g.ID { // @everyone
			perms |= r.Permissions
			continue
		}
		for _, have := range roles {
			if have == r.ID {
				perms |= r.Permissions
			}
		}
	}
	switch {
	case perms&permsAdmin != 0:
		return levelAdmin
	case perms&permsModerator != 0:
		return levelModerator
	}
	return 0
}

// guildLevels is the non-zero power levels of a guild's members the state
// knows, by Discord user ID.
func guildLevels(s *discordgo.Session, guildID string) map[networkid.UserID]int {
	g, err := s.State.Guild(guildID)
	if err != nil {
		return nil
	}
	s.State.RLock()
	defer s.State.RUnlock()
	levels := map[networkid.UserID]int{}
	if g.OwnerID != "" {
		levels[networkid.UserID(g.OwnerID)] = levelAdmin
	}
	for _, m := range g.Members {
		if m == nil || m.User == nil {
			continue
		}
		if l := levelOf(g, m.User.ID, m.Roles); l > 0 {
			levels[networkid.UserID(m.User.ID)] = l
		}
	}
	return levels
}

// powerLevels is the change a guild's rooms need for its members' levels:
// each admin's or moderator's ghost at its level, and the bridge's other
// ghosts with a level back at the default.
func (c *Client) powerLevels(s *discordgo.Session, guildID string) *bridgev2.PowerLevelOverrides {
	levels := guildLevels(s, guildID)
	matrix := c.net.br.Matrix
	return &bridgev2.PowerLevelOverrides{Custom: func(pl *event.PowerLevelsEventContent) bool {
		changed := false
		want := make(map[id.UserID]int, len(levels))
		for u, l := range levels {
			want[matrix.FormatGhostMXID(u)] = l
		}
		for u := range pl.Users {
			if _, ghost := matrix.ParseGhostMXID(u); ghost {
				if _, keep := want[u]; !keep {
					delete(pl.Users, u)
					changed = true
				}
			}
		}
		for u, l := range want {
			if pl.GetUserLevel(u) != l {
				pl.SetUserLevel(u, l)
				changed = true
			}
		}
		return changed
	}}
}

// guildChanged resyncs the power levels of a guild's rooms that exist
// after its roles or a member's roles changed.
func (c *Client) guildChanged(s *discordgo.Session, guildID string) {
	g, err := s.State.Guild(guildID)
	if err != nil {
		return
	}
	keys := []networkid.PortalKey{{ID: networkid.PortalID("*" + guildID)}}
	s.State.RLock()
	for _, ch := range g.Channels {
		keys = append(keys, networkid.PortalKey{ID: networkid.PortalID(ch.ID)})
	}
	s.State.RUnlock()
	ctx := context.Background()
	for _, key := range keys {
		if p, err := c.net.br.GetExistingPortalByKey(ctx, key); err != nil || p == nil || p.MXID == "" {
			continue
		}
		c.login.QueueRemoteEvent(&simplevent.ChatInfoChange{
			EventMeta: simplevent.EventMeta{Type: bridgev2.RemoteEventChatInfoChange, PortalKey: key, Timestamp: time.Now()},
			ChatInfoChange: &bridgev2.ChatInfoChange{MemberChanges: &bridgev2.ChatMemberList{
				MemberMap: bridgev2.ChatMemberMap{}, PowerLevels: c.powerLevels(s, guildID)}},
		})
	}
}

// onMemberUpdate resyncs the guild's levels when a member's level changed
// (not for a nickname, say).
func (c *Client) onMemberUpdate(s *discordgo.Session, m *discordgo.GuildMemberUpdate) {
	if m.Member == nil || m.User == nil {
		return
	}
	if before := m.BeforeUpdate; before != nil {
		if g, err := s.State.Guild(m.GuildID); err == nil {
			s.State.RLock()
			same := levelOf(g, m.User.ID, before.Roles) == levelOf(g, m.User.ID, m.Roles)
			s.State.RUnlock()
			if same {
				return
			}
		}
	}
	c.guildChanged(s, m.GuildID)
}

func (c *Client) onRoleCreate(s *discordgo.Session, r *discordgo.GuildRoleCreate) {
	c.guildChanged(s, r.GuildID)
}

func (c *Client) onRoleUpdate(s *discordgo.Session, r *discordgo.GuildRoleUpdate) {
	c.guildChanged(s, r.GuildID)
}

func (c *Client) onRoleDelete(s *discordgo.Session, r *discordgo.GuildRoleDelete) {
	c.guildChanged(s, r.GuildID)
}
