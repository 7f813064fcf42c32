package importer

import (
	"context"
	"fmt"

	"maunium.net/go/mautrix/id"
)

// Batches writes the batches of one conversation's import and records,
// after each, where the import stands; its Write runs in the
// conversation's Pipe, so one at a time and in order. What the writes did
// is counted in its fields, for the importer's summary once the pipe is
// closed.
type Batches struct {
	Target   Target
	Room     id.RoomID
	Bot      id.UserID
	PortalID string
	// Label names the conversation in Problems.
	Label string
	// AfterBatch, if set, runs after a batch is written and before where
	// the import stands is recorded (tests kill the process there).
	AfterBatch func()

	// Events were written; Failed messages the server refused; Skipped
	// messages an earlier run had written already; Pins carried and
	// PinsNotCarried refused.
	Events, Failed, Skipped, Pins, PinsNotCarried int
	// Problems are the refusals, one line each.
	Problems []string

	// clean: a batch of this run held nothing written before, and so
	// the ones after it hold nothing either.
	clean bool
}

// Standing is where an import stands after a batch: the cursor and meta
// of its portal, and the pinned messages' aliases when they changed.
type Standing struct {
	Cursor, Meta string
	Pins         []id.EventID
	// PinsTS is the time the pins are set at, in milliseconds.
	PinsTS int64
}

// Write writes a batch (Send: a refused message is left out and counted),
// then records at.
//
// A run killed after writing a batch and before recording its cursor left
// that batch's events in: until a batch holds nothing written, the events
// whose aliases are taken are dropped (their messages count as Skipped).
// This run's batches may be cut elsewhere than that run's, so one batch
// that held some is not the end of them.
func (b *Batches) Write(ctx context.Context, evs []*Event, spans []Span, at *Standing) error {
	if !b.clean && len(evs) > 0 {
		n := len(evs)
		keep, out, written, err := Unwritten(ctx, b.Target, evs, spans)
		if err != nil {
			return err
		}
		b.Skipped += written
		evs, spans = keep, out
		b.clean = len(evs) == n
	}
	if len(evs) > 0 {
		n, err := Send(ctx, b.Target, b.Room, evs, spans, func(key string, err error) {
			b.Failed++
			b.Problems = append(b.Problems, fmt.Sprintf("%s %s: refused: %v", b.Label, key, err))
		})
		b.Events += n
		if err != nil {
			return err
		}
		if b.AfterBatch != nil {
			b.AfterBatch()
		}
	}
	if at.Pins != nil {
		n, err := SendPins(ctx, b.Target, b.Room, b.Bot, at.Pins, at.PinsTS)
		switch {
		case IsClientError(err):
			b.PinsNotCarried += n
			b.Problems = append(b.Problems, fmt.Sprintf("%s: pins refused: %v", b.Label, err))
		case err != nil:
			return fmt.Errorf("pins: %w", err)
		default:
			b.Pins += n
		}
	}
	return b.Target.SetImportCursor(ctx, b.PortalID, at.Cursor, at.Meta)
}
