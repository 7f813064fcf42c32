package discordexport

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func readDir(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	for _, e := range ents {
		raw, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out[e.Name()] = raw
	}
	return out
}

func TestDeterministic(t *testing.T) {
	a, b, c := t.TempDir(), t.TempDir(), t.TempDir()
	opts := Options{Seed: 7, Messages: 600}
	for _, d := range []string{a, b} {
		if _, err := WriteDir(d, opts); err != nil {
			t.Fatal(err)
		}
	}
	opts.Seed = 8
	if _, err := WriteDir(c, opts); err != nil {
		t.Fatal(err)
	}
	fa, fb, fc := readDir(t, a), readDir(t, b), readDir(t, c)
	if len(fa) != len(fb) {
		t.Fatalf("%d files and %d files", len(fa), len(fb))
	}
	same := true
	for name, raw := range fa {
		if !bytes.Equal(raw, fb[name]) {
			t.Fatalf("the same options gave different %s", name)
		}
		if !bytes.Equal(raw, fc[name]) {
			same = false
		}
	}
	if same {
		t.Fatal("another seed gave the same export")
	}
}

// Each file is DiscordChatExporter's JSON: its guild and channel, its
// messages in ID order, every kind the manifest counts; threads branch off
// messages (or a ThreadCreated notice) of their channel.
func TestLayout(t *testing.T) {
	dir := t.TempDir()
	m, err := WriteDir(dir, Options{Seed: 1, Messages: 4000, Record: true})
	if err != nil {
		t.Fatal(err)
	}
	files := readDir(t, dir)
	if len(files) != len(m.Channels) || len(m.Channels) != 4+4+1 {
		t.Fatalf("%d files, %d channels", len(files), len(m.Channels))
	}
	total := 0
	ids := map[string]file{}
	byID := map[string]message{}
	for _, ch := range m.Channels {
		raw := files[ch.File]
		if raw == nil {
			t.Fatalf("no file %q", ch.File)
		}
		var f file
		if err := json.Unmarshal(raw, &f); err != nil {
			t.Fatalf("%s: %v", ch.File, err)
		}
		if f.Channel.ID != ch.ID || f.Channel.Type != ch.Type || f.MessageCount != len(f.Messages) || len(f.Messages) != ch.Messages {
			t.Fatalf("%s: channel %+v, %d messages (count %d), manifest %+v", ch.File, f.Channel, len(f.Messages), f.MessageCount, ch)
		}
		if !slices.IsSortedFunc(f.Messages, func(a, b message) int { return cmpID(a.ID, b.ID) }) {
			t.Fatalf("%s: messages out of order", ch.File)
		}
		for _, msg := range f.Messages {
			if _, dup := byID[msg.ID]; dup {
				t.Fatalf("message ID %s twice", msg.ID)
			}
			byID[msg.ID] = msg
		}
		ids[ch.ID] = f
		total += len(f.Messages)
	}
	if total != m.Messages || total != 4000 || len(m.Records) != total {
		t.Fatalf("%d messages written, manifest %d, records %d", total, m.Messages, len(m.Records))
	}
	for _, ch := range m.Channels {
		if ch.ParentID == "" {
			continue
		}
		f := ids[ch.ID]
		if f.Channel.CategoryID == nil || *f.Channel.CategoryID != ch.ParentID {
			t.Fatalf("thread %s: its category is not its channel", ch.Name)
		}
		starter, ok := byID[ch.StarterID]
		if !ok {
			t.Fatalf("thread %s: its starter %s is in no file", ch.Name, ch.StarterID)
		}
		if ch.StarterIsNotice != (starter.Type == "ThreadCreated") || (!ch.StarterIsNotice && starter.ID != ch.ID) {
			t.Fatalf("thread %s (%s) starts at %+v", ch.Name, ch.ID, starter)
		}
		if cmpID(f.Messages[0].ID, ch.StarterID) <= 0 {
			t.Fatalf("thread %s: a message before its start", ch.Name)
		}
	}
	for what, n := range map[string]int{"replies": m.Replies, "thread messages": m.ThreadMessages, "edits": m.Edits,
		"reactions": m.Reactions, "custom reactions": m.CustomReactions, "unnamed reactors": m.ReactionsNotNamed,
		"attachments": m.Attachments, "missing attachments": m.MissingAttachments, "stickers": m.Stickers,
		"embeds": m.Embeds, "bot messages": m.BotMessages, "joins": m.Joins, "renames": m.Renames, "pins": m.Pins,
		"mentions": m.Mentions, "unknown": m.Unknown} {
		if n == 0 {
			t.Errorf("no %s", what)
		}
	}
	for _, r := range m.Records {
		if r.ReplyTo != "" {
			if _, ok := byID[r.ReplyTo]; !ok {
				t.Fatalf("%s replies to %s, which is in no file", r.ID, r.ReplyTo)
			}
		}
	}
}

func cmpID(a, b string) int {
	if len(a) != len(b) {
		return len(a) - len(b)
	}
	return bytes.Compare([]byte(a), []byte(b))
}

func TestMedia(t *testing.T) {
	if _, ctype, ok := Media("/attachments/1/2/file-x.png"); !ok || ctype != "image/png" {
		t.Fatal("no image")
	}
	if _, _, ok := Media("/expired-attachments/1/2/x.txt"); ok {
		t.Fatal("an expired attachment is served")
	}
	a, _, _ := Media("/attachments/1/2/a.txt")
	b, _, _ := Media("/attachments/1/2/a.txt")
	if !bytes.Equal(a, b) {
		t.Fatal("media differ")
	}
}
