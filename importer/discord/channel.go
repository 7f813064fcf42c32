package discord

import (
	"context"
	"encoding/json/v2"
	"fmt"
	"html"
	"iter"
	"path/filepath"
	"slices"
	"strings"

	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/bridges/discord/discordfmt"
	"github.com/tributary-hs/tributary/importer"
)

// maxPins is how many pins a room gets (Discord's limit a channel).
const maxPins = 250

// meta is what a portal's import keeps beside its cursor.
type meta struct {
	// Cursors are the last message imported of each channel and thread.
	Cursors map[string]string `json:"cursors,omitempty"`
	// Roots are the messages threads start at, by thread ID.
	Roots map[string]string `json:"roots,omitempty"`
	Topic string            `json:"topic,omitempty"`
	Pins  []string          `json:"pins,omitempty"`
}

// conversation is the import of one room: a channel and its threads.
type conversation struct {
	r      *run
	g      *group
	portal *importer.Portal
	room   id.RoomID
	sum    Summary
	meta   meta
	// cursors are the message IDs meta.Cursors says, as numbers.
	cursors map[string]uint64
	joined  map[id.UserID]bool
	// known are the messages of this run that have an event (a reply or a
	// thread may point there); last is the last event of each thread.
	known   map[uint64]bool
	last    map[string]id.EventID
	pins    map[string]bool
	parents map[string]bool // the channel's own IDs
	// The batch being filled and the messages it ends with.
	batch     []*importer.Event
	batchMsgs []msgSpan
	lastTS    int64
	pinsDirty bool
	// pipe writes the batches (w) while the next is read (importer.Pipe);
	// what w counts is added to sum at the end.
	pipe *importer.Pipe
	w    *importer.Batches
}

// msgSpan is where one message's events start in the batch.
type msgSpan = importer.Span

func (r *run) importGroup(ctx context.Context, g *group) (err error) {
	r.mu.Lock()
	portal := r.rooms[g.key]
	r.mu.Unlock()
	cv := &conversation{r: r, g: g, portal: portal, room: portal.RoomID, cursors: map[string]uint64{},
		joined: map[id.UserID]bool{}, known: map[uint64]bool{}, last: map[string]id.EventID{}, pins: map[string]bool{},
		parents: map[string]bool{g.key: true}, sum: Summary{Unknown: map[string]int{}},
		pipe: importer.NewPipe(ctx)}
	cv.w = &importer.Batches{Target: r.t, Room: cv.room, Bot: r.ident.Bot, PortalID: portal.PortalID, Label: g.label(),
		AfterBatch: r.o.AfterBatch}
	defer func() {
		// The writes queued end before the summary is taken (a failed
		// read stops nothing already read).
		if werr := cv.pipe.Close(); err == nil {
			err = werr
		}
		cv.sum.Events += cv.w.Events
		cv.sum.FailedMessages += cv.w.Failed
		cv.sum.Messages -= cv.w.Skipped
		cv.sum.Skipped += cv.w.Skipped
		cv.sum.PinsNotCarried += cv.w.PinsNotCarried
		cv.sum.Pins += cv.w.Pins
		for _, p := range cv.w.Problems {
			cv.sum.problem("%s", p)
		}
		r.mu.Lock()
		r.sum.add(&cv.sum)
		r.mu.Unlock()
	}()
	if portal.Meta != "" {
		if err := json.Unmarshal([]byte(portal.Meta), &cv.meta); err != nil {
			return fmt.Errorf("the recorded import state is not readable: %v", err)
		}
	}
	if cv.meta.Cursors == nil {
		cv.meta.Cursors = map[string]string{}
	}
	if cv.meta.Roots == nil {
		cv.meta.Roots = map[string]string{}
	}
	for ch, c := range cv.meta.Cursors {
		cv.cursors[ch] = parseID(c)
	}
	for _, p := range cv.meta.Pins {
		cv.pins[p] = true
	}
	for _, f := range g.main {
		cv.parents[f.Channel.ID] = true
	}
	joined, err := r.t.Joined(ctx, cv.room)
	if err != nil {
		return err
	}
	for _, u := range joined {
		cv.joined[u] = true
	}
	for it := range merge(g) {
		if err := ctx.Err(); err != nil {
			return err
		}
		if it.Err != nil {
			if it.Fatal {
				return it.Err
			}
			cv.sum.BadMessages++
			cv.sum.problem("%s: %v", filepath.Base(it.File.Path), it.Err)
			r.progress(1)
			continue
		}
		ch := it.File.Channel.ID
		if it.Msg.IsPinned {
			cv.setPin(it.Msg.ID, true)
		}
		if it.ID <= cv.cursors[ch] {
			cv.sum.Skipped++
			r.progress(1)
			continue
		}
		start := len(cv.batch)
		if err := cv.message(ctx, it); err != nil {
			return err
		}
		cv.cursors[ch] = it.ID
		cv.meta.Cursors[ch] = it.Msg.ID
		cv.lastTS = max(cv.lastTS, it.TS)
		cv.batchMsgs = append(cv.batchMsgs, msgSpan{Start: start, Key: it.Msg.ID})
		if len(cv.batch) >= r.o.BatchEvents {
			if err := cv.flush(ctx); err != nil {
				return err
			}
		}
	}
	finStart := len(cv.batch)
	cv.finish()
	if len(cv.batch) > finStart {
		cv.batchMsgs = append(cv.batchMsgs, msgSpan{Start: finStart})
	}
	return cv.flush(ctx)
}

