package slack

import (
	"context"
	"encoding/json/v2"
	"fmt"
	"html"
	"slices"
	"strings"

	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/bridges/slack/slackfmt"
	"github.com/tributary-hs/tributary/importer"
)

// maxPins is how many pins a room gets (Slack's limit a channel).
const maxPins = 100

// meta is what a portal's import keeps beside its cursor.
type meta struct {
	Topic string   `json:"topic,omitempty"`
	Pins  []string `json:"pins,omitempty"`
}

// conversation is the import of one conversation.
type conversation struct {
	r      *run
	c      *Conversation
	portal *importer.Portal
	room   id.RoomID
	sum    Summary
	// cursor is the ts (µs) of the last message imported before this run.
	cursor int64
	meta   meta
	joined map[id.UserID]bool
	// known are the messages of this run that have an event (a thread
	// may start there); threads are the last event of each thread.
	known   map[int64]bool
	threads map[string]id.EventID
	pins    map[string]bool
	// The batch being filled and the messages it ends with.
	batch     []*importer.Event
	batchMsgs []msgSpan
	lastTS    string
	lastUS    int64
	// pinsDirty: the pins changed; m.room.pinned_events is sent after the
	// last batch.
	pinsDirty bool
	// pipe writes the batches (w) while the next is read (importer.Pipe);
	// what w counts is added to sum at the end.
	pipe *importer.Pipe
	w    *importer.Batches
}

// msgSpan is where one message's events start in the batch.
type msgSpan = importer.Span

func (r *run) importConversation(ctx context.Context, c *Conversation) (err error) {
	r.mu.Lock()
	portal := r.rooms[c.ID]
	r.mu.Unlock()
	cv := &conversation{r: r, c: c, portal: portal, room: portal.RoomID, joined: map[id.UserID]bool{},
		known: map[int64]bool{}, threads: map[string]id.EventID{}, pins: map[string]bool{},
		sum: Summary{Unknown: map[string]int{}}, pipe: importer.NewPipe(ctx)}
	cv.w = &importer.Batches{Target: r.t, Room: cv.room, Bot: r.ident.Bot, PortalID: portal.PortalID, Label: c.label(),
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
		for _, p := range cv.w.Problems {
			cv.sum.problem("%s", p)
		}
		r.mu.Lock()
		r.sum.add(&cv.sum)
		r.mu.Unlock()
	}()
	if portal.Cursor != "" {
		us, ok := parseTS(portal.Cursor)
		if !ok {
			return fmt.Errorf("the recorded cursor %q is not a Slack ts", portal.Cursor)
		}
		cv.cursor, cv.lastTS, cv.lastUS = us, portal.Cursor, us
	}
	if portal.Meta != "" {
		_ = json.Unmarshal([]byte(portal.Meta), &cv.meta)
	}
	joined, err := r.t.Joined(ctx, cv.room)
	if err != nil {
		return err
	}
	for _, u := range joined {
		cv.joined[u] = true
	}
	for _, p := range c.Pins {
		if p.ID != "" {
			cv.pins[p.ID] = true
		}
	}
	for it := range r.e.Messages(c) {
		if err := ctx.Err(); err != nil {
			return err
		}
		if it.Err != nil {
			if it.Msg == nil && strings.Contains(it.Err.Error(), ErrFormat.Error()) {
				return it.Err
			}
			cv.sum.BadMessages++
			cv.sum.problem("%s: %v", it.Day, it.Err)
			r.progress(1)
			continue
		}
		m := it.Msg
		us, _ := parseTS(m.TS)
		if len(m.PinnedTo) > 0 && slices.Contains(m.PinnedTo, c.ID) {
			cv.pins[m.TS] = true
		}
		if us <= cv.cursor {
			cv.sum.Skipped++
			r.progress(1)
			continue
		}
		start := len(cv.batch)
		if err := cv.message(ctx, m, us); err != nil {
			return err
		}
		cv.lastTS, cv.lastUS = m.TS, us
		cv.batchMsgs = append(cv.batchMsgs, msgSpan{Start: start, Key: m.TS})
		if len(cv.batch) >= r.o.BatchEvents {
			if err := cv.flush(ctx); err != nil {
				return err
			}
		}
	}
	finStart := len(cv.batch)
	if err := cv.finish(ctx); err != nil {
		return err
	}
	if len(cv.batch) > finStart {
		cv.batchMsgs = append(cv.batchMsgs, msgSpan{Start: finStart, Key: cv.lastTS})
	}
	return cv.flush(ctx)
}

