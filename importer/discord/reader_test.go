package discord

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

const head = `{"guild":{"id":"1","name":"G"},"channel":{"id":"10","type":"GuildTextChat","categoryId":null,"category":"C","name":"general","topic":null},"messages":[`

func write(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// Files cut short or not JSON are refused by Check, before an import
// writes anything; a file out of ID order is read in order.
func TestReader(t *testing.T) {
	dir := t.TempDir()
	msg := func(id string) string {
		return `{"id":"` + id + `","type":"Default","timestamp":"2023-01-02T10:00:00.000+00:00","content":"x","author":{"id":"5","name":"a"}}`
	}
	good := write(t, dir, "good.json", head+msg("300")+","+msg("100")+","+`{"id":"nope"}`+","+msg("200")+`],"messageCount":4}`)
	e, err := Open(good)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Check(t.Context(), nil); err != nil {
		t.Fatal(err)
	}
	f := e.Files[0]
	if f.Messages != 4 || f.Ordered || f.Channel.Name != "general" || f.Guild.Name != "G" {
		t.Fatalf("file %+v", f)
	}
	var ids []string
	bad := 0
	for it := range f.Items() {
		if it.Err != nil {
			bad++
			continue
		}
		ids = append(ids, it.Msg.ID)
	}
	if !slices.Equal(ids, []string{"100", "200", "300"}) || bad != 1 {
		t.Fatalf("read %v and %d bad", ids, bad)
	}
	for name, body := range map[string]string{
		"cut.json":      head + msg("1") + "," + msg("2")[:20],
		"notjson.json":  "hello",
		"nomsgs.json":   `{"guild":{"id":"1"},"channel":{"id":"10"}}`,
		"string.json":   head + `"a message?"]}`,
		"trailing.json": head + msg("1") + `]} {}`,
	} {
		p := write(t, t.TempDir(), name, body)
		e, err := Open(p)
		if err == nil {
			err = e.Check(t.Context(), nil)
		}
		if !errors.Is(err, ErrFormat) {
			t.Errorf("%s: %v", name, err)
		}
	}
}
