package discordexport

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"image"
	"image/color"
	"image/png"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Options shape a guild. Zero values take the defaults noted.
type Options struct {
	Seed uint64
	// GuildID ("881000000000000001") and GuildName ("Generated Guild").
	GuildID, GuildName string
	// Users are people (20), Bots bot accounts (2).
	Users, Bots int
	// Categories (2) hold the Channels (4) in turn; Threads (4) branch off
	// the channels in turn, the last at a ThreadCreated notice rather
	// than at a message; DMs are direct-message channels (1; -1 for none).
	Categories, Channels, Threads, DMs int
	// Messages is how many messages the files hold in all (1000).
	Messages int
	// Start is the day of the first message (2023-01-02 UTC); PerDay the
	// messages of one channel per day (200).
	Start  time.Time
	PerDay int
	// MediaBaseURL is the CDN that avatars, attachments, custom emoji and
	// stickers point at ("https://cdn.discordapp.com"); Media says what it
	// serves.
	MediaBaseURL string
	// Record lists every message in the Manifest (for tests: leave it off
	// for big exports).
	Record bool
}

func (o *Options) defaults() {
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	def(&o.Users, 20)
	def(&o.Bots, 2)
	def(&o.Categories, 2)
	def(&o.Channels, 4)
	def(&o.Threads, 4)
	def(&o.DMs, 1)
	def(&o.Messages, 1000)
	def(&o.PerDay, 200)
	o.DMs = max(o.DMs, 0)
	o.Threads = max(o.Threads, 0)
	if o.GuildID == "" {
		o.GuildID = "881000000000000001"
	}
	if o.GuildName == "" {
		o.GuildName = "Generated Guild"
	}
	if o.Start.IsZero() {
		o.Start = time.Date(2023, 1, 2, 0, 0, 0, 0, time.UTC)
	}
	if o.MediaBaseURL == "" {
		o.MediaBaseURL = "https://cdn.discordapp.com"
	}
	o.MediaBaseURL = strings.TrimSuffix(o.MediaBaseURL, "/")
}

// Manifest says what an export holds.
type Manifest struct {
	GuildID, GuildName string
	Users              []User
	Channels           []*Channel
	// Counts over every file.
	Messages, Replies, ThreadMessages, Edits, Reactions, ReactionUsers, ReactionsNotNamed int
	CustomReactions, Attachments, MissingAttachments, Stickers, Embeds, BotMessages       int
	Joins, Renames, Pins, Mentions, Unknown                                               int
	// Records are the messages, file by file (Options.Record).
	Records []Record
}

// User is an author.
type User struct {
	ID, Name, Nickname, AvatarURL string
	IsBot                         bool
}

// Channel is one file's channel.
type Channel struct {
	ID, Name, Type, CategoryID, Category, Topic, File string
	GuildID                                           string
	// ParentID is the channel a thread branches off, StarterID the message
	// (or ThreadCreated notice) it starts at.
	ParentID, StarterID string
	// StarterIsNotice: the thread starts at a ThreadCreated notice.
	StarterIsNotice bool
	Messages        int
	FirstID, LastID string
}

// Record is one message as written.
type Record struct {
	Channel, ID, Type, Author, Content string
	// Timestamp and Edited (0 if never) in milliseconds.
	Timestamp, Edited int64
	// ReplyTo is the message replied to; Thread the thread the message is
	// in (its channel); ThreadParent that thread's channel.
	ReplyTo, ThreadParent string
	Reactions             []Reaction
	Attachments           []string // IDs
	MissingAttachments    []string
	Stickers              []string
	Mentions              []string
	Embeds                int
	Pinned                bool
}

// Reaction is one emoji's reactions to a message.
type Reaction struct {
	// Name is the emoji's name (the character for Unicode emoji), EmojiID
	// a custom emoji's ID ("" for Unicode).
	Name, EmojiID string
	Users         []string
	Count         int
}

// discordEpoch is the start of snowflake time, in milliseconds.
const discordEpoch = 1420070400000

// Snowflake is the ID of a thing made at ms by the index-th maker (0–1023),
// as Discord makes them (time in the high bits).
func Snowflake(ms int64, index, seq int) string {
	return strconv.FormatUint(uint64(ms-discordEpoch)<<22|uint64(index&0x3ff)<<12|uint64(seq&0xfff), 10)
}

