package slack

import (
	"context"
	"encoding/json/v2"
	"net/http"
	"strings"

	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/bridges/slack/slackfmt"
)

// Custom emoji: an export names a workspace's own emoji (reactions,
// :name: in text) but holds no images. With a token (--files-token) the
// import asks Slack for the workspace's emoji (emoji.list) and carries
// each custom one it meets as its image, as the bridge does: a reaction's
// key is the image's mxc:// URI with com.beeper.reaction.shortcode beside
// it, text shows an inline <img data-mx-emoticon>. Each image is uploaded
// once (recorded as the remote file "emoji:<name>"). Without a token, or
// when Slack will not list them, custom emoji stay ":name:".

// DefaultAPIURL is Slack's Web API.
const DefaultAPIURL = "https://slack.com/api/"

// listEmoji fetches the workspace's custom emoji (name → image URL or
// "alias:name"); a failure is reported and leaves them as shortcodes.
func (r *run) listEmoji(ctx context.Context) {
	api := r.o.APIURL
	if api == "" {
		api = DefaultAPIURL
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(api, "/")+"/emoji.list", nil)
	if err != nil {
		r.sum.problem("custom emoji: %v", err)
		return
	}
	req.Header.Set("Authorization", "Bearer "+r.o.FilesToken)
	resp, err := r.o.HTTP.Do(req)
	if err != nil {
		r.sum.problem("custom emoji: %v (they stay :name:)", err)
		return
	}
	defer resp.Body.Close()
	var body struct {
		OK    bool              `json:"ok"`
		Error string            `json:"error"`
		Emoji map[string]string `json:"emoji"`
	}
	if err := json.UnmarshalRead(resp.Body, &body); err != nil || !body.OK {
		r.sum.problem("custom emoji: emoji.list answered %s %v %s (they stay :name:)", resp.Status, err, body.Error)
		return
	}
	r.emojiList = body.Emoji
}

// customEmoji is the mxc:// URI of the image of a custom emoji, uploading
// it on first use; "" for a standard emoji or one with no image to have.
func (r *run) customEmoji(ctx context.Context, name string) id.ContentURIString {
	if r.emojiList == nil {
		return ""
	}
	if _, ok := slackfmt.Emoji(name); ok {
		return ""
	}
	r.emojiMu.Lock()
	defer r.emojiMu.Unlock()
	if mxc, ok := r.emojiMXC[name]; ok {
		return mxc
	}
	final, src := name, r.emojiList[name]
	for range 5 { // aliases of aliases, not forever
		target, ok := strings.CutPrefix(src, "alias:")
		if !ok {
			break
		}
		if _, std := slackfmt.Emoji(target); std {
			src = ""
			break
		}
		final, src = target, r.emojiList[target]
	}
	var mxc id.ContentURIString
	if src != "" && !strings.HasPrefix(src, "alias:") {
		remote := "emoji:" + final
		got, err := r.t.Media(ctx, remote)
		if err == nil && got == "" {
			// Emoji images are public: no token goes along.
			got, err = r.download(ctx, src, "", remote, r.ident.Bot, final)
		}
		if err != nil {
			r.mu.Lock()
			r.sum.problem("custom emoji :%s:: %v (kept as :%s:)", name, err, name)
			r.mu.Unlock()
		} else {
			mxc = id.ContentURIString(got)
			r.mu.Lock()
			r.sum.CustomEmoji++
			r.mu.Unlock()
		}
	}
	r.emojiMXC[name] = mxc // a miss is not asked again either
	return mxc
}

// textResolver is the run's slackfmt resolver for one piece of text: its
// people, channels and custom emoji.
type textResolver struct {
	ctx context.Context
	r   *run
}

func (t textResolver) User(slackID string) (id.UserID, string)    { return t.r.User(slackID) }
func (t textResolver) Channel(slackID string) (id.RoomID, string) { return t.r.Channel(slackID) }
func (t textResolver) CustomEmoji(name string) id.ContentURIString {
	return t.r.customEmoji(t.ctx, name)
}

var _ slackfmt.EmojiResolver = textResolver{}

// reactionContent is the content of a reaction with emoji name to target.
func (r *run) reactionContent(ctx context.Context, target id.EventID, name string) map[string]any {
	key, _ := slackfmt.ReactionKey(name)
	content := map[string]any{"m.relates_to": map[string]any{"rel_type": "m.annotation", "event_id": target, "key": key}}
	if mxc := r.customEmoji(ctx, name); mxc != "" {
		content["m.relates_to"].(map[string]any)["key"] = string(mxc)
		content["com.beeper.reaction.shortcode"] = ":" + name + ":"
	}
	return content
}