func (r *run) progress(n int) {
	if r.o.Progress != nil {
		r.o.Progress(n)
	}
}

func (cv *conversation) alias(ts, part string) id.EventID {
	return alias(cv.room, cv.r.ident.ServerName, cv.r.team, cv.c.ID, ts, part)
}

// messageID is the bridge's ID of the conversation's message ts
// ("TEAM-CHANNEL-TS", as the alias names it).
func (cv *conversation) messageID(ts string) string { return cv.r.team + "-" + cv.c.ID + "-" + ts }

// senderID is the bridge's ID of a message's sender's ghost ("team-user",
// lowercase, as the alias of a ghost's user ID is made).
func (cv *conversation) senderID(m *Message) string {
	who := m.User
	if who == "" {
		who = m.BotID
	}
	return strings.ToLower(cv.r.team + "-" + who)
}

func (cv *conversation) add(ev *importer.Event) { cv.batch = append(cv.batch, ev) }

func (cv *conversation) direct() bool { return cv.c.Kind == KindDM || cv.c.Kind == KindGroup }

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

// sender is who a message is from: its user, else its bot.
func (cv *conversation) sender(ctx context.Context, m *Message) (*person, error) {
	switch {
	case m.User != "":
		return cv.r.who(ctx, m.User, m)
	case m.BotID != "":
		return cv.r.who(ctx, m.BotID, m)
	}
	return nil, nil
}