// SnowflakeTime is the time of a snowflake in milliseconds.
func SnowflakeTime(id string) int64 {
	v, _ := strconv.ParseUint(id, 10, 64)
	return int64(v>>22) + discordEpoch
}

// WriteDir writes the export of opts into dir, one file per channel.
func WriteDir(dir string, opts Options) (*Manifest, error) {
	opts.defaults()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	g := &gen{opts: opts, dir: dir, m: &Manifest{GuildID: opts.GuildID, GuildName: opts.GuildName},
		rng: rand.New(rand.NewPCG(opts.Seed, 0xd15c0)), users: map[string]*author{}}
	if err := g.run(); err != nil {
		return nil, err
	}
	return g.m, nil
}

type gen struct {
	opts   Options
	dir    string
	m      *Manifest
	rng    *rand.Rand
	people []*author
	bots   []*author
	users  map[string]*author
	roles  []role
}

var firstNames = []string{"Ada", "Brian", "Chioma", "Dmitri", "Elena", "Farid", "Grace", "Hiro", "Ines", "Jonas",
	"Kavya", "Liam", "Mei", "Nora", "Omar", "Priya", "Quentin", "Rosa", "Sven", "Tomoko", "Uma", "Viktor", "Wen",
	"Xavier", "Yara", "Zoltan"}
var lastNames = []string{"Lovelace", "Kernighan", "Okafor", "Volkov", "Garcia", "Haddad", "Hopper", "Tanaka",
	"Moreau", "Berg", "Iyer", "Walsh", "Chen", "Lindqvist", "Nasser", "Patel"}
var channelNames = []string{"general", "random", "dev", "support", "announcements", "design", "ops", "music",
	"games", "help", "off-topic", "releases"}
var categoryNames = []string{"Text Channels", "Engineering", "Community", "Archive"}

// plan is a file to write: its channel and which messages it holds.
type plan struct {
	ch    *Channel
	index int // the snowflake maker index of its messages
	n     int
	// threads branching off this channel, by the index of the message
	// they start at.
	threads map[int]*plan
	// For a thread: when its starter was written, and its maker index.
	startMS int64
	guild   guild
}

