package telegram

import (
	"reflect"
	"testing"
	"time"

	"github.com/go-telegram/bot/models"

	"maunium.net/go/mautrix/bridgev2"
	"maunium.net/go/mautrix/bridgev2/networkid"
	"maunium.net/go/mautrix/id"
)

func ent(typ models.MessageEntityType, off, length int) models.MessageEntity {
	return models.MessageEntity{Type: typ, Offset: off, Length: length}
}

func TestEntitiesToHTML(t *testing.T) {
	mention := func(u *models.User) (id.UserID, bool) { return id.UserID("@tg_42:example.org"), u.ID == 42 }
	for _, c := range []struct {
		name string
		text string
		ents []models.MessageEntity
		want string
	}{
		{"plain", "just text", nil, ""},
		{"only unformatting entities", "#tag /cmd", []models.MessageEntity{ent("hashtag", 0, 4), ent("bot_command", 5, 4)}, ""},
		{"bold", "hello bold world", []models.MessageEntity{ent("bold", 6, 4)}, "hello <strong>bold</strong> world"},
		{"escaping", "a <b> & c", []models.MessageEntity{ent("italic", 0, 1)}, "<em>a</em> &lt;b&gt; &amp; c"},
		{"nested", "bold italic", []models.MessageEntity{ent("italic", 5, 6), ent("bold", 0, 11)},
			"<strong>bold <em>italic</em></strong>"},
		{"same start, longer outside", "abc", []models.MessageEntity{ent("italic", 0, 1), ent("bold", 0, 3)},
			"<strong><em>a</em>bc</strong>"},
		{"overlapping", "abcde", []models.MessageEntity{ent("bold", 0, 3), ent("italic", 2, 3)},
			"<strong>ab<em>c</em></strong><em>de</em>"},
		// Offsets count UTF-16 code units: 😀 is two.
		{"astral plane", "😀 hi", []models.MessageEntity{ent("bold", 3, 2)}, "😀 <strong>hi</strong>"},
		{"newlines", "a\nb", []models.MessageEntity{ent("bold", 2, 1)}, "a<br><strong>b</strong>"},
		{"pre keeps newlines", "x\ny", []models.MessageEntity{{Type: "pre", Offset: 0, Length: 3, Language: "go"}},
			`<pre><code class="language-go">x` + "\n" + `y</code></pre>`},
		{"text link", "click", []models.MessageEntity{{Type: "text_link", Offset: 0, Length: 5, URL: "https://e.org/?a=1&b=2"}},
			`<a href="https://e.org/?a=1&amp;b=2">click</a>`},
		{"url", "see e.org", []models.MessageEntity{ent("url", 4, 5)}, `see <a href="https://e.org">e.org</a>`},
		{"email", "a@b.c", []models.MessageEntity{ent("email", 0, 5)}, `<a href="mailto:a@b.c">a@b.c</a>`},
		{"spoiler, underline, strike, code", "s u d c", []models.MessageEntity{ent("spoiler", 0, 1), ent("underline", 2, 1),
			ent("strikethrough", 4, 1), ent("code", 6, 1)},
			"<span data-mx-spoiler>s</span> <u>u</u> <del>d</del> <code>c</code>"},
		{"blockquote", "quoted", []models.MessageEntity{ent("blockquote", 0, 6)}, "<blockquote>quoted</blockquote>"},
		{"text mention", "Dave hi", []models.MessageEntity{{Type: "text_mention", Offset: 0, Length: 4, User: &models.User{ID: 42}}},
			`<a href="https://matrix.to/#/@tg_42:example.org">Dave</a> hi`},
		{"entity past the end is dropped", "ab", []models.MessageEntity{ent("bold", 1, 5)}, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := entitiesToHTML(c.text, c.ents, mention); got != c.want {
				t.Errorf("got  %s\nwant %s", got, c.want)
			}
		})
	}
}

func TestHTMLToEntities(t *testing.T) {
	name := func(u id.UserID) string {
		if u == "@tg_42:example.org" {
			return "Dave Jones"
		}
		return u.Localpart()
	}
	for _, c := range []struct {
		name     string
		html     string
		wantText string
		want     []models.MessageEntity
	}{
		{"bold and italic", "<strong>hi</strong> <em>dave</em>", "hi dave",
			[]models.MessageEntity{ent("bold", 0, 2), ent("italic", 3, 4)}},
		{"nested", "<b>a <i>b</i></b>", "a b", []models.MessageEntity{ent("italic", 2, 1), ent("bold", 0, 3)}},
		{"entities in UTF-16", "😀 <u>x</u>", "😀 x", []models.MessageEntity{ent("underline", 3, 1)}},
		{"link", `<a href="https://e.org">site</a>`, "site",
			[]models.MessageEntity{{Type: "text_link", Offset: 0, Length: 4, URL: "https://e.org"}}},
		{"pill becomes the name", `<a href="https://matrix.to/#/@tg_42:example.org">Dave</a>: hi`, "Dave Jones: hi", nil},
		{"code block with language", "<pre><code class=\"language-go\">a\nb</code></pre>", "a\nb",
			[]models.MessageEntity{{Type: "pre", Offset: 0, Length: 3, Language: "go"}}},
		{"inline code, strike, spoiler", `<code>c</code> <del>d</del> <span data-mx-spoiler>s</span>`, "c d s",
			[]models.MessageEntity{ent("code", 0, 1), ent("strikethrough", 2, 1), ent("spoiler", 4, 1)}},
		{"paragraphs and breaks", "<p>one</p><p>two<br>three</p>", "one\ntwo\nthree", nil},
		{"lists", "<ul><li>a</li><li>b</li></ul><ol><li>x</li><li>y</li></ol>", "• a\n• b\n1. x\n2. y", nil},
		{"reply fallback dropped", "<mx-reply><blockquote>old</blockquote></mx-reply>new", "new", nil},
		{"blockquote", "<blockquote>q</blockquote>after", "q\nafter", []models.MessageEntity{ent("blockquote", 0, 1)}},
		{"heading is bold", "<h1>Title</h1>text", "Title\ntext", []models.MessageEntity{ent("bold", 0, 5)}},
		{"entities", "a &lt;b&gt; &amp;", "a <b> &", nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			text, ents := htmlToEntities(c.html, name)
			if text != c.wantText || !reflect.DeepEqual(ents, c.want) {
				t.Errorf("got  %q %+v\nwant %q %+v", text, ents, c.wantText, c.want)
			}
		})
	}
}

