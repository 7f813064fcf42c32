package slack

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/slack-go/slack"
)

func TestIDs(t *testing.T) {
	if got := userID("T1", "U2AB"); got != "t1-u2ab" {
		t.Errorf("userID = %q (mautrix-slack's, lowercase)", got)
	}
	if team, user := parseUserID("t1-u2ab"); team != "T1" || user != "U2AB" {
		t.Errorf("parseUserID = %q %q", team, user)
	}
	if team, ch := parsePortalID(portalID("T1", "C9")); team != "T1" || ch != "C9" {
		t.Errorf("parsePortalID = %q %q", team, ch)
	}
	if team, ch := parsePortalID("T1"); team != "T1" || ch != "" {
		t.Errorf("the space's portal = %q %q", team, ch)
	}
	team, ch, ts, err := parseMessageID(messageID("T1", "C9", "1700000000.000100"))
	if err != nil || team != "T1" || ch != "C9" || ts != "1700000000.000100" {
		t.Errorf("parseMessageID = %q %q %q %v", team, ch, ts, err)
	}
	if _, _, _, err := parseMessageID("nonsense"); err == nil {
		t.Error("parseMessageID accepted nonsense")
	}
	// The importer's part IDs: a message without text has its first file as "".
	if filePartID(0, "F1", false) != "" || filePartID(0, "F1", true) != "file-0-F1" || filePartID(1, "F2", false) != "file-1-F2" {
		t.Error("file part IDs differ from the importer's")
	}
}

func TestTSTime(t *testing.T) {
	if got := tsTime("1700000000.000100"); !got.Equal(time.Unix(1700000000, 100_000)) {
		t.Errorf("tsTime = %v", got)
	}
	if a, b := streamOrder("1700000000.000100"), streamOrder("1700000000.000099"); a <= b {
		t.Errorf("stream order %d ≤ %d", a, b)
	}
}

func TestBlocksMrkdwn(t *testing.T) {
	const raw = `[
	 {"type":"header","text":{"type":"plain_text","text":"Deploy <done>"}},
	 {"type":"section","text":{"type":"mrkdwn","text":"*all* green"}},
	 {"type":"divider"},
	 {"type":"rich_text","elements":[
	  {"type":"rich_text_section","elements":[
	   {"type":"text","text":"hi "},{"type":"user","user_id":"U1"},
	   {"type":"text","text":" bold","style":{"bold":true}},
	   {"type":"link","url":"https://example.org","text":"site"},
	   {"type":"emoji","name":"tada"}]},
	  {"type":"rich_text_list","style":"ordered","elements":[
	   {"type":"rich_text_section","elements":[{"type":"text","text":"one"}]},
	   {"type":"rich_text_section","elements":[{"type":"text","text":"two"}]}]},
	  {"type":"rich_text_quote","elements":[{"type":"text","text":"wise"}]},
	  {"type":"rich_text_preformatted","elements":[{"type":"text","text":"a < b"}]}]}
	]`
	var blocks slack.Blocks
	if err := json.Unmarshal([]byte(raw), &blocks); err != nil {
		t.Fatal(err)
	}
	want := "*Deploy &lt;done&gt;*\n*all* green\n---\n" +
		"hi <@U1> *bold*<https://example.org|site>:tada:\n1. one\n2. two\n> wise\n```a &lt; b```"
	if got := blocksMrkdwn(blocks); got != want {
		t.Errorf("blocksMrkdwn =\n%q\nwant\n%q", got, want)
	}
	if !hasLayoutBlocks(blocks) {
		t.Error("a header and a section are layout blocks")
	}
}
