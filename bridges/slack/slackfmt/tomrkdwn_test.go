package slackfmt

import (
	"context"
	"testing"

	"maunium.net/go/mautrix/id"
)

func TestToMrkdwn(t *testing.T) {
	users := func(u id.UserID) string {
		if u == "@slack_t1-u1:hs" {
			return "U1"
		}
		return ""
	}
	for _, tc := range []struct{ name, in, want string }{
		{"plain", "a &lt; b &amp; c", "a &lt; b &amp; c"},
		{"styles", "<strong>bold</strong> <em>it</em> <del>gone</del> <code>x()</code>", "*bold* _it_ ~gone~ `x()`"},
		{"link", `see <a href="https://example.org/a">the page</a>`, "see <https://example.org/a|the page>"},
		{"bare link", `<a href="https://example.org">https://example.org</a>`, "<https://example.org>"},
		{"ghost pill", `hi <a href="https://matrix.to/#/@slack_t1-u1:hs">Ada</a>`, "hi <@U1>"},
		{"other pill", `hi <a href="https://matrix.to/#/@carol:hs">Carol &amp; co</a>`, "hi Carol &amp; co"},
		{"code block", "<pre><code>if a &lt; b {\n}\n</code></pre>", "```if a &lt; b {\n}```"},
		{"quote", "<blockquote>wise</blockquote>words", "> wise\nwords"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := ToMrkdwn(context.Background(), tc.in, users); got != tc.want {
				t.Errorf("ToMrkdwn(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestEmojiName(t *testing.T) {
	for key, want := range map[string]string{"👍": "+1", "👍\uFE0F": "+1", "❤️": "heart", "🎉": "tada",
		":partyparrot:": "partyparrot", "👋🏻": "wave::skin-tone-2"} {
		if got, ok := EmojiName(key); !ok || got != want {
			t.Errorf("EmojiName(%q) = %q %v, want %q", key, got, ok, want)
		}
	}
	for _, bad := range []string{"not an emoji", ":bad name:", ""} {
		if got, ok := EmojiName(bad); ok {
			t.Errorf("EmojiName(%q) = %q, want none", bad, got)
		}
	}
	// Round trip with the importer's table.
	for _, name := range []string{"+1", "heart", "tada", "white_check_mark", "wave::skin-tone-4"} {
		key, _ := ReactionKey(name)
		if got, ok := EmojiName(key); !ok || got != name {
			t.Errorf("%s → %q → %q", name, key, got)
		}
	}
}
