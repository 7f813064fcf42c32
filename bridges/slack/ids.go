package slack

import (
	"fmt"
	"strings"

	"maunium.net/go/mautrix/bridgev2/networkid"
)

// The IDs of mautrix-slack (slackid), so that imported rooms, ghosts and
// messages are this bridge's own.

func portalID(team, channel string) networkid.PortalID {
	return networkid.PortalID(team + "-" + channel)
}

func portalKey(team, channel string) networkid.PortalKey {
	return networkid.PortalKey{ID: portalID(team, channel)}
}

// parsePortalID splits "TEAM-CHANNEL"; a team's own portal has no channel.
func parsePortalID(p networkid.PortalID) (team, channel string) {
	team, channel, _ = strings.Cut(string(p), "-")
	return team, channel
}

func userID(team, user string) networkid.UserID {
	return networkid.UserID(strings.ToLower(team + "-" + user))
}

// parseUserID returns the Slack user ID of a ghost (Slack IDs are upper
// case).
func parseUserID(u networkid.UserID) (team, user string) {
	team, user, _ = strings.Cut(string(u), "-")
	return strings.ToUpper(team), strings.ToUpper(user)
}

func loginID(team, user string) networkid.UserLoginID {
	return networkid.UserLoginID(team + "-" + user)
}

func messageID(team, channel, ts string) networkid.MessageID {
	return networkid.MessageID(team + "-" + channel + "-" + ts)
}

// parseMessageID splits "TEAM-CHANNEL-TS".
func parseMessageID(m networkid.MessageID) (team, channel, ts string, err error) {
	parts := strings.SplitN(string(m), "-", 3)
	if len(parts) != 3 {
		return "", "", "", fmt.Errorf("not a Slack message ID: %q", m)
	}
	return parts[0], parts[1], parts[2], nil
}

// filePartID is the part of a message's i-th file (the importer's too); a
// message without text has its first file as part "".
func filePartID(i int, fileID string, hasText bool) networkid.PartID {
	if i == 0 && !hasText {
		return ""
	}
	return networkid.PartID(fmt.Sprintf("file-%d-%s", i, fileID))
}
