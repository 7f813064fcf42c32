package slackfmt

import (
	"strings"
	"sync"

	"go.mau.fi/util/emojishortcodes"
)

// Slack names emoji by short names (iamcal/emoji-data's, which
// go.mau.fi/util/emojishortcodes maps from unicode); a few names Slack
// also accepts are not the short names it lists.
var emojiAliases = map[string]string{
	"thumbsup": "+1", "thumbsdown": "-1", "simple_smile": "slightly_smiling_face", "satisfied": "laughing",
	"party_popper": "tada", "thumbs_up": "+1", "thumbs_down": "-1", "hankey": "poop", "shit": "poop",
	"facepunch": "punch", "heavy_heart": "heart", "red_heart": "heart",
}

var emojiByName = sync.OnceValue(func() map[string]string {
	m := map[string]string{}
	for emoji, name := range emojishortcodes.GetMap() {
		m[name] = emoji
	}
	for alias, name := range emojiAliases {
		if e, ok := m[name]; ok {
			if _, taken := m[alias]; !taken {
				m[alias] = e
			}
		}
	}
	return m
})

// skinTones are the modifiers of "name::skin-tone-2" … "-6".
var skinTones = map[string]string{"2": "\U0001F3FB", "3": "\U0001F3FC", "4": "\U0001F3FD", "5": "\U0001F3FE", "6": "\U0001F3FF"}

// Emoji is the unicode of a Slack emoji name ("+1", "heart",
// "thumbsup::skin-tone-3"); false for names it does not know (a
// workspace's custom emoji).
func Emoji(name string) (string, bool) {
	base, tone, _ := strings.Cut(name, "::")
	e, ok := emojiByName()[base]
	if !ok {
		return "", false
	}
	if t, ok := strings.CutPrefix(tone, "skin-tone-"); ok && skinTones[t] != "" {
		// The modifier follows the base character, without the
		// variation selector.
		e = strings.TrimSuffix(e, "\uFE0F") + skinTones[t]
	}
	return e, true
}

// ReactionKey is the m.reaction key of a Slack reaction: its emoji, or
// ":name:" for a custom emoji.
func ReactionKey(name string) (string, bool) {
	if e, ok := Emoji(name); ok {
		return e, true
	}
	return ":" + name + ":", false
}