// merge reads a room's files as one stream in ID order. A thread's file is
// opened when the stream reaches the thread's ID (its messages come after
// it), so a channel of many threads keeps few files open.
func merge(g *group) iter.Seq[Item] {
	return func(yield func(Item) bool) {
		type src struct {
			next func() (Item, bool)
			stop func()
			cur  Item
		}
		var open []*src
		add := func(f *File) bool {
			next, stop := iter.Pull(f.Items())
			s := &src{next: next, stop: stop}
			it, ok := next()
			if !ok {
				stop()
				return true
			}
			s.cur = it
			open = append(open, s)
			return true
		}
		defer func() {
			for _, s := range open {
				s.stop()
			}
		}()
		for _, f := range g.main {
			add(f)
		}
		pending := g.threads
		seen := map[string]uint64{} // the last ID yielded of each channel: parts may overlap
		for {
			// Open the threads that begin before what comes next.
			var low uint64
			for _, s := range open {
				if s.cur.Err == nil && (low == 0 || s.cur.ID < low) {
					low = s.cur.ID
				}
			}
			for len(pending) > 0 && (low == 0 || parseID(pending[0].Channel.ID) <= low) {
				add(pending[0])
				pending = pending[1:]
				low = 0
				for _, s := range open {
					if s.cur.Err == nil && (low == 0 || s.cur.ID < low) {
						low = s.cur.ID
					}
				}
			}
			if len(open) == 0 {
				return
			}
			best := -1
			for i, s := range open {
				if s.cur.Err != nil {
					best = i // errors go out at once
					break
				}
				if best < 0 || s.cur.ID < open[best].cur.ID {
					best = i
				}
			}
			s := open[best]
			it := s.cur
			if nx, ok := s.next(); ok {
				s.cur = nx
			} else {
				s.stop()
				open = slices.Delete(open, best, best+1)
			}
			if it.Err == nil {
				ch := it.File.Channel.ID
				if it.ID <= seen[ch] {
					continue // the same message in two parts of an export
				}
				seen[ch] = it.ID
			}
			if !yield(it) {
				return
			}
			if it.Fatal {
				return
			}
		}
	}
}

func (cv *conversation) alias(messageID, part string) id.EventID {
	return alias(cv.room, cv.r.ident.ServerName, messageID, part)
}

