package host

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	"github.com/tributary-hs/tributary/plugins/proto"
)

// session is one running plugin process and its event stream.
type session struct {
	client *plugin.Client
	rpc    plugin.ClientProtocol
	bridge proto.BridgeClient
	desc   *proto.DescribeResponse

	cancel context.CancelFunc
	stream grpc.BidiStreamingClient[proto.Transaction, proto.Ack]
	sendMu sync.Mutex // one Send at a time

	mu      sync.Mutex
	waiters map[int64]chan *proto.Ack
	dead    chan struct{} // closed when the stream ends; err says why
	err     error
}

func newSession(client *plugin.Client, rpc plugin.ClientProtocol, bridge proto.BridgeClient) *session {
	return &session{client: client, rpc: rpc, bridge: bridge,
		waiters: map[int64]chan *proto.Ack{}, dead: make(chan struct{})}
}

func (s *session) open() error {
	ctx, cancel := context.WithCancel(context.Background())
	stream, err := s.bridge.Events(ctx)
	if err != nil {
		cancel()
		return err
	}
	s.cancel, s.stream = cancel, stream
	go s.receive()
	return nil
}

// receive hands each acknowledgement to whoever waits for it.
func (s *session) receive() {
	for {
		ack, err := s.stream.Recv()
		if err != nil {
			s.close(err)
			return
		}
		s.mu.Lock()
		ch := s.waiters[ack.TransactionId]
		delete(s.waiters, ack.TransactionId)
		s.mu.Unlock()
		if ch != nil {
			ch <- ack
		}
	}
}

func (s *session) close(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	select {
	case <-s.dead:
		return
	default:
	}
	s.err = err
	close(s.dead)
	if s.cancel != nil {
		s.cancel()
	}
}

func (s *session) deliver(ctx context.Context, txn *proto.Transaction) error {
	ch := make(chan *proto.Ack, 1)
	s.mu.Lock()
	s.waiters[txn.Id] = ch
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		if s.waiters[txn.Id] == ch {
			delete(s.waiters, txn.Id)
		}
		s.mu.Unlock()
	}()
	s.sendMu.Lock()
	err := s.stream.Send(txn)
	s.sendMu.Unlock()
	if err != nil {
		return fmt.Errorf("sending transaction %d: %w", txn.Id, err)
	}
	select {
	case ack := <-ch:
		if ack.Error != "" {
			return fmt.Errorf("plugin refused transaction %d: %s", txn.Id, ack.Error)
		}
		return nil
	case <-s.dead:
		return fmt.Errorf("transaction %d not acknowledged: %w", txn.Id, errors.Join(ErrNotRunning, s.err))
	case <-ctx.Done():
		return ctx.Err()
	}
}