func (g *gen) run() error {
	o := g.opts
	created := o.Start.Add(-30 * 24 * time.Hour).UnixMilli()
	for i := range o.Users {
		first, last := firstNames[i%len(firstNames)], lastNames[(i/len(firstNames)+i)%len(lastNames)]
		handle := strings.ToLower(first) + "." + strings.ToLower(last)
		if i >= len(firstNames) {
			handle += strconv.Itoa(i)
		}
		a := &author{ID: Snowflake(created-int64(1000+i)*60_000, 1, i), Name: handle, Discriminator: "0",
			Nickname: first + " " + last}
		if i%4 == 3 {
			a.Nickname = handle // no display name: the username shows
		}
		g.people = append(g.people, a)
	}
	for i := range o.Bots {
		name := []string{"Deploy Bot", "MEE6", "GitHub", "Pager"}[i%4]
		a := &author{ID: Snowflake(created-int64(5000+i)*60_000, 1, i), Name: strings.ToLower(strings.ReplaceAll(name, " ", "")),
			Discriminator: strconv.Itoa(1000 + i), Nickname: name, IsBot: true}
		g.bots = append(g.bots, a)
	}
	if len(g.people) < 3 {
		return fmt.Errorf("discordexport: need at least three people, got %d", len(g.people))
	}
	g.roles = []role{{ID: Snowflake(created, 2, 0), Name: "Moderator", Position: 2}, {ID: Snowflake(created, 2, 1), Name: "Member", Position: 1}}
	for _, a := range append(append([]*author{}, g.people...), g.bots...) {
		a.AvatarURL = fmt.Sprintf("%s/avatars/%s/%016x.png", o.MediaBaseURL, a.ID, fnv64(a.ID))
		g.users[a.ID] = a
		g.m.Users = append(g.m.Users, User{ID: a.ID, Name: a.Name, Nickname: a.Nickname, AvatarURL: a.AvatarURL, IsBot: a.IsBot})
	}
	// Shares: threads 15%, DMs 5%, the channels the rest.
	threadTotal := 0
	if o.Threads > 0 {
		threadTotal = max(o.Messages*15/100, o.Threads)
	}
	dmTotal := 0
	if o.DMs > 0 {
		dmTotal = max(o.Messages*5/100, o.DMs)
	}
	chanTotal := o.Messages - threadTotal - dmTotal
	if chanTotal < o.Channels*2 {
		return fmt.Errorf("discordexport: %d messages are too few for %d channels", o.Messages, o.Channels)
	}
	gd := guild{ID: o.GuildID, Name: o.GuildName, IconURL: o.MediaBaseURL + "/icons/" + o.GuildID + "/icon.png"}
	var chans []*plan
	maker := 10
	for c := range o.Channels {
		cat := c % max(o.Categories, 1)
		ch := &Channel{ID: Snowflake(created+int64(c+1)*1000, 3, c), Name: channelNames[c%len(channelNames)], Type: "GuildTextChat",
			GuildID: o.GuildID}
		if c >= len(channelNames) {
			ch.Name += "-" + strconv.Itoa(c)
		}
		if o.Categories > 0 {
			ch.CategoryID = Snowflake(created, 4, cat)
			ch.Category = categoryNames[cat%len(categoryNames)]
			if cat >= len(categoryNames) {
				ch.Category += " " + strconv.Itoa(cat)
			}
		}
		if c%2 == 0 {
			ch.Topic = "All about " + ch.Name
		}
		n := chanTotal / o.Channels
		if c == 0 {
			n += chanTotal % o.Channels
		}
		chans = append(chans, &plan{ch: ch, index: maker, n: n, threads: map[int]*plan{}, guild: gd})
		maker++
	}
	// Threads start evenly through their channels.
	perParent := map[int]int{}
	for t := range o.Threads {
		perParent[t%o.Channels]++
	}
	seen := map[int]int{}
	var threads []*plan
	for t := range o.Threads {
		parent := chans[t%o.Channels]
		k := seen[t%o.Channels]
		seen[t%o.Channels]++
		at := (k + 1) * parent.n / (perParent[t%o.Channels] + 1)
		for parent.threads[at] != nil {
			at++
		}
		n := threadTotal / o.Threads
		if t == 0 {
			n += threadTotal % o.Threads
		}
		cat, catID := parent.ch.Name, parent.ch.ID
		th := &plan{ch: &Channel{Name: fmt.Sprintf("thread %d of %s", k+1, parent.ch.Name), Type: "GuildPublicThread",
			CategoryID: catID, Category: cat, ParentID: parent.ch.ID, GuildID: o.GuildID, StarterIsNotice: t == o.Threads-1 && o.Threads > 1},
			index: maker, n: n, guild: gd}
		maker++
		parent.threads[at] = th
		threads = append(threads, th)
	}
	var dms []*plan
	for d := range o.DMs {
		other := g.people[(d+1)%len(g.people)]
		n := dmTotal / o.DMs
		if d == 0 {
			n += dmTotal % o.DMs
		}
		ch := &Channel{ID: Snowflake(created+int64(100+d)*1000, 3, 100+d), Name: other.Name, Type: "DirectTextChat",
			Category: "Private", GuildID: "0"}
		dms = append(dms, &plan{ch: ch, index: maker, n: n, guild: guild{ID: "0", Name: "Direct Messages",
			IconURL: "https://cdn.discordapp.com/embed/avatars/0.png"}})
		maker++
	}
	// Channels first: writing them fixes where their threads start.
	for _, p := range chans {
		if err := g.write(p); err != nil {
			return err
		}
	}
	for _, p := range threads {
		if p.startMS == 0 {
			continue // its channel had no message to start it at
		}
		if err := g.write(p); err != nil {
			return err
		}
	}
	for _, p := range dms {
		if err := g.write(p); err != nil {
			return err
		}
	}
	for _, p := range append(append(chans, threads...), dms...) {
		if p.ch.ID != "" {
			g.m.Channels = append(g.m.Channels, p.ch)
		}
	}
	return nil
}

