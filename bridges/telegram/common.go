package telegram

import (
	"context"
	"fmt"
	"sync"

	"github.com/go-telegram/bot/models"

	"maunium.net/go/mautrix/bridgev2"
	"maunium.net/go/mautrix/bridgev2/networkid"
)

// What the bot mode (Client) and the user mode (UserClient) share: each
// keeps its own instance, with a lock of its own.

// connLoop is a login's connection goroutine: started once by Connect,
// ended and waited for by Disconnect.
type connLoop struct {
	mu     sync.Mutex
	cancel context.CancelFunc
	done   chan struct{}
}

// begin claims the loop unless it runs already: the loop's context (ended
// by stop, not with ctx) and end, which the goroutine calls when it
// returns.
func (l *connLoop) begin(ctx context.Context) (loopCtx context.Context, end func(), ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.cancel != nil {
		return nil, nil, false
	}
	loopCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	l.cancel, l.done = cancel, done
	return loopCtx, func() { close(done) }, true
}

func (l *connLoop) running() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.cancel != nil
}

// stop ends the loop, if any, and waits until it has returned.
func (l *connLoop) stop() {
	l.mu.Lock()
	cancel, done := l.cancel, l.done
	l.cancel, l.done = nil, nil
	l.mu.Unlock()
	if cancel != nil {
		cancel()
		<-done
	}
}

// topicNames are the names of the forum topics a login learned, by the
// topic's portal.
type topicNames struct {
	mu    sync.Mutex
	names map[networkid.PortalID]string
}

func (t *topicNames) set(p networkid.PortalID, name string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.names == nil {
		t.names = map[networkid.PortalID]string{}
	}
	t.names[p] = name
}

func (t *topicNames) known(p networkid.PortalID) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	_, ok := t.names[p]
	return ok
}

// name is the topic's name: the one learned, else "General" for the
// forum's thread 0 and "Topic N" for the others.
func (t *topicNames) name(p networkid.PortalID, thread int) string {
	t.mu.Lock()
	defer t.mu.Unlock()
	if name := t.names[p]; name != "" {
		return name
	}
	if thread == 0 {
		return "General"
	}
	return fmt.Sprintf("Topic %d", thread)
}

// outgoingFile is a Matrix media message as both modes send it: the file
// downloaded, its name, its type ("" when the event gives none) and the
// caption as Telegram text, with the relay prefix.
type outgoingFile struct {
	data       []byte
	name, mime string
	text       string
	ents       []models.MessageEntity
}

func (n *Connector) outgoingFile(ctx context.Context, msg *bridgev2.MatrixMessage, name ghostNameFunc) (*outgoingFile, error) {
	content := msg.Content
	data, err := n.br.Bot.DownloadMedia(ctx, content.URL, content.File)
	if err != nil {
		return nil, bridgev2.WrapErrorInStatus(fmt.Errorf("downloading the file from Matrix: %w", err)).
			WithIsCertain(true).WithSendNotice(true)
	}
	f := &outgoingFile{data: data, name: content.FileName}
	if f.name == "" {
		f.name = content.Body
	}
	if f.name == "" {
		f.name = "file"
	}
	if content.Info != nil {
		f.mime = content.Info.MimeType
	}
	f.text, f.ents = caption(content, name)
	f.text, f.ents = relayPrefix(msg.OrigSender, false, f.text, f.ents)
	return f, nil
}
