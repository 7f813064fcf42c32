package sdk

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"maunium.net/go/mautrix/bridgev2"
	"maunium.net/go/mautrix/bridgev2/commands"
	bstatus "maunium.net/go/mautrix/bridgev2/status"
	"maunium.net/go/mautrix/id"
)

// fakeCommands is a user's command state and the commands of a test.
type fakeCommands struct {
	t     *testing.T
	q     *commandQueue
	state atomic.Pointer[commands.CommandState]
}

func newFakeCommands(t *testing.T, patience time.Duration) *fakeCommands {
	q := newCommandQueue()
	q.patience = patience
	return &fakeCommands{t: t, q: q}
}

// enqueue queues a command of user whose run gets the context bridgev2
// would; started receives the command state the command started with.
func (f *fakeCommands) enqueue(user id.UserID, evID id.EventID, taken bool, run func(ctx context.Context)) <-chan *commands.CommandState {
	started := make(chan *commands.CommandState, 1)
	f.q.enqueue(user, queuedCommand{ctx: f.t.Context(), eventID: evID,
		state: f.state.Load,
		start: func(ctx context.Context) bool {
			started <- f.state.Load()
			if run != nil {
				go run(ctx)
			}
			return taken
		}})
	return started
}

// finished is what bridgev2 does as a command ends.
func finished(ctx context.Context, evID id.EventID) {
	commandFinished(ctx, &bridgev2.MessageStatus{Step: bstatus.MsgStepCommand},
		&bridgev2.MessageStatusEventInfo{SourceEventID: evID})
}

// receive fails the test when nothing comes within 10 s.
func receive[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	select {
	case v := <-ch:
		return v
	case <-ctx.Done():
		t.Fatalf("no %s", what)
	}
	var zero T
	return zero
}

// The answer to a prompt starts only once the command that prompted has
// stored what it waits for: bridgev2 sends the prompt first.
func TestCommandQueueAnswerWaitsForPrompt(t *testing.T) {
	f := newFakeCommands(t, time.Hour)
	prompted, release := make(chan struct{}), make(chan struct{})
	asks := &commands.CommandState{Action: "Login"}
	f.enqueue("@a:x", "$login", true, func(ctx context.Context) {
		close(prompted) // "Please enter your username" is out
		<-release
		f.state.Store(asks)
		finished(ctx, "$login")
	})
	<-prompted
	waiting := make(chan struct{})
	f.q.waiting = func() { close(waiting) }
	answer := f.enqueue("@a:x", "$answer", true, nil)
	select {
	case <-waiting:
	case <-answer:
		t.Fatal("the answer started before the login stored its state")
	}
	close(release)
	if got := receive(t, answer, "start of the answer"); got != asks {
		t.Fatalf("the answer started with state %v, want the login's", got)
	}
}

// A command that cleared the state (a login submitting what it was given,
// about to ask for more) is waited for as well.
func TestCommandQueueClearedStateWaits(t *testing.T) {
	f := newFakeCommands(t, time.Hour)
	f.state.Store(&commands.CommandState{Action: "Login"})
	cleared, release := make(chan struct{}), make(chan struct{})
	next := &commands.CommandState{Action: "Login"}
	f.enqueue("@a:x", "$phone", true, func(ctx context.Context) {
		f.state.Store(nil)
		close(cleared) // "Please enter your code" is out
		<-release
		f.state.Store(next)
		finished(ctx, "$phone")
	})
	<-cleared
	waiting := make(chan struct{})
	f.q.waiting = func() { close(waiting) }
	code := f.enqueue("@a:x", "$code", true, nil)
	select {
	case <-waiting:
	case <-code:
		t.Fatal("the code started while the state was cleared")
	}
	close(release)
	if got := receive(t, code, "start of the code"); got != next {
		t.Fatalf("the code started with state %v, want the login's next", got)
	}
}

// A command that stored a new state and waits (a QR login) lets the next
// one run: "cancel" must reach it.
func TestCommandQueueWaitingLoginLetsCancelThrough(t *testing.T) {
	f := newFakeCommands(t, time.Hour)
	shown, done := make(chan struct{}), make(chan struct{})
	t.Cleanup(func() { close(done) })
	f.enqueue("@a:x", "$login", true, func(ctx context.Context) {
		f.state.Store(&commands.CommandState{Action: "Login"})
		close(shown) // the QR code is out
		<-done
		finished(ctx, "$login")
	})
	<-shown
	f.q.waiting = func() { t.Error("cancel waited for the login") }
	receive(t, f.enqueue("@a:x", "$cancel", true, nil), "start of cancel")
}

// An event bridgev2 did not take as a command is not waited for; other
// users' commands are not either.
func TestCommandQueueNotTakenAndOtherUsers(t *testing.T) {
	f := newFakeCommands(t, time.Hour)
	f.q.waiting = func() { t.Error("a command waited") }
	receive(t, f.enqueue("@a:x", "$1", false, nil), "start of the first")
	receive(t, f.enqueue("@a:x", "$2", false, nil), "start of the second")
	block := make(chan struct{})
	t.Cleanup(func() { close(block) })
	f.enqueue("@b:x", "$b", true, func(context.Context) { <-block })
	receive(t, f.enqueue("@c:x", "$c", true, nil), "start of another user's")
}

// A command that runs long without a state is waited for only so long.
func TestCommandQueuePatience(t *testing.T) {
	f := newFakeCommands(t, time.Millisecond)
	block := make(chan struct{})
	t.Cleanup(func() { close(block) })
	f.enqueue("@a:x", "$slow", true, func(context.Context) { <-block })
	waited := make(chan struct{})
	f.q.waiting = func() { close(waited) }
	second := f.enqueue("@a:x", "$next", true, nil)
	receive(t, waited, "wait")
	receive(t, second, "start after the patience")
}