// fileName is DiscordChatExporter's default name of a channel's file.
func fileName(p *plan) string {
	clean := func(s string) string {
		return strings.Map(func(r rune) rune {
			if strings.ContainsRune(`/\:*?"<>|`, r) {
				return '_'
			}
			return r
		}, s)
	}
	cat := p.ch.Category
	if cat == "" {
		cat = "Uncategorized"
	}
	return clean(fmt.Sprintf("%s - %s - %s [%s].json", p.guild.Name, cat, p.ch.Name, p.ch.ID))
}

// writer is the writing of one channel's file.
type writer struct {
	g      *gen
	p      *plan
	rng    *rand.Rand
	f      *os.File
	bw     *bufio.Writer
	gapMS  int64
	recent []string // IDs of the latest messages, for replies
	count  int
}

func (g *gen) write(p *plan) error {
	o := g.opts
	w := &writer{g: g, p: p, rng: rand.New(rand.NewPCG(o.Seed, uint64(p.index))), gapMS: 86_400_000 / int64(o.PerDay)}
	if p.ch.ParentID != "" {
		w.gapMS = max(w.gapMS/3, 2)
	}
	start := o.Start.UnixMilli()
	if p.startMS != 0 {
		start = p.startMS + 1000
	}
	if p.ch.ID == "" {
		return fmt.Errorf("discordexport: thread %s has no ID", p.ch.Name)
	}
	for i := range p.n {
		ms := start + int64(i)*w.gapMS + int64(fnv64(fmt.Sprintf("%d/%d", p.index, i))%uint64(w.gapMS))
		if err := w.message(i, ms); err != nil {
			return err
		}
	}
	if w.bw == nil {
		if err := w.open(); err != nil {
			return err
		}
	}
	return w.close()
}

func (w *writer) open() error {
	p := w.p
	p.ch.File = fileName(p)
	f, err := os.Create(filepath.Join(w.g.dir, p.ch.File))
	if err != nil {
		return err
	}
	w.f, w.bw = f, bufio.NewWriterSize(f, 1<<20)
	ch := channel{ID: p.ch.ID, Type: p.ch.Type, Name: p.ch.Name}
	if p.ch.Category != "" {
		ch.Category = &p.ch.Category
	}
	if p.ch.CategoryID != "" {
		ch.CategoryID = &p.ch.CategoryID
	}
	if p.ch.Topic != "" {
		ch.Topic = &p.ch.Topic
	}
	head, err := json.MarshalIndent(map[string]any{"guild": p.guild}, "", "  ")
	if err != nil {
		return err
	}
	chRaw, _ := json.MarshalIndent(ch, "  ", "  ")
	dr, _ := json.Marshal(dateRange{})
	fmt.Fprintf(w.bw, "%s,\n  \"channel\": %s,\n  \"dateRange\": %s,\n  \"exportedAt\": %q,\n  \"messages\": [",
		bytes.TrimSuffix(head, []byte("\n}")), chRaw, dr, w.g.opts.Start.AddDate(1, 0, 0).Format(tsLayout))
	return nil
}

func (w *writer) close() error {
	fmt.Fprintf(w.bw, "\n  ],\n  \"messageCount\": %d\n}\n", w.count)
	if err := w.bw.Flush(); err != nil {
		return err
	}
	return w.f.Close()
}

// tsLayout is how DiscordChatExporter writes times.
const tsLayout = "2006-01-02T15:04:05.000-07:00"

func stamp(ms int64) string { return time.UnixMilli(ms).UTC().Format(tsLayout) }

func (w *writer) pick(list []*author) *author { return list[w.rng.IntN(len(list))] }