// message turns one Slack message into events.
func (cv *conversation) message(ctx context.Context, m *Message, us int64) error {
	if m.Hidden {
		return nil
	}
	ts := tsMillis(us)
	p, err := cv.sender(ctx, m)
	if err != nil {
		return err
	}
	if p == nil {
		cv.sum.BadMessages++
		cv.sum.problem("%s %s: a message from nobody (no user, no bot_id)", cv.c.label(), m.TS)
		cv.r.progress(1)
		return nil
	}
	cv.sum.Messages++
	cv.r.progress(1)
	empty := ""
	switch m.Subtype {
	case "channel_join", "group_join":
		cv.join(p, ts)
		return nil
	case "channel_leave", "group_leave":
		if cv.joined[p.mxid] {
			delete(cv.joined, p.mxid)
			key := string(p.mxid)
			cv.add(&importer.Event{Type: "m.room.member", StateKey: &key, Sender: p.mxid,
				Content: mustJSON(map[string]any{"membership": "leave"}), OriginServerTS: ts})
			cv.sum.Leaves++
		}
		return nil
	case "channel_topic", "group_topic":
		cv.join(p, ts)
		cv.add(&importer.Event{Alias: cv.alias(m.TS, ""), Type: "m.room.topic", StateKey: &empty, Sender: p.mxid,
			Content: mustJSON(map[string]any{"topic": slackfmt.DecodeEntities(m.Topic)}), OriginServerTS: ts})
		cv.meta.Topic = slackfmt.DecodeEntities(m.Topic)
		cv.known[us] = true
		return nil
	case "channel_name", "group_name":
		if m.Name != "" {
			cv.join(p, ts)
			cv.add(&importer.Event{Alias: cv.alias(m.TS, ""), Type: "m.room.name", StateKey: &empty, Sender: p.mxid,
				Content: mustJSON(map[string]any{"name": m.Name}), OriginServerTS: ts})
			cv.known[us] = true
		}
		return nil
	case "", "thread_broadcast", "reply_broadcast", "file_share", "bot_message", "me_message":
	case "channel_purpose", "group_purpose", "channel_archive", "channel_unarchive", "group_archive",
		"group_unarchive", "pinned_item", "unpinned_item", "tombstone", "channel_convert_to_private":
		// Slack's own words say what happened ("… set the channel purpose: …").
		return cv.notice(ctx, m, p, us)
	default:
		cv.sum.Unknown[m.Subtype]++
		if strings.TrimSpace(m.Text) == "" {
			return nil
		}
		return cv.notice(ctx, m, p, us)
	}
	cv.join(p, ts)
	var rel map[string]any
	reply := m.ThreadTS != "" && m.ThreadTS != m.TS
	if reply {
		rootUS, _ := parseTS(m.ThreadTS)
		if rootUS <= cv.cursor || cv.known[rootUS] {
			root := cv.alias(m.ThreadTS, "")
			if m.Subtype == "thread_broadcast" || m.Subtype == "reply_broadcast" {
				// Also sent to the channel: a reply in the main timeline.
				rel = map[string]any{"m.in_reply_to": map[string]any{"event_id": root}}
			} else {
				last := cv.threads[m.ThreadTS]
				if last == "" {
					last = root
					cv.sum.Threads++
				}
				rel = map[string]any{"rel_type": "m.thread", "event_id": root, "is_falling_back": true,
					"m.in_reply_to": map[string]any{"event_id": last}}
				cv.sum.Replies++
			}
		} else {
			cv.sum.OrphanReplies++
		}
	}
	parts := 0
	var textAlias id.EventID
	var textContent map[string]any
	if strings.TrimSpace(m.Text) != "" || len(m.Attachments) > 0 || len(m.Files) == 0 {
		msgtype := "m.text"
		switch m.Subtype {
		case "bot_message":
			msgtype = "m.notice"
		case "me_message":
			msgtype = "m.emote"
		}
		textContent = cv.textContent(ctx, msgtype, m.Text, m.Attachments)
		if rel != nil {
			textContent["m.relates_to"] = rel
		}
		textAlias = cv.alias(m.TS, "")
		cv.add(&importer.Event{Alias: textAlias, Type: "m.room.message", Sender: p.mxid, Content: mustJSON(textContent),
			OriginServerTS: ts, Message: cv.messageID(m.TS), SenderID: cv.senderID(m)})
		parts++
	}
	for i, f := range m.Files {
		content, err := cv.file(ctx, f, p)
		if err != nil {
			return err
		}
		if content == nil {
			continue
		}
		if rel != nil {
			content["m.relates_to"] = rel
		}
		part := fmt.Sprintf("file-%d-%s", i, f.ID)
		if parts == 0 {
			part = ""
		}
		cv.add(&importer.Event{Alias: cv.alias(m.TS, part), Type: "m.room.message", Sender: p.mxid,
			Content: mustJSON(content), OriginServerTS: ts, Message: cv.messageID(m.TS), SenderID: cv.senderID(m), Part: part})
		parts++
	}
	if parts == 0 {
		return nil
	}
	cv.known[us] = true
	if rel != nil && rel["rel_type"] == "m.thread" {
		cv.threads[m.ThreadTS] = cv.batch[len(cv.batch)-1].Alias
	}
	if m.Edited != nil && textAlias != "" {
		editUS, ok := parseTS(m.Edited.TS)
		if !ok || editUS < us {
			editUS = us
		}
		newContent := cv.textContent(ctx, textContent["msgtype"].(string), m.Text, m.Attachments)
		edit := map[string]any{"msgtype": newContent["msgtype"], "body": "* " + newContent["body"].(string),
			"m.new_content": newContent, "m.relates_to": map[string]any{"rel_type": "m.replace", "event_id": textAlias}}
		if h, ok := newContent["formatted_body"].(string); ok {
			edit["format"], edit["formatted_body"] = "org.matrix.custom.html", "* "+h
		}
		cv.add(&importer.Event{Alias: cv.alias(m.TS, "edit"), Type: "m.room.message", Sender: p.mxid,
			Content: mustJSON(edit), OriginServerTS: tsMillis(editUS)})
		cv.sum.Edits++
	}
	target := cv.alias(m.TS, "")
	for _, re := range m.Reactions {
		content := mustJSON(cv.r.reactionContent(ctx, target, re.Name))
		for _, u := range re.Users {
			rp, err := cv.r.who(ctx, u, nil)
			if err != nil {
				return err
			}
			cv.join(rp, ts)
			cv.add(&importer.Event{Alias: cv.alias(m.TS, "reaction-"+re.Name+"-"+u), Type: "m.reaction", Sender: rp.mxid,
				Content: content, OriginServerTS: ts, Message: cv.messageID(m.TS), SenderID: strings.ToLower(cv.r.team + "-" + u),
				Emoji: re.Name})
			cv.sum.Reactions++
		}
		if re.Count > len(re.Users) {
			cv.sum.ReactionsNotNamed += re.Count - len(re.Users)
		}
	}
	return nil
}