func (cv *conversation) add(ev *importer.Event) { cv.batch = append(cv.batch, ev) }

func (cv *conversation) direct() bool { return cv.g.kind == "dm" || cv.g.kind == "group" }

// join makes sure p is in the room before what they do at ts.
func (cv *conversation) join(p *person, ts int64) {
	if cv.joined[p.mxid] {
		return
	}
	cv.joined[p.mxid] = true
	cv.add(cv.r.membership(p, "invite", cv.direct(), ts))
	cv.add(cv.r.membership(p, "join", false, ts))
	cv.sum.Joins++
}

func (cv *conversation) setPin(messageID string, on bool) {
	if on {
		cv.pins[messageID] = true
	} else {
		delete(cv.pins, messageID)
	}
}

// imported reports whether a message of a channel of this room has its
// event: written by this run, or before it (at or below its cursor).
func (cv *conversation) imported(channelID, messageID string) bool {
	n := parseID(messageID)
	if n == 0 {
		return false
	}
	if cv.known[n] {
		return true
	}
	c, ok := cv.cursors[channelID]
	return ok && n <= c && cv.r.roomOf(channelID) == cv.room
}

func (r *run) roomOf(channelID string) id.RoomID {
	r.mu.Lock()
	defer r.mu.Unlock()
	if p := r.rooms[channelID]; p != nil {
		return p.RoomID
	}
	return ""
}