// message writes the i-th message of the channel, at ms.
func (w *writer) message(i int, ms int64) error {
	g, p, m := w.g, w.p, w.g.m
	msg := message{ID: Snowflake(ms, p.index, 0), Type: "Default", Timestamp: stamp(ms), Attachments: []attachment{},
		Embeds: []embed{}, Stickers: []sticker{}, Reactions: []reaction{}, Mentions: []author{}}
	if i == 0 && p.ch.ParentID != "" && !p.ch.StarterIsNotice {
		// A thread's first message is the stub pointing at its start.
		parent := p.ch.ParentID
		msg.Type = "21" // ThreadStarterMessage, which the exporter writes as a number
		msg.Reference = &reference{MessageID: &p.ch.StarterID, ChannelID: parent, GuildID: &g.opts.GuildID}
	}
	if w.bw == nil {
		if err := w.open(); err != nil {
			return err
		}
	}
	dm := p.ch.Type == "DirectTextChat"
	a := w.pick(g.people)
	if dm {
		// Between the first person and the one the channel is named after.
		a = g.people[0]
		if w.rng.IntN(2) == 0 {
			for _, u := range g.people {
				if u.Name == p.ch.Name {
					a = u
				}
			}
		}
	}
	rec := Record{Channel: p.ch.ID, ID: msg.ID, Timestamp: ms}
	if p.ch.ParentID != "" {
		rec.ThreadParent = p.ch.ParentID
	}
	r := w.rng.IntN(1000)
	th := p.threads[i]
	switch {
	case msg.Type == "21":
		a = w.pick(g.people)
	case th != nil && th.ch.StarterIsNotice:
		// A thread started at no message: Discord posts a notice.
		msg.Type = "ThreadCreated"
		msg.Content = th.ch.Name
		msg.ID = Snowflake(ms, p.index, 1)
		rec.ID = msg.ID
		th.ch.ID, th.ch.StarterID, th.startMS = Snowflake(ms, p.index, 0), msg.ID, ms
		msg.Reference = &reference{ChannelID: th.ch.ID, GuildID: &g.opts.GuildID}
	case th != nil:
		msg.Content = w.text(&msg, &rec, a)
		th.ch.ID, th.ch.StarterID, th.startMS = msg.ID, msg.ID, ms
	case !dm && r < 10:
		msg.Type = "GuildMemberJoin"
		m.Joins++
	case !dm && r < 13:
		msg.Type = "ChannelNameChange"
		msg.Content = p.ch.Name
		m.Renames++
	case r < 15:
		msg.Type = "Call"
		end := stamp(ms + 90_000)
		msg.CallEndedTimestamp = &end
		m.Unknown++
	case !dm && r < 60:
		a = w.pick(g.bots)
		msg.Content = w.text(&msg, &rec, a)
		w.embed(&msg, &rec)
		m.BotMessages++
	default:
		msg.Content = w.text(&msg, &rec, a)
		if len(w.recent) > 0 && w.rng.IntN(100) < 8 {
			target := w.recent[w.rng.IntN(len(w.recent))]
			msg.Type = "Reply"
			msg.Reference = &reference{MessageID: &target, ChannelID: p.ch.ID, GuildID: &g.opts.GuildID}
			rec.ReplyTo = target
			m.Replies++
		}
		if w.rng.IntN(100) < 4 {
			w.attach(&msg, &rec)
		}
		if w.rng.IntN(100) < 1 {
			id := Snowflake(ms, p.index, 3)
			msg.Stickers = append(msg.Stickers, sticker{ID: id, Name: "wave", Format: "Png",
				SourceURL: g.opts.MediaBaseURL + "/stickers/" + id + ".png"})
			rec.Stickers = append(rec.Stickers, id)
			m.Stickers++
		}
		if w.rng.IntN(100) < 5 {
			ed := ms + int64(1+w.rng.IntN(600))*1000
			s := stamp(ed)
			msg.TimestampEdited = &s
			rec.Edited = ed
			m.Edits++
		}
		if w.rng.IntN(200) == 0 {
			msg.IsPinned = true
			rec.Pinned = true
			m.Pins++
		}
	}
	msg.Author = *a
	if !dm {
		msg.Author.Roles = []role{g.roles[1]}
		if a == g.people[0] {
			msg.Author.Roles = g.roles
		}
	}
	rec.Type, rec.Author, rec.Content = msg.Type, a.ID, msg.Content
	if msg.Type == "Default" || msg.Type == "Reply" {
		if w.rng.IntN(100) < 10 {
			w.react(&msg, &rec)
		}
		w.recent = append(w.recent, msg.ID)
		if len(w.recent) > 50 {
			w.recent = w.recent[1:]
		}
	}
	if p.ch.ParentID != "" {
		m.ThreadMessages++
	}
	m.Messages++
	p.ch.Messages++
	if p.ch.FirstID == "" {
		p.ch.FirstID = msg.ID
	}
	p.ch.LastID = msg.ID
	if g.opts.Record {
		m.Records = append(m.Records, rec)
	}
	raw, err := json.MarshalIndent(msg, "    ", "  ")
	if err != nil {
		return err
	}
	if w.count > 0 {
		w.bw.WriteByte(',')
	}
	w.bw.WriteString("\n    ")
	_, err = w.bw.Write(raw)
	w.count++
	return err
}