// TestFormatRoundTrip: Matrix HTML → Telegram entities → Matrix HTML
// keeps the formatting.
func TestFormatRoundTrip(t *testing.T) {
	for _, h := range []string{
		"hello <strong>bold</strong> world",
		"<strong>a <em>b</em></strong> 😀 <u>c</u>",
		`<a href="https://e.org">x</a> <code>y</code> <del>z</del>`,
	} {
		text, ents := htmlToEntities(h, nil)
		if got := entitiesToHTML(text, ents, nil); got != h {
			t.Errorf("%s → %q %+v → %s", h, text, ents, got)
		}
	}
}

func TestRetryWait(t *testing.T) {
	const limit = 10 * time.Second
	for _, c := range []struct {
		retryAfter int
		last, want time.Duration
	}{
		{1, 0, time.Second},                     // what Telegram asks
		{0, 0, time.Second},                     // at least a second
		{1, time.Second, 2 * time.Second},       // doubling for the same call
		{1, 8 * time.Second, limit},             // up to the limit
		{30, 8 * time.Second, 30 * time.Second}, // never less than asked
	} {
		if got := retryWait(c.retryAfter, c.last, limit); got != c.want {
			t.Errorf("retryWait(%d, %s) = %s, want %s", c.retryAfter, c.last, got, c.want)
		}
	}
}

func TestIDs(t *testing.T) {
	m := messageIDOf(-1001234, 56)
	chat, msg, err := parseMessageID(m)
	if err != nil || chat != -1001234 || msg != 56 {
		t.Errorf("%s → %d %d %v", m, chat, msg, err)
	}
	for _, bad := range []string{"", "12", "a:1", "1:b"} {
		if _, _, err := parseMessageID(networkid.MessageID(bad)); err == nil {
			t.Errorf("parseMessageID(%q) accepted", bad)
		}
	}
	if id, thread, topic, err := chatIDOf(portalIDOf(-5)); err != nil || id != -5 || thread != 0 || topic {
		t.Errorf("chatIDOf(chat): %d %d %v %v", id, thread, topic, err)
	}
	if id, thread, topic, err := chatIDOf(topicPortalIDOf(-5, 7)); err != nil || id != -5 || thread != 7 || !topic {
		t.Errorf("chatIDOf(topic): %d %d %v %v", id, thread, topic, err)
	}
	for _, bad := range []string{"", "x", "-5/", "-5/x"} {
		if _, _, _, err := chatIDOf(networkid.PortalID(bad)); err == nil {
			t.Errorf("chatIDOf(%q) accepted", bad)
		}
	}
	if _, ok := parseUserID(chatGhostIDOf(-5)); ok {
		t.Error("a chat ghost parsed as a user")
	}
}

func TestRelayPrefix(t *testing.T) {
	carol := &bridgev2.OrigSender{UserID: "@carol:example.org", DisambiguatedName: "Carol 😀"}
	bold := func(off, n int) models.MessageEntity { return ent("bold", off, n) }
	for _, c := range []struct {
		name     string
		orig     *bridgev2.OrigSender
		emote    bool
		text     string
		ents     []models.MessageEntity
		wantText string
		want     []models.MessageEntity
	}{
		{"own message", nil, false, "hi", nil, "hi", nil},
		{"own emote", nil, true, "waves", []models.MessageEntity{ent("italic", 0, 5)}, "* waves",
			[]models.MessageEntity{ent("italic", 2, 5)}},
		// "Carol 😀" is 8 UTF-16 units.
		{"relayed", carol, false, "hi", []models.MessageEntity{ent("italic", 0, 2)}, "Carol 😀: hi",
			[]models.MessageEntity{bold(0, 8), ent("italic", 10, 2)}},
		{"relayed emote", carol, true, "waves", nil, "* Carol 😀 waves", []models.MessageEntity{bold(2, 8)}},
		{"relayed file without caption", carol, false, "", nil, "Carol 😀", []models.MessageEntity{bold(0, 8)}},
		{"no display name", &bridgev2.OrigSender{UserID: "@dan:example.org"}, false, "x", nil, "dan: x",
			[]models.MessageEntity{bold(0, 3)}},
	} {
		t.Run(c.name, func(t *testing.T) {
			text, ents := relayPrefix(c.orig, c.emote, c.text, c.ents)
			if text != c.wantText || !reflect.DeepEqual(ents, c.want) {
				t.Errorf("got  %q %+v\nwant %q %+v", text, ents, c.wantText, c.want)
			}
		})
	}
}
