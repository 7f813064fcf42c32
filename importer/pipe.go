package importer

import (
	"context"
	"sync"
)

// Pipe runs one conversation's writes (a batch, then its cursor) in order
// on a goroutine of their own, so that the import reads and builds the
// next batch while the server writes the one before: reading an export
// and building its events costs about as much CPU as the server's
// building and writing them, and one waited for the other. At most one
// write runs and one waits; Do blocks while both places are taken, so a
// conversation holds at most three batches in memory.
//
// A write that fails stops the pipe: the writes queued after it do not
// run (their cursors must not pass the batch that failed), and Do and
// Close return its error.
type Pipe struct {
	ctx    context.Context
	cancel context.CancelFunc
	jobs   chan func(context.Context) error
	done   chan struct{}

	mu  sync.Mutex
	err error
}

// NewPipe starts a pipe whose writes run with ctx.
func NewPipe(ctx context.Context) *Pipe {
	ctx, cancel := context.WithCancel(ctx)
	p := &Pipe{ctx: ctx, cancel: cancel, jobs: make(chan func(context.Context) error, 1), done: make(chan struct{})}
	go p.run()
	return p
}

func (p *Pipe) run() {
	defer close(p.done)
	for job := range p.jobs {
		if p.Err() != nil {
			continue // after a failure nothing more is written
		}
		if err := job(p.ctx); err != nil {
			p.mu.Lock()
			p.err = err
			p.mu.Unlock()
			p.cancel()
		}
	}
}

// Err is the error of the write that failed, if one did.
func (p *Pipe) Err() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

// Do queues a write; it returns the error of an earlier write that failed
// (the write given is then not queued), or ctx's if it ends while Do
// waits for room.
func (p *Pipe) Do(ctx context.Context, job func(context.Context) error) error {
	if err := p.Err(); err != nil {
		return err
	}
	select {
	case p.jobs <- job:
		return nil
	case <-p.done:
		return p.Err()
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close waits for the queued writes and returns the error of the one that
// failed, if any. Do may not be called after Close.
func (p *Pipe) Close() error {
	close(p.jobs)
	<-p.done
	p.cancel()
	return p.Err()
}
