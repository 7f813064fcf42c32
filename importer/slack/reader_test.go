package slack

import (
	"archive/zip"
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tributary-hs/tributary/internal/slackexport"
)

func writeZip(t *testing.T, files map[string]string) string {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for name, body := range files {
		w, err := zw.Create(name)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = w.Write([]byte(body))
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "export.zip")
	if err := os.WriteFile(path, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// A generated export reads back as it was written: its users, its
// conversations with their folders, and every message, day by day in ts
// order.
func TestReadGenerated(t *testing.T) {
	path := filepath.Join(t.TempDir(), "export.zip")
	m, err := slackexport.WriteFile(path, slackexport.Options{Seed: 3, Messages: 2000, Record: true})
	if err != nil {
		t.Fatal(err)
	}
	e, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if e.TeamID != m.TeamID || len(e.Users) != len(m.Users) || len(e.Conversations) != len(m.Conversations) {
		t.Fatalf("team %s, %d users, %d conversations; want %s, %d, %d", e.TeamID, len(e.Users), len(e.Conversations),
			m.TeamID, len(m.Users), len(m.Conversations))
	}
	if err := e.Check(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{}
	for _, r := range m.Records {
		want[r.Conv] = append(want[r.Conv], r.TS)
	}
	for _, c := range e.Conversations {
		if c.Messages != len(want[c.ID]) {
			t.Errorf("%s: Check counted %d messages, %d were written", c.ID, c.Messages, len(want[c.ID]))
		}
		var got []string
		for it := range e.Messages(c) {
			if it.Err != nil {
				t.Fatal(it.Err)
			}
			got = append(got, it.Msg.TS)
		}
		if strings.Join(got, ",") != strings.Join(want[c.ID], ",") {
			t.Errorf("%s: messages %d, in another order or not those written (%d)", c.ID, len(got), len(want[c.ID]))
		}
	}
}

// One message that is not one (a ts that is a number, a ts that is no
// timestamp) is reported; the others of its day are read, in ts order.
func TestReadBadMessage(t *testing.T) {
	path := writeZip(t, map[string]string{
		"users.json":    `[{"id":"U1","team_id":"T1","name":"ada"}]`,
		"channels.json": `[{"id":"C1","name":"general","members":["U1"]}]`,
		"general/2023-01-02.json": `[{"type":"message","ts":"1672660000.000300","user":"U1","text":"third"},
			{"type":"message","ts":1672660000,"user":"U1","text":"bad"},
			{"type":"message","ts":"yesterday","user":"U1","text":"bad too"},
			{"type":"message","ts":"1672660000.000100","user":"U1","text":"first"}]`,
	})
	e, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if err := e.Check(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	var texts []string
	bad := 0
	for it := range e.Messages(e.Conversations[0]) {
		if it.Err != nil {
			bad++
			continue
		}
		texts = append(texts, it.Msg.Text)
	}
	if bad != 2 || strings.Join(texts, ",") != "first,third" {
		t.Fatalf("messages %v, %d bad", texts, bad)
	}
}

// What is not a readable export is refused when opened or checked, with
// ErrFormat and the file it is about.
func TestReadRefuses(t *testing.T) {
	good := map[string]string{"users.json": `[{"id":"U1","team_id":"T1"}]`, "channels.json": `[{"id":"C1","name":"c"}]`}
	with := func(k, v string) map[string]string {
		m := map[string]string{}
		for a, b := range good {
			m[a] = b
		}
		if v == "" {
			delete(m, k)
		} else {
			m[k] = v
		}
		return m
	}
	for _, tc := range []struct {
		name  string
		files map[string]string
		want  string
	}{
		{"no users.json", with("users.json", ""), "no users.json"},
		{"no conversations", with("channels.json", ""), "no channels.json"},
		{"users.json not JSON", with("users.json", "{"), "users.json"},
		{"a day file cut short", with("c/2023-01-01.json", `[{"ts":"1.000001"},{"ts":`), "c/2023-01-01.json"},
		{"a day file not a list", with("c/2023-01-01.json", `{"ts":"1.000001"}`), "not a JSON list"},
		{"a message not an object", with("c/2023-01-01.json", `[1]`), "not a JSON object"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, err := Open(writeZip(t, tc.files))
			if err == nil {
				err = e.Check(context.Background(), nil)
				e.Close()
			}
			if !errors.Is(err, ErrFormat) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want ErrFormat naming %q", err, tc.want)
			}
		})
	}
}