// message turns one Discord message into events.
func (cv *conversation) message(ctx context.Context, it Item) error {
	m, ts := it.Msg, it.TS
	ch := it.File.Channel.ID
	thread := !cv.parents[ch]
	cv.r.progress(1)
	if m.Author.ID == "" {
		cv.sum.BadMessages++
		cv.sum.problem("%s: message %s has no author", filepath.Base(it.File.Path), m.ID)
		return nil
	}
	p, err := cv.r.who(ctx, &m.Author)
	if err != nil {
		return err
	}
	for i := range m.Mentions {
		if m.Mentions[i].ID != "" {
			if _, err := cv.r.who(ctx, &m.Mentions[i]); err != nil {
				return err
			}
		}
	}
	cv.sum.Messages++
	empty := ""
	switch m.Type {
	case "Default", "Reply", "":
	case "21", "ThreadStarterMessage":
		// A thread's pointer at the message it starts at.
		if m.Reference != nil && cv.imported(m.Reference.ChannelID, m.Reference.MessageID) {
			if cv.meta.Roots[ch] == "" {
				cv.meta.Roots[ch] = m.Reference.MessageID
			}
		}
		return nil
	case "GuildMemberJoin":
		cv.join(p, ts)
		return nil
	case "RecipientAdd", "RecipientRemove":
		for i := range m.Mentions {
			if m.Mentions[i].ID == "" {
				continue
			}
			q, err := cv.r.who(ctx, &m.Mentions[i])
			if err != nil {
				return err
			}
			if m.Type == "RecipientAdd" {
				cv.join(q, ts)
			} else if cv.joined[q.mxid] {
				delete(cv.joined, q.mxid)
				key := string(q.mxid)
				cv.add(&importer.Event{Type: "m.room.member", StateKey: &key, Sender: q.mxid,
					Content: mustJSON(map[string]any{"membership": "leave"}), OriginServerTS: ts})
			}
		}
		return nil
	case "ChannelNameChange":
		if !thread && strings.TrimSpace(m.Content) != "" {
			cv.join(p, ts)
			cv.add(&importer.Event{Alias: cv.alias(m.ID, ""), Type: "m.room.name", StateKey: &empty, Sender: p.mxid,
				Content: mustJSON(map[string]any{"name": m.Content}), OriginServerTS: ts})
			cv.known[it.ID] = true
		}
		return nil
	case "ChannelPinnedMessage":
		if m.Reference != nil && m.Reference.MessageID != "" {
			cv.setPin(m.Reference.MessageID, true)
		}
		return nil
	case "ThreadCreated":
		if m.Reference != nil && m.Reference.ChannelID != "" {
			cv.meta.Roots[m.Reference.ChannelID] = m.ID
		}
		return cv.notice(it, p, "started a thread: "+m.Content)
	default:
		cv.sum.Unknown[m.Type]++
		text := strings.TrimSpace(m.Content)
		if m.Type == "Call" {
			text = "📞 started a call"
		}
		if text == "" {
			return nil
		}
		return cv.notice(it, p, text)
	}
	cv.join(p, ts)
	rel := cv.relation(it, thread)
	parts := 0
	var textAlias id.EventID
	var textContent map[string]any
	if m.Content != "" || len(m.Embeds) > 0 || len(m.Attachments) == 0 && len(m.Stickers) == 0 {
		textContent = cv.textContent(m)
		if rel != nil {
			textContent["m.relates_to"] = rel
		}
		textAlias = cv.alias(m.ID, "")
		cv.add(&importer.Event{Alias: textAlias, Type: "m.room.message", Sender: p.mxid, Content: mustJSON(textContent),
			OriginServerTS: ts, Message: m.ID, SenderID: m.Author.ID})
		parts++
	}
	base := filepath.Dir(it.File.Path)
	for _, a := range m.Attachments {
		content, err := cv.attachment(ctx, a, p, base)
		if err != nil {
			return err
		}
		cv.addPart(m.ID, m.Author.ID, "attachment-"+a.ID, "m.room.message", content, rel, p, ts, &parts)
	}
	for _, s := range m.Stickers {
		evType, content, err := cv.sticker(ctx, s, p, base)
		if err != nil {
			return err
		}
		cv.addPart(m.ID, m.Author.ID, "sticker-"+s.ID, evType, content, rel, p, ts, &parts)
		cv.sum.Stickers++
	}
	cv.known[it.ID] = true
	if thread && rel != nil && rel["rel_type"] == "m.thread" {
		cv.last[ch] = cv.batch[len(cv.batch)-1].Alias
	}
	if edited := parseStamp(m.TimestampEdited); edited > 0 && textAlias != "" {
		newContent := cv.textContent(m)
		edit := map[string]any{"msgtype": newContent["msgtype"], "body": "* " + newContent["body"].(string),
			"m.new_content": newContent, "m.mentions": map[string]any{},
			"m.relates_to": map[string]any{"rel_type": "m.replace", "event_id": textAlias}}
		if h, ok := newContent["formatted_body"].(string); ok {
			edit["format"], edit["formatted_body"] = "org.matrix.custom.html", "* "+h
		}
		cv.add(&importer.Event{Alias: cv.alias(m.ID, "edit"), Type: "m.room.message", Sender: p.mxid,
			Content: mustJSON(edit), OriginServerTS: max(edited, ts)})
		cv.sum.Edits++
	}
	target := cv.alias(m.ID, "")
	for _, re := range m.Reactions {
		key, shortcode := cv.reactionKey(ctx, re.Emoji, p)
		for i := range re.Users {
			if re.Users[i].ID == "" {
				cv.sum.ReactionsNotNamed++
				continue
			}
			rp, err := cv.r.who(ctx, &re.Users[i])
			if err != nil {
				return err
			}
			cv.join(rp, ts)
			content := map[string]any{"m.relates_to": map[string]any{"rel_type": "m.annotation", "event_id": target, "key": key}}
			if shortcode != "" {
				content["com.beeper.reaction.shortcode"] = shortcode
			}
			// The bridge names a custom emoji "name:id" (as Discord's API
			// does), a Unicode one by itself.
			emojiID, bridgeEmoji := re.Emoji.ID, re.Emoji.Name+":"+re.Emoji.ID
			if emojiID == "" {
				emojiID, bridgeEmoji = re.Emoji.Name, re.Emoji.Name
			}
			cv.add(&importer.Event{Alias: cv.alias(m.ID, "reaction-"+emojiID+"-"+re.Users[i].ID), Type: "m.reaction",
				Sender: rp.mxid, Content: mustJSON(content), OriginServerTS: ts, Message: m.ID,
				SenderID: re.Users[i].ID, Emoji: bridgeEmoji})
			cv.sum.Reactions++
		}
		if re.Count > len(re.Users) {
			cv.sum.ReactionsNotNamed += re.Count - len(re.Users)
		}
	}
	return nil
}