var words = strings.Fields("the a build deploy review merge test release branch server client room message bridge " +
	"import thread reply edit reaction file link channel guild tomorrow today later done fixed broken slow fast " +
	"coffee lunch meeting docs issue ticket patch version config cache queue worker")

// text is a message's content in Discord's markdown, and who it mentions.
func (w *writer) text(msg *message, rec *Record, a *author) string {
	n := 3 + w.rng.IntN(12)
	ws := make([]string, n)
	for i := range ws {
		ws[i] = words[w.rng.IntN(len(words))]
	}
	switch w.rng.IntN(20) {
	case 0:
		ws[0] = "**" + ws[0] + "**"
	case 1:
		ws[1] = "*" + ws[1] + "*"
	case 2:
		ws[0] = "__" + ws[0] + "__"
	case 3:
		ws[2] = "~~" + ws[2] + "~~"
	case 4:
		ws[1] = "||" + ws[1] + "||"
	case 5:
		ws[0] = "`" + ws[0] + "`"
	case 6:
		ws = append(ws, "\n```go\nfunc main() { fmt.Println(\"<hi>\") }\n```")
	case 7:
		ws[0] = "> " + ws[0]
		ws[n-1] += "\nand more"
	case 8:
		ws = append(ws, "[the docs](https://example.com/docs?a=1&b=2)")
	case 9:
		ws = append(ws, "https://example.org/"+ws[0])
	case 10:
		ws = append([]string{"#"}, ws...)
	case 11, 12:
		u := w.pick(w.g.people)
		if u != a {
			// The exporter writes mentions as @name (the nickname if any).
			ws = append([]string{"@" + u.Nickname}, ws...)
			msg.Mentions = append(msg.Mentions, *u)
			rec.Mentions = append(rec.Mentions, u.ID)
			w.g.m.Mentions++
		}
	case 13:
		ws = append(ws, ":partyblob:", "🎉")
	}
	return strings.Join(ws, " ")
}

// embed gives a bot's message a rich embed.
func (w *writer) embed(msg *message, rec *Record) {
	u := "https://ci.example.com/builds/" + msg.ID
	color := "#2ECC71"
	msg.Embeds = append(msg.Embeds, embed{Title: "Build " + msg.ID[len(msg.ID)-5:] + " passed", URL: &u,
		Description: "All **" + strconv.Itoa(10+w.rng.IntN(900)) + "** tests passed", Color: &color,
		Images: []embedImage{}, Fields: []embedField{{Name: "Branch", Value: "main", IsInline: true},
			{Name: "Duration", Value: strconv.Itoa(1+w.rng.IntN(20)) + " min", IsInline: true}},
		Footer: &embedFooter{Text: "CI"}})
	rec.Embeds++
	w.g.m.Embeds++
}

var fileKinds = []struct{ ext, mime string }{{"png", "image/png"}, {"txt", "text/plain"}, {"pdf", "application/pdf"}}

// attach gives a message files; one in seven is gone from the CDN.
func (w *writer) attach(msg *message, rec *Record) {
	o := w.g.opts
	for k := range 1 + w.rng.IntN(2) {
		fk := fileKinds[w.rng.IntN(len(fileKinds))]
		id := Snowflake(SnowflakeTime(msg.ID), w.p.index, 4+k)
		name := fmt.Sprintf("file-%s.%s", id[len(id)-6:], fk.ext)
		path := "/attachments/"
		if fnv64(id)%7 == 0 {
			path = "/expired-attachments/"
			rec.MissingAttachments = append(rec.MissingAttachments, id)
			w.g.m.MissingAttachments++
		}
		body, _, _ := Media(path + w.p.ch.ID + "/" + id + "/" + name)
		a := attachment{ID: id, URL: o.MediaBaseURL + path + w.p.ch.ID + "/" + id + "/" + name, FileName: name,
			FileSizeBytes: int64(len(body))}
		msg.Attachments = append(msg.Attachments, a)
		rec.Attachments = append(rec.Attachments, id)
		w.g.m.Attachments++
	}
}