// notice carries a message as an m.notice of its text.
func (cv *conversation) notice(ctx context.Context, m *Message, p *person, us int64) error {
	ts := tsMillis(us)
	cv.join(p, ts)
	content := cv.textContent(ctx, "m.notice", m.Text, m.Attachments)
	cv.add(&importer.Event{Alias: cv.alias(m.TS, ""), Type: "m.room.message", Sender: p.mxid, Content: mustJSON(content),
		OriginServerTS: ts, Message: cv.messageID(m.TS), SenderID: cv.senderID(m)})
	cv.known[us] = true
	return nil
}

// textContent is an m.room.message of Slack text and attachments.
func (cv *conversation) textContent(ctx context.Context, msgtype, text string, atts []Attachment) map[string]any {
	res := textResolver{ctx: ctx, r: cv.r}
	f := slackfmt.Mrkdwn(text, res)
	body, htm := f.Body, f.HTML
	if htm == "" && len(atts) > 0 {
		htm = html.EscapeString(body)
		htm = strings.ReplaceAll(htm, "\n", "<br>")
	}
	for _, a := range atts {
		var bl, hl []string
		if a.Pretext != "" {
			pf := slackfmt.Mrkdwn(a.Pretext, res)
			bl, hl = append(bl, pf.Body), append(hl, htmlOr(pf))
		}
		if a.Title != "" {
			t := slackfmt.DecodeEntities(a.Title)
			if a.TitleLink != "" && slackfmt.SafeLink(a.TitleLink) {
				bl = append(bl, t+" ("+a.TitleLink+")")
				hl = append(hl, `<strong><a href="`+html.EscapeString(a.TitleLink)+`">`+html.EscapeString(t)+"</a></strong>")
			} else {
				bl, hl = append(bl, t), append(hl, "<strong>"+html.EscapeString(t)+"</strong>")
			}
		}
		if a.Text != "" {
			tf := slackfmt.Mrkdwn(a.Text, res)
			bl, hl = append(bl, tf.Body), append(hl, htmlOr(tf))
		} else if a.Fallback != "" && a.Title == "" {
			bl, hl = append(bl, slackfmt.DecodeEntities(a.Fallback)), append(hl, html.EscapeString(slackfmt.DecodeEntities(a.Fallback)))
		}
		if a.Footer != "" {
			ff := slackfmt.Mrkdwn(a.Footer, res)
			bl, hl = append(bl, ff.Body), append(hl, "<sub>"+htmlOr(ff)+"</sub>")
		}
		if len(bl) == 0 {
			continue
		}
		if body != "" {
			body += "\n"
		}
		body += "> " + strings.Join(bl, "\n> ")
		htm += "<blockquote>" + strings.Join(hl, "<br>") + "</blockquote>"
	}
	content := map[string]any{"msgtype": msgtype, "body": body}
	if htm != "" {
		content["format"], content["formatted_body"] = "org.matrix.custom.html", htm
	}
	mentions := map[string]any{}
	if len(f.Mentions) > 0 {
		mentions["user_ids"] = f.Mentions
	}
	content["m.mentions"] = mentions
	return content
}

func htmlOr(f slackfmt.Formatted) string {
	if f.HTML != "" {
		return f.HTML
	}
	return strings.ReplaceAll(html.EscapeString(f.Body), "\n", "<br>")
}