// relation is what a message relates to: its thread (and the message it
// replies to there), or the message it replies to.
func (cv *conversation) relation(it Item, thread bool) map[string]any {
	m := it.Msg
	ch := it.File.Channel.ID
	var replyTo id.EventID
	if m.Reference != nil && m.Reference.MessageID != "" && m.Type == "Reply" {
		refCh := m.Reference.ChannelID
		if refCh == "" {
			refCh = ch
		}
		if cv.imported(refCh, m.Reference.MessageID) {
			replyTo = cv.alias(m.Reference.MessageID, "")
			cv.sum.Replies++
		} else {
			cv.sum.OrphanReplies++
		}
	}
	if thread {
		root := cv.meta.Roots[ch]
		if root == "" && cv.imported(cv.g.key, ch) {
			// A thread started at a message has that message's ID.
			root = ch
			cv.meta.Roots[ch] = ch
		}
		if root != "" {
			rootAlias := cv.alias(root, "")
			rel := map[string]any{"rel_type": "m.thread", "event_id": rootAlias}
			if replyTo != "" {
				rel["m.in_reply_to"] = map[string]any{"event_id": replyTo}
			} else {
				last := cv.last[ch]
				if last == "" {
					last = rootAlias
				}
				rel["is_falling_back"] = true
				rel["m.in_reply_to"] = map[string]any{"event_id": last}
			}
			cv.sum.ThreadMessages++
			return rel
		}
		cv.sum.OrphanThreadMessages++
	}
	if replyTo != "" {
		return map[string]any{"m.in_reply_to": map[string]any{"event_id": replyTo}}
	}
	return nil
}

// addPart adds a file or sticker of a message: the message's first event
// is its part "".
func (cv *conversation) addPart(messageID, senderID, part, evType string, content map[string]any, rel map[string]any, p *person,
	ts int64, parts *int) {
	if rel != nil {
		content["m.relates_to"] = rel
	}
	if *parts == 0 {
		part = ""
	}
	cv.add(&importer.Event{Alias: cv.alias(messageID, part), Type: evType, Sender: p.mxid, Content: mustJSON(content),
		OriginServerTS: ts, Message: messageID, Part: part, SenderID: senderID})
	*parts++
}

// notice carries a system message as an m.notice of text.
func (cv *conversation) notice(it Item, p *person, text string) error {
	cv.join(p, it.TS)
	cv.add(&importer.Event{Alias: cv.alias(it.Msg.ID, ""), Type: "m.room.message", Sender: p.mxid,
		Content:        mustJSON(map[string]any{"msgtype": "m.notice", "body": text, "m.mentions": map[string]any{}}),
		OriginServerTS: it.TS, Message: it.Msg.ID, SenderID: it.Msg.Author.ID})
	cv.known[it.ID] = true
	return nil
}