var unicodeEmoji = []struct{ name, code, hex string }{{"👍", "thumbsup", "1f44d"}, {"❤️", "heart", "2764"},
	{"😂", "joy", "1f602"}, {"🎉", "tada", "1f389"}, {"👀", "eyes", "1f440"}}

// react adds reactions; some counts name fewer users than they count (the
// exporter lists at most so many).
func (w *writer) react(msg *message, rec *Record) {
	o := w.g.opts
	for k := range 1 + w.rng.IntN(2) {
		var e emoji
		if w.rng.IntN(4) == 0 {
			id := Snowflake(o.Start.UnixMilli()-86_400_000, 5, k)
			e = emoji{ID: id, Name: "partyblob", Code: "partyblob", ImageURL: o.MediaBaseURL + "/emojis/" + id + ".png"}
			w.g.m.CustomReactions++
		} else {
			u := unicodeEmoji[w.rng.IntN(len(unicodeEmoji))]
			e = emoji{Name: u.name, Code: u.code, ImageURL: "https://cdn.jsdelivr.net/gh/twitter/twemoji@latest/assets/svg/" + u.hex + ".svg"}
		}
		if k == 1 && e.Name == msg.Reactions[0].Emoji.Name {
			continue
		}
		re := reaction{Emoji: e}
		rr := Reaction{Name: e.Name, EmojiID: e.ID}
		seen := map[string]bool{}
		for range 1 + w.rng.IntN(3) {
			u := w.pick(w.g.people)
			if seen[u.ID] {
				continue
			}
			seen[u.ID] = true
			re.Users = append(re.Users, *u)
			rr.Users = append(rr.Users, u.ID)
		}
		re.Count = len(re.Users)
		if w.rng.IntN(10) == 0 {
			re.Count += 2
			w.g.m.ReactionsNotNamed += 2
		}
		rr.Count = re.Count
		msg.Reactions = append(msg.Reactions, re)
		rec.Reactions = append(rec.Reactions, rr)
		w.g.m.Reactions++
		w.g.m.ReactionUsers += len(re.Users)
	}
}

// Media is what the CDN (MediaBaseURL) serves at path: a PNG for .png
// paths, deterministic text otherwise; ok false for what is gone
// (expired attachments) and for paths it never served.
func Media(path string) (body []byte, contentType string, ok bool) {
	switch {
	case strings.HasPrefix(path, "/expired-attachments/"):
		// The exporter wrote the size it had; the CDN no longer has it.
		return bytes.Repeat([]byte("x"), 64), "text/plain", false
	case strings.HasPrefix(path, "/attachments/"), strings.HasPrefix(path, "/avatars/"),
		strings.HasPrefix(path, "/emojis/"), strings.HasPrefix(path, "/stickers/"), strings.HasPrefix(path, "/icons/"):
	default:
		return nil, "", false
	}
	v := fnv64(path)
	switch {
	case strings.HasSuffix(path, ".png"):
		img := image.NewRGBA(image.Rect(0, 0, 16, 16))
		for y := range 16 {
			for x := range 16 {
				img.Set(x, y, color.RGBA{uint8(v), uint8(v>>8) ^ uint8(x*16), uint8(v>>16) ^ uint8(y*16), 255})
			}
		}
		var buf bytes.Buffer
		_ = png.Encode(&buf, img)
		return buf.Bytes(), "image/png", true
	case strings.HasSuffix(path, ".pdf"):
		return []byte(fmt.Sprintf("%%PDF-1.4\n%% %x\n%%%%EOF\n", v)), "application/pdf", true
	}
	return []byte(fmt.Sprintf("file %s, %x\n", path, v)), "text/plain; charset=utf-8", true
}

func fnv64(s string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(s))
	return h.Sum64()
}