// file is the content of a shared file: uploaded when a token lets it be
// downloaded, a link otherwise; nil when the export no longer has it.
func (cv *conversation) file(ctx context.Context, f File, p *person) (map[string]any, error) {
	src := f.URLPrivateDownload
	if src == "" {
		src = f.URLPrivate
	}
	if f.Mode == "tombstone" || f.Mode == "hidden_by_limit" || src == "" {
		cv.sum.MissingFiles++
		return nil, nil
	}
	name := f.Name
	if name == "" {
		name = f.Title
	}
	if name == "" {
		name = f.ID
	}
	if cv.r.o.FilesToken != "" {
		mxc, err := cv.r.t.Media(ctx, f.ID)
		if err != nil {
			return nil, err
		}
		if mxc == "" {
			mxc, err = cv.r.download(ctx, src, cv.r.o.FilesToken, f.ID, p.mxid, name)
			if err != nil {
				if ctx.Err() != nil {
					return nil, ctx.Err()
				}
				cv.sum.FailedDownloads++
				cv.sum.problem("file %s (%s): %v", f.ID, name, err)
			}
		}
		if mxc != "" {
			msgtype := "m.file"
			switch {
			case strings.HasPrefix(f.Mimetype, "image/"):
				msgtype = "m.image"
			case strings.HasPrefix(f.Mimetype, "video/"):
				msgtype = "m.video"
			case strings.HasPrefix(f.Mimetype, "audio/"):
				msgtype = "m.audio"
			}
			info := map[string]any{}
			if f.Mimetype != "" {
				info["mimetype"] = f.Mimetype
			}
			if f.Size > 0 {
				info["size"] = f.Size
			}
			if f.OriginalW > 0 && f.OriginalH > 0 {
				info["w"], info["h"] = f.OriginalW, f.OriginalH
			}
			cv.sum.FilesUploaded++
			return map[string]any{"msgtype": msgtype, "body": name, "filename": name, "url": mxc, "info": info,
				"m.mentions": map[string]any{}}, nil
		}
	}
	link := f.URLPrivate
	if link == "" {
		link = src
	}
	cv.sum.FilesLinked++
	return map[string]any{"msgtype": "m.text", "body": "📎 " + name + ": " + link, "format": "org.matrix.custom.html",
		"formatted_body": `📎 <a href="` + html.EscapeString(link) + `">` + html.EscapeString(name) + "</a>",
		"m.mentions":     map[string]any{}}, nil
}

// finish adds what a conversation's lists say of its present: its members,
// topic and pins.
func (cv *conversation) finish(ctx context.Context) error {
	ts := tsMillis(cv.lastUS)
	if ts == 0 {
		ts = cv.c.Created * 1000
	}
	for _, u := range cv.c.Members {
		p, err := cv.r.who(ctx, u, nil)
		if err != nil {
			return err
		}
		cv.join(p, ts)
	}
	empty := ""
	if t := slackfmt.DecodeEntities(cv.c.Topic.Value); t != cv.meta.Topic && (t != "" || cv.meta.Topic != "") {
		if cv.c.Kind != KindDM || t != "" {
			cv.add(&importer.Event{Type: "m.room.topic", StateKey: &empty, Sender: cv.r.ident.Bot,
				Content: mustJSON(map[string]any{"topic": t}), OriginServerTS: ts})
			cv.meta.Topic = t
		}
	}
	pins := make([]string, 0, len(cv.pins))
	for ts := range cv.pins {
		pins = append(pins, ts)
	}
	slices.Sort(pins)
	if len(pins) > maxPins {
		// Slack keeps 100 pins a channel; an export with more keeps the
		// latest (an m.room.pinned_events of thousands would not fit an
		// event).
		cv.sum.PinsNotCarried += len(pins) - maxPins
		pins = pins[len(pins)-maxPins:]
	}
	if !slices.Equal(pins, cv.meta.Pins) && (len(pins) > 0 || len(cv.meta.Pins) > 0) {
		cv.pinsDirty = true
		cv.meta.Pins = pins
	}
	return nil
}

// flush hands the batch to the pipe, which writes it, then records where
// the import stands then (cursor, meta, pins, as they are now).
func (cv *conversation) flush(ctx context.Context) error {
	evs, spans := cv.batch, cv.batchMsgs
	cv.batch, cv.batchMsgs = nil, nil
	meta, err := json.Marshal(cv.meta)
	if err != nil {
		return err
	}
	var pins []id.EventID
	if cv.pinsDirty {
		pins = make([]id.EventID, len(cv.meta.Pins))
		for i, p := range cv.meta.Pins {
			pins[i] = cv.alias(p, "")
		}
		cv.pinsDirty = false
	}
	at := importer.Standing{Cursor: cv.lastTS, Meta: string(meta), Pins: pins, PinsTS: max(tsMillis(cv.lastUS), cv.c.Created*1000)}
	return cv.pipe.Do(ctx, func(ctx context.Context) error { return cv.w.Write(ctx, evs, spans, &at) })
}