// textContent is an m.room.message of a message's text and embeds.
func (cv *conversation) textContent(m *Message) map[string]any {
	mentions := make([]Mention, 0, len(m.Mentions))
	for _, u := range m.Mentions {
		mentions = append(mentions, Mention{ID: u.ID, Name: u.Name, Nickname: u.Nickname})
	}
	f := Markdown(m.Content, mentions, cv.r)
	embeds := make([]discordfmt.Embed, 0, len(m.Embeds))
	for _, e := range m.Embeds {
		de := discordfmt.Embed{Title: e.Title, URL: e.URL, Description: e.Description}
		if e.Author != nil {
			de.Author = e.Author.Name
		}
		if e.Footer != nil {
			de.Footer = e.Footer.Text
		}
		for _, fl := range e.Fields {
			de.Fields = append(de.Fields, discordfmt.Field{Name: fl.Name, Value: fl.Value})
		}
		embeds = append(embeds, de)
	}
	body, htm, n := discordfmt.QuoteEmbeds(f.Body, f.HTML, embeds, func(text string) (string, string) {
		f := Markdown(text, nil, cv.r)
		return f.Body, f.HTML
	})
	cv.sum.Embeds += n
	content := map[string]any{"msgtype": "m.text", "body": body}
	if htm != "" {
		content["format"], content["formatted_body"] = "org.matrix.custom.html", htm
	}
	mm := map[string]any{}
	if len(f.Mentions) > 0 {
		mm["user_ids"] = f.Mentions
	}
	content["m.mentions"] = mm
	return content
}

// mimeOf guesses a file's type from its name.
func mimeOf(name string) string {
	switch strings.ToLower(filepath.Ext(name)) {
	case ".png":
		return "image/png"
	case ".jpg", ".jpeg":
		return "image/jpeg"
	case ".gif":
		return "image/gif"
	case ".webp":
		return "image/webp"
	case ".mp4":
		return "video/mp4"
	case ".webm":
		return "video/webm"
	case ".mp3":
		return "audio/mpeg"
	case ".ogg":
		return "audio/ogg"
	case ".txt":
		return "text/plain"
	case ".pdf":
		return "application/pdf"
	}
	return "application/octet-stream"
}

// attachment is the content of a file: uploaded when it can be had, a link
// otherwise.
func (cv *conversation) attachment(ctx context.Context, a Attachment, p *person, base string) (map[string]any, error) {
	name := a.FileName
	if name == "" {
		name = a.ID
	}
	mime := mimeOf(name)
	key := "attachment:" + a.ID
	mxc, err := cv.r.t.Media(ctx, key)
	if err != nil {
		return nil, err
	}
	if mxc == "" && a.URL != "" {
		mxc, err = cv.r.fetch(ctx, a.URL, base, key, p.mxid, name, mime)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			if err != errNoDownload {
				cv.sum.FailedDownloads++
				cv.sum.problem("attachment %s (%s): %v", a.ID, name, err)
			}
		}
	}
	if mxc != "" {
		msgtype := "m.file"
		switch {
		case strings.HasPrefix(mime, "image/"):
			msgtype = "m.image"
		case strings.HasPrefix(mime, "video/"):
			msgtype = "m.video"
		case strings.HasPrefix(mime, "audio/"):
			msgtype = "m.audio"
		}
		info := map[string]any{"mimetype": mime}
		if a.FileSizeBytes > 0 {
			info["size"] = a.FileSizeBytes
		}
		cv.sum.FilesUploaded++
		return map[string]any{"msgtype": msgtype, "body": name, "filename": name, "url": mxc, "info": info,
			"m.mentions": map[string]any{}}, nil
	}
	cv.sum.FilesLinked++
	link := a.URL
	if link == "" {
		return map[string]any{"msgtype": "m.notice", "body": "📎 " + name + " (not in the export)", "m.mentions": map[string]any{}}, nil
	}
	return map[string]any{"msgtype": "m.text", "body": "📎 " + name + ": " + link, "format": "org.matrix.custom.html",
		"formatted_body": `📎 <a href="` + html.EscapeString(link) + `">` + html.EscapeString(name) + "</a>",
		"m.mentions":     map[string]any{}}, nil
}

