package slackexport

import (
	"archive/zip"
	"bytes"
	"encoding/json"
	"sort"
	"strings"
	"testing"
)

func TestDeterministic(t *testing.T) {
	var a, b, c bytes.Buffer
	opts := Options{Seed: 7, Messages: 500}
	if _, err := Write(&a, opts); err != nil {
		t.Fatal(err)
	}
	if _, err := Write(&b, opts); err != nil {
		t.Fatal(err)
	}
	opts.Seed = 8
	if _, err := Write(&c, opts); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Fatal("the same options gave different exports")
	}
	if bytes.Equal(a.Bytes(), c.Bytes()) {
		t.Fatal("another seed gave the same export")
	}
}

// The export has Slack's layout, and its day files hold the messages the
// manifest counts, in ts order, with every kind of message there.
func TestLayout(t *testing.T) {
	var buf bytes.Buffer
	m, err := Write(&buf, Options{Seed: 1, Messages: 3000, Record: true})
	if err != nil {
		t.Fatal(err)
	}
	zr, err := zip.NewReader(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]*zip.File{}
	for _, f := range zr.File {
		files[f.Name] = f
	}
	for _, name := range []string{"users.json", "channels.json", "groups.json", "dms.json", "mpims.json"} {
		if files[name] == nil {
			t.Fatalf("no %s", name)
		}
	}
	perConv := map[string]int{}
	subtypes := map[string]int{}
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, c := range m.Conversations {
		var last string
		for _, name := range names {
			f := files[name]
			dir, day, ok := strings.Cut(name, "/")
			if !ok || dir != c.Folder {
				continue
			}
			if len(day) != len("2006-01-02.json") {
				t.Fatalf("day file %s", name)
			}
			rc, err := f.Open()
			if err != nil {
				t.Fatal(err)
			}
			var msgs []message
			if err := json.NewDecoder(rc).Decode(&msgs); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			rc.Close()
			for _, msg := range msgs {
				if msg.TS <= last {
					t.Fatalf("%s: ts %s after %s", name, msg.TS, last)
				}
				last = msg.TS
				perConv[c.ID]++
				subtypes[msg.Subtype]++
			}
		}
		if perConv[c.ID] != c.Messages {
			t.Errorf("%s holds %d messages, the manifest says %d", c.Folder, perConv[c.ID], c.Messages)
		}
	}
	if len(m.Records) != 3000 {
		t.Errorf("%d records, want 3000", len(m.Records))
	}
	for _, st := range []string{"", "channel_join", "channel_leave", "channel_topic", "channel_purpose", "bot_message",
		"thread_broadcast", "file_share", "pinned_item"} {
		if subtypes[st] == 0 {
			t.Errorf("no message of subtype %q", st)
		}
	}
	if m.Threads == 0 || m.Replies == 0 || m.Edits == 0 || m.Reactions == 0 || m.Files == 0 || len(m.Unknown) == 0 {
		t.Errorf("manifest %+v lacks something", m)
	}
}
