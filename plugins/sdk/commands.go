package sdk

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix/bridgev2"
	"maunium.net/go/mautrix/bridgev2/commands"
	bstatus "maunium.net/go/mautrix/bridgev2/status"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

// commandPatience is how long a user's command waits for the one before
// it that neither finished nor changed what the bot waits for from the
// user: then it runs alongside, as bridgev2 would run it.
const commandPatience = 5 * time.Second

// commandQueue hands each user's bot commands to bridgev2 in the order
// they were sent, each once the one before it is ready for it.
//
// bridgev2 runs every command on a goroutine of its own, and a command
// that asks the user for something ("Please enter your password") sends
// the question before it stores what it waits for (the user's command
// state). A client that answers at once can beat that store; its answer
// then reaches the command parser ("Unknown command") and the login never
// goes on. So a command starts only once the one before it has finished
// or has stored a new command state (a login that waits for its QR code
// to be scanned has, and can be cancelled meanwhile), or after
// commandPatience.
type commandQueue struct {
	patience time.Duration
	// waiting, when set, is called as a command starts waiting for the
	// one before it (tests).
	waiting func()

	mu    sync.Mutex
	users map[id.UserID]*userCommands
}

// userCommands are one user's commands: those not yet handed to
// bridgev2, and the last one that was.
type userCommands struct {
	pending  []queuedCommand
	last     *commandRun
	draining bool
}

type queuedCommand struct {
	ctx     context.Context
	eventID id.EventID
	// state reads the user's command state.
	state func() *commands.CommandState
	// start hands the command to bridgev2 on ctx and reports whether
	// bridgev2 took it as a command (it then reports its end: finish).
	start func(ctx context.Context) bool
}

// commandRun is a command handed to bridgev2.
type commandRun struct {
	eventID id.EventID
	// state is the user's command state as the command started.
	state *commands.CommandState
	done  chan struct{}
	once  sync.Once
}

func (r *commandRun) finish() { r.once.Do(func() { close(r.done) }) }

type commandRunKey struct{}

func newCommandQueue() *commandQueue {
	return &commandQueue{patience: commandPatience, users: map[id.UserID]*userCommands{}}
}

// enqueue queues a command of user; it is handed to bridgev2 on a
// goroutine of the queue's, after the user's earlier commands.
func (q *commandQueue) enqueue(user id.UserID, c queuedCommand) {
	q.mu.Lock()
	defer q.mu.Unlock()
	u := q.users[user]
	if u == nil {
		u = &userCommands{}
		q.users[user] = u
	}
	u.pending = append(u.pending, c)
	if !u.draining {
		u.draining = true
		go q.drain(user, u)
	}
}

func (q *commandQueue) drain(user id.UserID, u *userCommands) {
	for {
		q.mu.Lock()
		if len(u.pending) == 0 {
			u.draining = false
			if u.last == nil || isClosed(u.last.done) {
				delete(q.users, user)
			}
			q.mu.Unlock()
			return
		}
		c := u.pending[0]
		u.pending = u.pending[1:]
		last := u.last
		q.mu.Unlock()

		q.await(c, last)
		run := &commandRun{eventID: c.eventID, state: c.state(), done: make(chan struct{})}
		q.mu.Lock()
		u.last = run
		q.mu.Unlock()
		if !c.start(context.WithValue(c.ctx, commandRunKey{}, run)) {
			run.finish()
		}
	}
}

// await waits until the command before c is ready for it.
func (q *commandQueue) await(c queuedCommand, last *commandRun) {
	if last == nil || isClosed(last.done) {
		return
	}
	// A command that stored a new state waits for the user (a login
	// showing a QR code); one that cleared it or kept it may still be
	// about to store what it asks for.
	if now := c.state(); now != nil && now != last.state {
		return
	}
	if q.waiting != nil {
		q.waiting()
	}
	timer := time.NewTimer(q.patience)
	defer timer.Stop()
	select {
	case <-last.done:
	case <-c.ctx.Done():
	case <-timer.C:
		zerolog.Ctx(c.ctx).Warn().Stringer("previous_command", last.eventID).
			Msg("The previous command is still running; running this one alongside")
	}
}

func isClosed(ch chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// commandFinished: bridgev2 reports a command's end with its status.
func commandFinished(ctx context.Context, ms *bridgev2.MessageStatus, evt *bridgev2.MessageStatusEventInfo) {
	if run, ok := ctx.Value(commandRunKey{}).(*commandRun); ok && ms.Step == bstatus.MsgStepCommand &&
		evt.SourceEventID == run.eventID {
		run.finish()
	}
}

// queueCommand queues evt when bridgev2 would take it as a bot command
// (a message in the sender's management room, or with the command
// prefix), and reports whether it did.
func (r *bridgeRunner) queueCommand(ctx context.Context, br *bridgev2.Bridge, evt *event.Event) bool {
	if evt.Type != event.EventMessage {
		return false
	}
	msg, ok := evt.Content.Parsed.(*event.MessageEventContent)
	if !ok {
		return false
	}
	user, err := br.GetUserByMXID(ctx, evt.Sender)
	if err != nil || user == nil {
		return false // bridgev2 reports it
	}
	body := *msg
	body.RemoveReplyFallback()
	if evt.RoomID != user.ManagementRoom && !strings.HasPrefix(body.Body, br.Config.CommandPrefix) {
		return false
	}
	r.cmdQueue.enqueue(evt.Sender, queuedCommand{ctx: ctx, eventID: evt.ID,
		state: func() *commands.CommandState { return commands.LoadCommandState(user) },
		start: func(ctx context.Context) bool {
			return br.QueueMatrixEvent(ctx, evt).Queued
		}})
	return true
}