// sticker is an m.sticker of a sticker's image, or a text naming it.
func (cv *conversation) sticker(ctx context.Context, s Sticker, p *person, base string) (string, map[string]any, error) {
	name := s.Name
	if name == "" {
		name = "sticker"
	}
	if s.SourceURL != "" && s.Format != "Lottie" {
		mime := "image/png"
		if s.Format == "Gif" {
			mime = "image/gif"
		}
		if mxc := cv.r.fetchOnce(ctx, "sticker:"+s.ID, s.SourceURL, base, p.mxid, name+".png"); mxc != "" {
			return "m.sticker", map[string]any{"body": name, "url": mxc, "info": map[string]any{"mimetype": mime, "w": 160, "h": 160}}, nil
		}
	}
	content := map[string]any{"msgtype": "m.text", "body": "[sticker: " + name + "]", "m.mentions": map[string]any{}}
	if s.SourceURL != "" && (strings.HasPrefix(s.SourceURL, "https://") || strings.HasPrefix(s.SourceURL, "http://")) {
		content["format"] = "org.matrix.custom.html"
		content["formatted_body"] = `[sticker: <a href="` + html.EscapeString(s.SourceURL) + `">` + html.EscapeString(name) + "</a>]"
	}
	return "m.room.message", content, nil
}

// reactionKey is the m.reaction key of an emoji: the character of a Unicode
// emoji; a custom emoji's image (an mxc:// URI) when it can be had, its
// :name: otherwise. The shortcode goes with an image.
func (cv *conversation) reactionKey(ctx context.Context, e Emoji, p *person) (key, shortcode string) {
	if e.ID == "" {
		return e.Name, ""
	}
	sc := ":" + e.Name + ":"
	if e.ImageURL != "" && cv.r.o.Download {
		if mxc := cv.r.fetchOnce(ctx, "emoji:"+e.ID, e.ImageURL, "", cv.r.ident.Bot, e.Name+".png"); mxc != "" {
			cv.sum.CustomEmoji++
			return mxc, sc
		}
	}
	cv.sum.EmojiAsText++
	return sc, ""
}

// finish adds what a channel's file says of its present: its topic and
// pins.
func (cv *conversation) finish() {
	ts := cv.lastTS
	if ts == 0 {
		ts = snowflakeMillis(parseID(cv.g.key))
	}
	empty := ""
	if t := cv.g.topic; t != cv.meta.Topic && t != "" && len(cv.g.main) > 0 {
		cv.add(&importer.Event{Type: "m.room.topic", StateKey: &empty, Sender: cv.r.ident.Bot,
			Content: mustJSON(map[string]any{"topic": t}), OriginServerTS: ts})
		cv.meta.Topic = t
	}
	pins := make([]string, 0, len(cv.pins))
	for p := range cv.pins {
		pins = append(pins, p)
	}
	slices.SortFunc(pins, cmpID)
	if len(pins) > maxPins {
		cv.sum.PinsNotCarried += len(pins) - maxPins
		pins = pins[len(pins)-maxPins:]
	}
	if !slices.Equal(pins, cv.meta.Pins) {
		cv.pinsDirty = true
		cv.meta.Pins = pins
	} else {
		cv.pinsDirty = false
	}
}

// flush hands the batch to the pipe, which writes it, then records where
// the import stands then (cursors, meta, pins, as they are now).
func (cv *conversation) flush(ctx context.Context) error {
	evs, spans := cv.batch, cv.batchMsgs
	cv.batch, cv.batchMsgs = nil, nil
	meta, err := json.Marshal(cv.meta, json.Deterministic(true))
	if err != nil {
		return err
	}
	at := importer.Standing{Meta: string(meta)}
	var top uint64
	for _, c := range cv.meta.Cursors {
		if n := parseID(c); n > top {
			top, at.Cursor = n, c
		}
	}
	if cv.pinsDirty {
		at.Pins = make([]id.EventID, len(cv.meta.Pins))
		for i, p := range cv.meta.Pins {
			at.Pins[i] = cv.alias(p, "")
		}
		at.PinsTS = max(cv.lastTS, snowflakeMillis(parseID(cv.g.key)))
		cv.pinsDirty = false
	}
	return cv.pipe.Do(ctx, func(ctx context.Context) error { return cv.w.Write(ctx, evs, spans, &at) })
}
