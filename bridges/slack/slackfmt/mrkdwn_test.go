package slackfmt

import (
	"slices"
	"testing"

	"maunium.net/go/mautrix/id"
)

type fakeResolver struct{}

func (fakeResolver) User(s string) (id.UserID, string) {
	if s == "U1" {
		return "@slack_t1-u1:hs", "Ada"
	}
	return "", ""
}

func (fakeResolver) Channel(s string) (id.RoomID, string) {
	if s == "C1" {
		return "!general:hs", "general"
	}
	return "", ""
}

func TestMrkdwn(t *testing.T) {
	for _, tc := range []struct {
		name, in, body, html string
		mentions             []id.UserID
	}{
		{name: "plain", in: "hello world", body: "hello world"},
		{name: "entities", in: "a &lt; b &amp;&amp; c &gt; d", body: "a < b && c > d"},
		{name: "bold italic strike", in: "*bold* _it_ ~gone~", body: "*bold* _it_ ~gone~",
			html: "<strong>bold</strong> <em>it</em> <del>gone</del>"},
		{name: "nested", in: "*bold _and it_*", body: "*bold _and it_*", html: "<strong>bold <em>and it</em></strong>"},
		{name: "markers inside words are text", in: "snake_case_name and 2*3*4", body: "snake_case_name and 2*3*4"},
		{name: "unclosed", in: "*not bold", body: "*not bold"},
		{name: "inline code", in: "run `a &lt;b&gt; *c*`", body: "run `a <b> *c*`", html: "run <code>a &lt;b&gt; *c*</code>"},
		{name: "pre", in: "see\n```x := 1 &lt; 2\n*y*```\nafter", body: "see\n```\nx := 1 < 2\n*y*\n```\nafter",
			html: "see<pre><code>x := 1 &lt; 2\n*y*</code></pre>after"},
		{name: "quote", in: "&gt; quoted *x*\n&gt; second\nreply", body: "> quoted *x*\n> second\nreply",
			html: "<blockquote>quoted <strong>x</strong><br>second</blockquote>reply"},
		{name: "mention", in: "hi <@U1> and <@U9|bob>", body: "hi @Ada and @bob",
			html: `hi <a href="https://matrix.to/#/@slack_t1-u1:hs">Ada</a> and @bob`, mentions: []id.UserID{"@slack_t1-u1:hs"}},
		{name: "channel", in: "see <#C1|general> and <#C9|other>", body: "see #general and #other",
			html: `see <a href="https://matrix.to/#/%21general:hs?via=hs">#general</a> and #other`},
		{name: "links", in: "<https://a.example/x?a=1&amp;b=2|the docs> <https://b.example> <mailto:x@y.z|x@y.z>",
			body: "the docs (https://a.example/x?a=1&b=2) https://b.example x@y.z",
			html: `<a href="https://a.example/x?a=1&amp;b=2">the docs</a> <a href="https://b.example">https://b.example</a> <a href="mailto:x@y.z">x@y.z</a>`},
		{name: "no javascript links", in: "<javascript:alert(1)|click>", body: "click"},
		{name: "specials", in: "<!here> <!subteam^S1|@devs> <!date^1|Jan 1>", body: "@here @devs Jan 1"},
		{name: "emoji", in: "ship it :rocket: :+1::skin-tone-3: :partyparrot:", body: "ship it 🚀 👍🏼 :partyparrot:"},
		{name: "html in text is text", in: "&lt;b&gt;not bold&lt;/b&gt;", body: "<b>not bold</b>"},
		{name: "html in a token is text", in: "<b>x</b>", body: "bx/b"},
		{name: "newlines", in: "one\ntwo *x*", body: "one\ntwo *x*", html: "one<br>two <strong>x</strong>"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := Mrkdwn(tc.in, fakeResolver{})
			if f.Body != tc.body {
				t.Errorf("body %q, want %q", f.Body, tc.body)
			}
			if f.HTML != tc.html {
				t.Errorf("html %q, want %q", f.HTML, tc.html)
			}
			if !slices.Equal(f.Mentions, tc.mentions) {
				t.Errorf("mentions %v, want %v", f.Mentions, tc.mentions)
			}
		})
	}
}

func TestEmoji(t *testing.T) {
	for name, want := range map[string]string{"+1": "👍", "thumbsup": "👍", "heart": "❤", "tada": "🎉",
		"white_check_mark": "✅", "wave::skin-tone-2": "👋🏻"} {
		got, ok := Emoji(name)
		if !ok || trimVS(got) != want {
			t.Errorf("%s = %q (%v), want %q", name, got, ok, want)
		}
	}
	if k, ok := ReactionKey("partyparrot"); ok || k != ":partyparrot:" {
		t.Errorf("custom emoji key %q %v", k, ok)
	}
}

func trimVS(s string) string {
	out := []rune{}
	for _, r := range s {
		if r != 0xFE0F {
			out = append(out, r)
		}
	}
	return string(out)
}

// emojiResolver knows the workspace's custom emoji :partyparrot:.
type emojiResolver struct{ fakeResolver }

func (emojiResolver) CustomEmoji(name string) id.ContentURIString {
	if name == "partyparrot" {
		return "mxc://hs/parrot"
	}
	return ""
}

// A custom emoji shows as its image; one the resolver does not know, or
// with a resolver that knows none, stays its shortcode.
func TestMrkdwnCustomEmoji(t *testing.T) {
	f := Mrkdwn("party :partyparrot: time :unknown:", emojiResolver{})
	if f.Body != "party :partyparrot: time :unknown:" {
		t.Errorf("body %q", f.Body)
	}
	want := `party <img data-mx-emoticon src="mxc://hs/parrot" alt=":partyparrot:" title=":partyparrot:" height="32"> time :unknown:`
	if f.HTML != want {
		t.Errorf("html %q\nwant %q", f.HTML, want)
	}
	if f := Mrkdwn("party :partyparrot:", fakeResolver{}); f.HTML != "" || f.Body != "party :partyparrot:" {
		t.Errorf("without custom emoji: %+v", f)
	}
}
