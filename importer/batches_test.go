package importer

import (
	"context"
	"fmt"
	"testing"

	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/core/types"
)

// aliasTarget keeps batches by alias as the server does: a batch with an
// alias taken already is refused whole.
type aliasTarget struct {
	Target
	have    map[id.EventID]bool
	cursors []string
}

func (f *aliasTarget) BatchSend(_ context.Context, _ id.RoomID, evs []*Event) ([]id.EventID, error) {
	for _, ev := range evs {
		if f.have[ev.Alias] {
			return nil, types.NewError(409, types.CodeUnknown, "an event alias of the batch is taken")
		}
	}
	for _, ev := range evs {
		f.have[ev.Alias] = true
	}
	return make([]id.EventID, len(evs)), nil
}

func (f *aliasTarget) ResolveAliases(_ context.Context, aliases []id.EventID) (map[id.EventID]id.EventID, error) {
	out := map[id.EventID]id.EventID{}
	for _, a := range aliases {
		if f.have[a] {
			out[a] = a
		}
	}
	return out, nil
}

func (f *aliasTarget) SetImportCursor(_ context.Context, _, cursor, _ string) error {
	f.cursors = append(f.cursors, cursor)
	return nil
}

func messages(from, to int) ([]*Event, []Span) {
	var evs []*Event
	var spans []Span
	for i := from; i < to; i++ {
		spans = append(spans, Span{Start: len(evs), Key: fmt.Sprint(i)})
		evs = append(evs, &Event{Alias: id.EventID(fmt.Sprintf("$m%d", i)), Type: "m.room.message"})
	}
	return evs, spans
}

// A run killed before recording its cursor wrote messages 0–14 in
// batches cut at 10 and 15; this run cuts at 8 and 16: its first two
// batches hold written messages, and none is written twice or counted
// as failed; checking stops at the first batch that held none.
func TestBatchesSkipWhatAKilledRunWrote(t *testing.T) {
	ctx := context.Background()
	f := &aliasTarget{have: map[id.EventID]bool{}}
	for i := range 15 {
		f.have[id.EventID(fmt.Sprintf("$m%d", i))] = true
	}
	b := &Batches{Target: f, PortalID: "p", Label: "c"}
	for i, cut := range [][2]int{{0, 8}, {8, 16}, {16, 24}, {24, 30}} {
		evs, spans := messages(cut[0], cut[1])
		if err := b.Write(ctx, evs, spans, &Standing{Cursor: fmt.Sprint(cut[1] - 1)}); err != nil {
			t.Fatalf("batch %d: %v", i, err)
		}
	}
	if b.Skipped != 15 || b.Failed != 0 || b.Events != 15 || len(b.Problems) != 0 {
		t.Fatalf("skipped %d, failed %d, events %d, problems %q; want 15, 0, 15, none", b.Skipped, b.Failed, b.Events, b.Problems)
	}
	if len(f.have) != 30 || fmt.Sprint(f.cursors) != "[7 15 23 29]" {
		t.Fatalf("%d messages written, cursors %v", len(f.have), f.cursors)
	}
	if !b.clean {
		t.Fatal("still checking after a batch that held nothing written")
	}
}
