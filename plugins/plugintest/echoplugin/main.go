// Command echoplugin is the echo bridge of the plugin tests: for each
// m.room.message from a user outside its namespace it replies in the same
// room as its ghost "<prefix>echo", with the body "echo: <body>", one
// millisecond after the original; its ghost accepts invites. On
// "!hang" it never acknowledges; on "!impersonate" it tries to send as the user and echoes the host's error;
// on "!portal" its ghost creates a room, invites the user and backfills
// three messages with their original times and its own event IDs
// ($echohistory<i>:<server>), then answers "echo: portal <room ID>". Its flag -mode=bad-handshake makes it
// answer the handshake with an API version the host does not speak.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"regexp"
	"strings"
	"time"

	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/plugins/sdk"
)

func main() {
	mode := flag.String("mode", "echo", "echo or bad-handshake")
	flag.Parse()
	if *mode == "bad-handshake" {
		// What a plugin of a future API version would answer.
		fmt.Println("1|99|unix|/nonexistent|grpc|")
		os.Exit(0)
	}
	sdk.ServePlugin(&echo{})
}

type echo struct {
	env    *sdk.Env
	ghosts *regexp.Regexp
	ghost  id.UserID
}

func (e *echo) Describe() sdk.Info {
	return sdk.Info{Network: "echo", Name: "Echo bridge", Version: "1"}
}

func (e *echo) Start(ctx context.Context, env *sdk.Env) error {
	e.env = env
	if env.GhostUserRegex != "" {
		re, err := regexp.Compile(env.GhostUserRegex)
		if err != nil {
			return err
		}
		e.ghosts = re
	}
	e.ghost = id.NewUserID(env.GhostLocalpartPrefix+"echo", env.ServerName)
	env.Logger.Info("echo bridge starting", "ghost", e.ghost)
	return env.Host.EnsureRegistered(ctx, e.ghost)
}

func (e *echo) Stop(context.Context) error { return nil }

func (e *echo) HandleEvent(ctx context.Context, ev *event.Event) error {
	if ev.Type.Type == event.StateMember.Type && ev.StateKey != nil && id.UserID(*ev.StateKey) == e.ghost {
		var m event.MemberEventContent
		if json.Unmarshal(ev.Content.VeryRaw, &m) == nil && m.Membership == event.MembershipInvite {
			return e.env.Host.Join(ctx, ev.RoomID, e.ghost)
		}
		return nil
	}
	if ev.Type.Type != event.EventMessage.Type || ev.Sender == e.env.BotUserID || e.ours(ev.Sender) {
		return nil
	}
	var msg event.MessageEventContent
	if err := json.Unmarshal(ev.Content.VeryRaw, &msg); err != nil {
		return nil // not a message we understand: nothing to echo
	}
	if msg.Body == "!hang" {
		// Event handling stuck, while the process answers health checks.
		<-ctx.Done()
		return ctx.Err()
	}
	if msg.Body == "!impersonate" {
		// Acting as a user outside the plugin's namespace must be refused;
		// the ghost reports what the host answered.
		_, err := e.env.Host.SendEvent(ctx, ev.RoomID, ev.Sender, event.EventMessage,
			&event.MessageEventContent{MsgType: event.MsgText, Body: "impersonated"}, time.Time{}, "")
		msg.Body = fmt.Sprintf("impersonating %s: %v", ev.Sender, err)
	}
	if msg.Body == "!portal" {
		room, err := e.portal(ctx, ev.Sender)
		if err != nil {
			return err
		}
		msg.Body = "portal " + string(room)
	}
	if msg.RelatesTo != nil && msg.RelatesTo.InReplyTo != nil {
		msg.Body += " (in reply to " + string(msg.RelatesTo.InReplyTo.EventID) + ")"
	}
	reply := event.MessageEventContent{MsgType: event.MsgNotice, Body: "echo: " + msg.Body}
	ts := time.UnixMilli(ev.Timestamp + 1)
	_, err := e.env.Host.SendEvent(ctx, ev.RoomID, e.ghost, event.EventMessage, &reply, ts, "echo-"+string(ev.ID))
	if err != nil {
		fmt.Fprintf(os.Stderr, "echo: replying to %s: %v\n", ev.ID, err)
	}
	return err
}

func (e *echo) ours(u id.UserID) bool {
	if e.ghosts != nil {
		return e.ghosts.MatchString(string(u))
	}
	return strings.HasPrefix(u.Localpart(), e.env.GhostLocalpartPrefix)
}

// portalHistoryStart is the time of the first backfilled message of a
// portal; message i is i minutes later, from ghost "<prefix>h<i>".
const portalHistoryStart = 1_600_000_000_000

func (e *echo) portal(ctx context.Context, user id.UserID) (id.RoomID, error) {
	var senders []id.UserID
	for i := range 3 {
		sender := id.NewUserID(fmt.Sprintf("%sh%d", e.env.GhostLocalpartPrefix, i), e.env.ServerName)
		if err := e.env.Host.EnsureRegistered(ctx, sender); err != nil {
			return "", err
		}
		senders = append(senders, sender)
	}
	room, err := e.env.Host.CreateRoom(ctx, e.ghost, map[string]any{"preset": "private_chat",
		"name": "Echo portal", "invite": append([]id.UserID{user}, senders...)}, time.Time{})
	if err != nil {
		return "", err
	}
	var evs []sdk.BatchEvent
	for i, sender := range senders {
		if err := e.env.Host.Join(ctx, room, sender); err != nil {
			return "", err
		}
		evs = append(evs, sdk.BatchEvent{Sender: sender, Type: event.EventMessage,
			ID:      id.EventID(fmt.Sprintf("$echohistory%d:%s", i, e.env.ServerName)),
			Content: &event.MessageEventContent{MsgType: event.MsgText, Body: fmt.Sprintf("history %d", i)},
			Time:    time.UnixMilli(portalHistoryStart + int64(i)*60_000)})
	}
	_, err = e.env.Host.BatchSend(ctx, room, true, evs)
	return room, err
}
