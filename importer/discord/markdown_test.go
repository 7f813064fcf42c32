package discord

import (
	"slices"
	"testing"

	"maunium.net/go/mautrix/id"
)

type names struct{}

func (names) User(discordID string) (id.UserID, string) {
	if discordID == "42" {
		return "@discord_42:hs", "Ada"
	}
	return "", ""
}

func (names) Channel(discordID string) (id.RoomID, string) {
	if discordID == "7" {
		return "!dev:hs", "dev"
	}
	return "", ""
}

func TestMarkdown(t *testing.T) {
	for _, tc := range []struct {
		name, in, body, html string
		mentions             []Mention
		want                 []id.UserID
	}{
		{"plain", "just words", "just words", "", nil, nil},
		{"html is escaped", "a <b> & c", "a <b> & c", "", nil, nil},
		{"bold italic underline", "**b** *i* __u__ _j_ ~~s~~ ||spoiler||", "**b** *i* __u__ _j_ ~~s~~ ||spoiler||",
			"<strong>b</strong> <em>i</em> <u>u</u> <em>j</em> <del>s</del> <span data-mx-spoiler>spoiler</span>", nil, nil},
		{"inline code keeps its stars", "run `a*b*c` <now>", "run `a*b*c` <now>", "run <code>a*b*c</code> &lt;now&gt;", nil, nil},
		{"code block", "look:\n```go\nx := \"<a>\"\n```\nafter", "look:\n```go\nx := \"<a>\"\n```\nafter",
			`look:<pre><code class="language-go">x := &#34;&lt;a&gt;&#34;</code></pre>after`, nil, nil},
		{"links", "see [the docs](https://example.com/a_b_c?x=1&y=2) and https://example.org/x_y_z.",
			"see [the docs](https://example.com/a_b_c?x=1&y=2) and https://example.org/x_y_z.",
			`see <a href="https://example.com/a_b_c?x=1&amp;y=2">the docs</a> and <a href="https://example.org/x_y_z">https://example.org/x_y_z</a>.`, nil, nil},
		{"quote and header", "> quoted\n# Title\n- one\n- two", "> quoted\n# Title\n- one\n- two",
			"<blockquote>quoted</blockquote><h1>Title</h1><ul><li>one</li><li>two</li></ul>", nil, nil},
		{"exported mention", "@Ada Lovelace hi", "@Ada Lovelace hi", `<a href="https://matrix.to/#/@discord_42:hs">Ada</a> hi`,
			[]Mention{{ID: "42", Name: "ada.l", Nickname: "Ada Lovelace"}}, []id.UserID{"@discord_42:hs"}},
		{"raw markup", "<@42> in <#7> says <:blob:123>", "@Ada in #dev says :blob:",
			`<a href="https://matrix.to/#/@discord_42:hs">Ada</a> in <a href="https://matrix.to/#/!dev:hs">#dev</a> says :blob:`,
			nil, []id.UserID{"@discord_42:hs"}},
		{"unknown user stays", "<@99> hi", "<@99> hi", "", nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Markdown(tc.in, tc.mentions, names{})
			if got.Body != tc.body || got.HTML != tc.html || !slices.Equal(got.Mentions, tc.want) {
				t.Fatalf("Markdown(%q)\n got body %q\n     html %q\n mentions %v\nwant body %q\n     html %q\n mentions %v",
					tc.in, got.Body, got.HTML, got.Mentions, tc.body, tc.html, tc.want)
			}
		})
	}
}
