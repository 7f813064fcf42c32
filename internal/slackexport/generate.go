package slackexport

import (
	"archive/zip"
	"bufio"
	"bytes"
	"compress/flate"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"image"
	"image/color"
	"image/png"
	"io"
	"math/rand/v2"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Options shape a workspace. Zero values take the defaults noted.
type Options struct {
	Seed   uint64
	TeamID string // "T0GEN0001"
	// Users are people (20), Bots bot users that post as bots (2).
	Users, Bots int
	// Channels are public channels (4), Private private ones (2), DMs
	// direct conversations (3) and MPIMs group DMs (1).
	Channels, Private, DMs, MPIMs int
	// Messages is how many messages the conversations hold in all (1000),
	// thread replies and subtypes included.
	Messages int
	// Start is the day of the first message (2023-01-02 UTC); PerDay the
	// messages of one conversation per day (200).
	Start  time.Time
	PerDay int
	// FileBaseURL is where url_private points (Slack's file host); files
	// are FileBaseURL + ID + "/" + name. AvatarBaseURL, when set, is where
	// users' profile images point (none otherwise).
	FileBaseURL, AvatarBaseURL string
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
	def(&o.Channels, 4)
	def(&o.Private, 2)
	def(&o.DMs, 3)
	def(&o.MPIMs, 1)
	def(&o.Messages, 1000)
	def(&o.PerDay, 200)
	if o.TeamID == "" {
		o.TeamID = "T0GEN0001"
	}
	if o.Start.IsZero() {
		o.Start = time.Date(2023, 1, 2, 0, 0, 0, 0, time.UTC)
	}
	if o.FileBaseURL == "" {
		o.FileBaseURL = "https://files.slack.com/files-pri/" + o.TeamID + "-"
	}
}

// Manifest says what an export holds.
type Manifest struct {
	TeamID        string
	Users         []User
	Conversations []*Conversation
	// Counts over every conversation.
	Messages, Threads, Replies, Broadcasts, Edits, Reactions, Files, MissingFiles, BotMessages int
	Joins, Leaves, Topics, Purposes, Pins                                                      int
	// Unknown counts the messages of subtypes an importer will not know.
	Unknown map[string]int
	// Records are the messages, conversation by conversation (Options.Record).
	Records []Record
	// FileList are the files shared (not the deleted ones).
	FileList []File
}

// User is a person or bot of users.json.
type User struct {
	ID, Name, DisplayName, RealName, Email string
	IsBot, Deleted                         bool
	BotID                                  string
	AvatarURL                              string
}

// Conversation is a channel, private channel, DM or group DM.
type Conversation struct {
	ID, Name, Kind, Folder string // Kind: channel, private, dm, mpim
	Members                []string
	Created                int64
	// Messages are the messages of its day files; Topic and Purpose its
	// current ones; Pins the ts of its pinned messages.
	Messages        int
	Topic, Purpose  string
	Pins            []string
	Archived        bool
	FirstTS, LastTS string
}

// Record is one message as written.
type Record struct {
	Conv, TS, User, BotID, Subtype, ThreadTS, Text string
	Edited                                         bool
	// Reactions are emoji names and who reacted.
	Reactions []Reaction
	Files     []string
	Pinned    bool
}

// Reaction is one emoji's reactions to a message.
type Reaction struct {
	Name  string
	Users []string
	Count int
}

// File is a shared file; Content gives its bytes.
type File struct {
	ID, Name, Mimetype, URL string
	Size                    int64
}

// WriteFile writes the export of opts to path.
func WriteFile(path string, opts Options) (*Manifest, error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	bw := bufio.NewWriterSize(f, 1<<20)
	m, err := Write(bw, opts)
	if err == nil {
		err = bw.Flush()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, err
	}
	return m, nil
}

// Write writes the export of opts as a zip to w.
func Write(w io.Writer, opts Options) (*Manifest, error) {
	opts.defaults()
	g := &gen{opts: opts, zw: zip.NewWriter(w), m: &Manifest{TeamID: opts.TeamID, Unknown: map[string]int{},
		Messages: opts.Messages}, rng: rand.New(rand.NewPCG(opts.Seed, 0x51ac4))}
	// Big exports are for benchmarks: write them quickly.
	g.zw.RegisterCompressor(zip.Deflate, func(out io.Writer) (io.WriteCloser, error) {
		return flate.NewWriter(out, flate.BestSpeed)
	})
	if err := g.run(); err != nil {
		return nil, err
	}
	if err := g.zw.Close(); err != nil {
		return nil, err
	}
	return g.m, nil
}

type gen struct {
	opts  Options
	zw    *zip.Writer
	m     *Manifest
	rng   *rand.Rand
	users []user
	// people are the IDs of users who write (not deleted, not bots).
	people  []string
	bots    []user
	convs   []*Conversation
	byID    map[string]*user
	fileSeq int
}

var firstNames = []string{"Ada", "Brian", "Chioma", "Dmitri", "Elena", "Farid", "Grace", "Hiro", "Ines", "Jonas",
	"Kavya", "Liam", "Mei", "Nora", "Omar", "Priya", "Quentin", "Rosa", "Sven", "Tomoko", "Uma", "Viktor", "Wen",
	"Xavier", "Yara", "Zoltan"}
var lastNames = []string{"Lovelace", "Kernighan", "Okafor", "Volkov", "Garcia", "Haddad", "Hopper", "Tanaka",
	"Moreau", "Berg", "Iyer", "Walsh", "Chen", "Lindqvist", "Nasser", "Patel"}

func (g *gen) run() error {
	o := g.opts
	g.byID = map[string]*user{}
	created := o.Start.Add(-24 * time.Hour).Unix()
	for i := range o.Users {
		first, last := firstNames[i%len(firstNames)], lastNames[(i/len(firstNames)+i)%len(lastNames)]
		handle := strings.ToLower(first) + "." + strings.ToLower(last)
		if i >= len(firstNames) {
			handle += strconv.Itoa(i)
		}
		u := user{ID: fmt.Sprintf("U%08X", 0x100000+i), TeamID: o.TeamID, Name: handle, RealName: first + " " + last,
			TZ: "Europe/Berlin", Color: "9f69e7", Updated: created, IsAdmin: i == 0, IsOwner: i == 0,
			Deleted: i > 0 && i%17 == 0}
		u.Profile = profile{Title: "Engineer", RealName: u.RealName, RealNameNormalized: u.RealName,
			DisplayName: first, DisplayNameNormalized: first, Email: handle + "@example.com", FirstName: first,
			LastName: last, Team: o.TeamID, AvatarHash: fmt.Sprintf("%012x", g.rng.Uint64()>>16)}
		if i%5 == 4 {
			u.Profile.DisplayName, u.Profile.DisplayNameNormalized = "", "" // only a real name
		}
		g.users = append(g.users, u)
	}
	for i := range o.Bots {
		name := []string{"deploybot", "standup", "pagerbot", "github"}[i%4]
		u := user{ID: fmt.Sprintf("U%08X", 0x900000+i), TeamID: o.TeamID, Name: name, RealName: name, IsBot: true,
			Updated: created, Profile: profile{RealName: name, RealNameNormalized: name, Team: o.TeamID,
				BotID: fmt.Sprintf("B%08X", 0x900000+i), AvatarHash: fmt.Sprintf("%012x", g.rng.Uint64()>>16)}}
		g.users = append(g.users, u)
	}
	for i := range g.users {
		u := &g.users[i]
		if o.AvatarBaseURL != "" {
			u.Profile.Image72 = o.AvatarBaseURL + u.ID + "-72.png"
			u.Profile.Image512 = o.AvatarBaseURL + u.ID + "-512.png"
		}
		g.byID[u.ID] = u
		mu := User{ID: u.ID, Name: u.Name, DisplayName: u.Profile.DisplayName, RealName: u.RealName,
			Email: u.Profile.Email, IsBot: u.IsBot, Deleted: u.Deleted, BotID: u.Profile.BotID, AvatarURL: u.Profile.Image512}
		g.m.Users = append(g.m.Users, mu)
		switch {
		case u.IsBot:
			g.bots = append(g.bots, *u)
		case !u.Deleted:
			g.people = append(g.people, u.ID)
		}
	}
	if len(g.people) < 2 {
		return fmt.Errorf("slackexport: need at least two people, got %d", len(g.people))
	}
	if err := g.writeJSON("users.json", g.users); err != nil {
		return err
	}
	g.planConversations(created)
	return g.writeConversations()
}

// planConversations chooses the conversations, their members and their
// share of the messages.
func (g *gen) planConversations(created int64) {
	o := g.opts
	names := []string{"general", "random", "engineering", "design", "support", "releases", "ops", "sales",
		"marketing", "hiring", "books", "music"}
	add := func(c *Conversation) { g.convs = append(g.convs, c) }
	for i := range o.Channels {
		name := names[i%len(names)]
		if i >= len(names) {
			name += "-" + strconv.Itoa(i)
		}
		members := g.people
		if i > 0 {
			members = g.subset(3 + g.rng.IntN(len(g.people)-2))
		}
		add(&Conversation{ID: fmt.Sprintf("C%08X", 0x200000+i), Name: name, Kind: "channel", Folder: name,
			Members: members, Created: created, Archived: i > 0 && i == o.Channels-1 && o.Channels > 3})
	}
	for i := range o.Private {
		name := "private-" + names[(i+3)%len(names)]
		if i >= len(names) {
			name += "-" + strconv.Itoa(i)
		}
		add(&Conversation{ID: fmt.Sprintf("G%08X", 0x300000+i), Name: name, Kind: "private", Folder: name,
			Members: g.subset(2 + g.rng.IntN(min(6, len(g.people)-1))), Created: created})
	}
	for i := range o.DMs {
		a := g.people[i%len(g.people)]
		b := g.people[(i+1+i/len(g.people))%len(g.people)]
		if a == b {
			b = g.people[(i+2)%len(g.people)]
		}
		id := fmt.Sprintf("D%08X", 0x400000+i)
		add(&Conversation{ID: id, Kind: "dm", Folder: id, Members: []string{a, b}, Created: created})
	}
	for i := range o.MPIMs {
		members := g.subset(min(3+i%2, len(g.people)))
		handles := make([]string, len(members))
		for j, u := range members {
			handles[j] = g.byID[u].Name
		}
		name := "mpdm-" + strings.Join(handles, "--") + "-1"
		add(&Conversation{ID: fmt.Sprintf("G%08X", 0x500000+i), Name: name, Kind: "mpim", Folder: name,
			Members: members, Created: created})
	}
	// Shares of the messages: the first channel is the busy one.
	weights := make([]float64, len(g.convs))
	total := 0.0
	for i, c := range g.convs {
		w := 1 + g.rng.Float64()*3
		switch {
		case i == 0:
			w = float64(len(g.convs)) * 1.5
		case c.Kind == "dm" || c.Kind == "mpim":
			w /= 3
		}
		weights[i], total = w, total+w
	}
	left := o.Messages
	for i, c := range g.convs {
		n := int(float64(o.Messages) * weights[i] / total)
		if i == len(g.convs)-1 {
			n = left
		}
		n = min(n, left)
		c.Messages, left = n, left-n
	}
}

// subset picks n distinct people, in users.json order.
func (g *gen) subset(n int) []string {
	n = min(n, len(g.people))
	idx := g.rng.Perm(len(g.people))[:n]
	sort.Ints(idx)
	out := make([]string, n)
	for i, j := range idx {
		out[i] = g.people[j]
	}
	return out
}

func (g *gen) writeJSON(name string, v any) error {
	w, err := g.zw.CreateHeader(&zip.FileHeader{Name: name, Method: zip.Deflate, Modified: g.opts.Start})
	if err != nil {
		return err
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "    ")
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

// writeConversations writes every conversation's day files, then the
// conversation lists (which name the pins and topics the history set).
func (g *gen) writeConversations() error {
	for ci, c := range g.convs {
		if err := g.writeHistory(ci, c); err != nil {
			return err
		}
	}
	var channels, groups, mpims []channel
	var dms []dm
	for _, c := range g.convs {
		if c.Kind == "dm" {
			dms = append(dms, dm{ID: c.ID, Created: c.Created, Members: c.Members})
			continue
		}
		ch := channel{ID: c.ID, Name: c.Name, Created: c.Created, Creator: c.Members[0], IsArchived: c.Archived,
			IsGeneral: c.Name == "general", Members: c.Members, Topic: topic{Value: c.Topic, Creator: c.Members[0]},
			Purpose: topic{Value: c.Purpose, Creator: c.Members[0]}}
		for _, ts := range c.Pins {
			ch.Pins = append(ch.Pins, pin{ID: ts, Type: "C", Created: c.Created, User: c.Members[0], Owner: c.Members[0]})
		}
		switch c.Kind {
		case "channel":
			channels = append(channels, ch)
		case "private":
			groups = append(groups, ch)
		case "mpim":
			mpims = append(mpims, ch)
		}
		g.m.Conversations = append(g.m.Conversations, c)
	}
	for _, c := range g.convs {
		if c.Kind == "dm" {
			g.m.Conversations = append(g.m.Conversations, c)
		}
	}
	for _, f := range []struct {
		name string
		v    any
	}{{"channels.json", nonNil(channels)}, {"groups.json", nonNil(groups)}, {"mpims.json", nonNil(mpims)}, {"dms.json", nonNil(dms)}} {
		if err := g.writeJSON(f.name, f.v); err != nil {
			return err
		}
	}
	return nil
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// pending is a message planned ahead: a thread reply or a pin notice.
type pending struct {
	kind     string // "reply", "pin"
	rootTS   string
	rootUser string
	user     string
	target   string
}

// history writes one conversation's messages, day by day.
type history struct {
	g        *gen
	c        *Conversation
	rng      *rand.Rand
	startUS  int64
	gapUS    int64
	joined   map[string]bool
	outside  []string // members who join later
	plan     map[int]*pending
	day      string
	dayMsgs  []message
	textSeed int
}

func (g *gen) writeHistory(ci int, c *Conversation) error {
	if c.Messages == 0 {
		return nil
	}
	h := &history{g: g, c: c, rng: rand.New(rand.NewPCG(g.opts.Seed, uint64(ci)+1)),
		startUS: g.opts.Start.UnixMicro(), gapUS: 86_400_000_000 / int64(g.opts.PerDay), joined: map[string]bool{},
		plan: map[int]*pending{}}
	// Most members are there from the start; the rest join on the way.
	for i, u := range c.Members {
		if c.Kind == "dm" || c.Kind == "mpim" || i < max(2, len(c.Members)*2/3) {
			h.joined[u] = true
		} else {
			h.outside = append(h.outside, u)
		}
	}
	for i := range c.Messages {
		msg := h.message(i)
		if err := h.add(msg); err != nil {
			return err
		}
	}
	return h.flush()
}

// ts is the timestamp of the i-th message: strictly increasing, PerDay a day.
func (h *history) ts(i int) string {
	hash := fnv.New64a()
	fmt.Fprintf(hash, "%s/%d", h.c.ID, i)
	us := h.startUS + int64(i)*h.gapUS + int64(hash.Sum64()%uint64(h.gapUS))
	return fmt.Sprintf("%d.%06d", us/1_000_000, us%1_000_000)
}

func (h *history) add(msg message) error {
	sec, _ := strconv.ParseInt(msg.TS[:strings.IndexByte(msg.TS, '.')], 10, 64)
	day := time.Unix(sec, 0).UTC().Format("2006-01-02")
	if day != h.day {
		if err := h.flush(); err != nil {
			return err
		}
		h.day = day
	}
	h.dayMsgs = append(h.dayMsgs, msg)
	if h.c.FirstTS == "" {
		h.c.FirstTS = msg.TS
	}
	h.c.LastTS = msg.TS
	return nil
}

func (h *history) flush() error {
	if len(h.dayMsgs) == 0 {
		return nil
	}
	err := h.g.writeJSON(h.c.Folder+"/"+h.day+".json", h.dayMsgs)
	h.dayMsgs = h.dayMsgs[:0]
	return err
}

func (h *history) pick(list []string) string { return list[h.rng.IntN(len(list))] }

func (h *history) joinedList() []string {
	out := make([]string, 0, len(h.joined))
	for _, u := range h.c.Members {
		if h.joined[u] {
			out = append(out, u)
		}
	}
	return out
}

// message makes the i-th message of the conversation.
func (h *history) message(i int) message {
	g, m, c := h.g, h.g.m, h.c
	ts := h.ts(i)
	rec := Record{Conv: c.ID, TS: ts}
	defer func() {
		if g.opts.Record {
			m.Records = append(m.Records, rec)
		}
	}()
	if p := h.plan[i]; p != nil {
		delete(h.plan, i)
		switch p.kind {
		case "reply":
			msg := h.text(ts, p.user)
			msg.ThreadTS, msg.ParentUserID = p.rootTS, p.rootUser
			m.Replies++
			if h.rng.IntN(20) == 0 {
				msg.Subtype = "thread_broadcast"
				m.Broadcasts++
			}
			h.decorate(&msg, &rec)
			rec.User, rec.Subtype, rec.ThreadTS, rec.Text = msg.User, msg.Subtype, msg.ThreadTS, msg.Text
			return msg
		case "pin":
			msg := message{Type: "message", Subtype: "pinned_item", TS: ts, User: p.user, ItemType: "C",
				Text:        "<@" + p.user + "> pinned a message to this channel.",
				Attachments: []attachment{{Fallback: "pinned message", Text: "pinned message", ID: 1}}}
			m.Pins++
			rec.User, rec.Subtype, rec.Text = msg.User, msg.Subtype, msg.Text
			return msg
		}
	}
	channelish := c.Kind == "channel" || c.Kind == "private"
	r := h.rng.Float64()
	switch {
	case channelish && r < 0.012 && len(h.outside) > 0:
		u := h.outside[0]
		h.outside = h.outside[1:]
		h.joined[u] = true
		m.Joins++
		msg := message{Type: "message", Subtype: "channel_join", TS: ts, User: u, Text: "<@" + u + "> has joined the channel"}
		if c.Kind == "private" {
			msg.Inviter = c.Members[0]
		}
		rec.User, rec.Subtype, rec.Text = u, msg.Subtype, msg.Text
		return msg
	case channelish && r < 0.016 && len(h.joinedList()) > 2:
		list := h.joinedList()
		u := list[len(list)-1]
		if u == c.Members[0] {
			break
		}
		delete(h.joined, u)
		h.outside = append(h.outside, u)
		m.Leaves++
		rec.User, rec.Subtype = u, "channel_leave"
		rec.Text = "<@" + u + "> has left the channel"
		return message{Type: "message", Subtype: "channel_leave", TS: ts, User: u, Text: rec.Text}
	case channelish && r < 0.020:
		u := h.pick(h.joinedList())
		t := "Topic " + strconv.Itoa(i) + ": " + h.words(4)
		c.Topic = t
		m.Topics++
		rec.User, rec.Subtype = u, "channel_topic"
		rec.Text = "<@" + u + "> set the channel topic: " + t
		return message{Type: "message", Subtype: "channel_topic", TS: ts, User: u, Topic: t, Text: rec.Text}
	case channelish && r < 0.022:
		u := h.pick(h.joinedList())
		p := "Purpose: " + h.words(6)
		c.Purpose = p
		m.Purposes++
		rec.User, rec.Subtype = u, "channel_purpose"
		rec.Text = "<@" + u + "> set the channel purpose: " + p
		return message{Type: "message", Subtype: "channel_purpose", TS: ts, User: u, Purpose: p, Text: rec.Text}
	case len(g.bots) > 0 && r < 0.04:
		b := g.bots[h.rng.IntN(len(g.bots))]
		m.BotMessages++
		text := "Deployed build " + strconv.Itoa(i) + " to *production*"
		msg := message{Type: "message", Subtype: "bot_message", TS: ts, BotID: b.Profile.BotID, Username: b.Name,
			Text: text, BotProfile: &botProfile{ID: b.Profile.BotID, AppID: "A" + b.Profile.BotID[1:], Name: b.Name, TeamID: g.opts.TeamID},
			Attachments: []attachment{{Fallback: "build " + strconv.Itoa(i), Color: "36a64f", Title: "Build " + strconv.Itoa(i),
				TitleLink: "https://ci.example.com/builds/" + strconv.Itoa(i), Text: "All *" + strconv.Itoa(10+i%90) + "* tests passed", ID: 1}}}
		rec.BotID, rec.Subtype, rec.Text = b.Profile.BotID, msg.Subtype, text
		return msg
	case r < 0.045:
		u := h.pick(h.joinedList())
		sub := []string{"huddle_thread", "reminder_add", "sh_room_created", "slackbot_response"}[h.rng.IntN(4)]
		m.Unknown[sub]++
		rec.User, rec.Subtype = u, sub
		rec.Text = "something only Slack shows (" + sub + ")"
		return message{Type: "message", Subtype: sub, TS: ts, User: u, Text: rec.Text, Extra: map[string]any{"id": "R" + strconv.Itoa(i)}}
	}
	u := h.pick(h.joinedList())
	msg := h.text(ts, u)
	if r < 0.075 {
		msg.Subtype = "file_share"
		msg.Upload = true
		n := 1 + h.rng.IntN(2)
		for range n {
			f := h.file(u, ts)
			msg.Files = append(msg.Files, f)
			rec.Files = append(rec.Files, f.ID)
		}
	}
	h.decorate(&msg, &rec)
	// A thread root: its replies are planned among the next messages.
	if r >= 0.075 && h.rng.IntN(12) == 0 && i+2 < c.Messages {
		n := 1 + h.rng.IntN(6)
		users := map[string]bool{}
		for k := 0; k < n; k++ {
			j := i + 1 + h.rng.IntN(min(40, c.Messages-i-1))
			if h.plan[j] != nil {
				continue
			}
			ru := h.pick(h.joinedList())
			h.plan[j] = &pending{kind: "reply", rootTS: ts, rootUser: u, user: ru}
			msg.Replies = append(msg.Replies, reply{User: ru, TS: h.ts(j)})
			users[ru] = true
		}
		if len(msg.Replies) > 0 {
			sort.Slice(msg.Replies, func(a, b int) bool { return msg.Replies[a].TS < msg.Replies[b].TS })
			msg.ThreadTS = ts
			msg.ReplyCount = len(msg.Replies)
			msg.LatestReply = msg.Replies[len(msg.Replies)-1].TS
			for ru := range users {
				msg.ReplyUsers = append(msg.ReplyUsers, ru)
			}
			sort.Strings(msg.ReplyUsers)
			msg.ReplyUsersCount = len(msg.ReplyUsers)
			m.Threads++
		}
	}
	// A pinned message: its pin notice comes a little later.
	if channelish && h.rng.IntN(150) == 0 && i+1 < c.Messages {
		j := i + 1 + h.rng.IntN(min(10, c.Messages-i-1))
		if h.plan[j] == nil {
			h.plan[j] = &pending{kind: "pin", user: h.pick(h.joinedList()), target: ts}
			msg.PinnedTo = []string{c.ID}
			c.Pins = append(c.Pins, ts)
			rec.Pinned = true
		}
	}
	rec.User, rec.Subtype, rec.Text = msg.User, msg.Subtype, msg.Text
	return msg
}

// decorate adds edits and reactions.
func (h *history) decorate(msg *message, rec *Record) {
	m := h.g.m
	if h.rng.IntN(20) == 0 {
		sec, _ := strconv.ParseInt(msg.TS[:strings.IndexByte(msg.TS, '.')], 10, 64)
		msg.Edited = &edited{User: msg.User, TS: fmt.Sprintf("%d.000000", sec+30+int64(h.rng.IntN(3000)))}
		m.Edits++
		rec.Edited = true
	}
	if h.rng.IntN(8) == 0 {
		names := []string{"+1", "heart", "tada", "eyes", "joy", "white_check_mark", "rocket", "pray",
			"thumbsup::skin-tone-3", "partyparrot", "fire", "100"}
		n := 1 + h.rng.IntN(3)
		used := map[string]bool{}
		for range n {
			name := names[h.rng.IntN(len(names))]
			if used[name] {
				continue
			}
			used[name] = true
			users := h.g.subsetOf(h.rng, h.joinedList(), 1+h.rng.IntN(3))
			count := len(users)
			if h.rng.IntN(10) == 0 {
				count += 2 // Slack lists only some of the reactors
			}
			msg.Reactions = append(msg.Reactions, reaction{Name: name, Users: users, Count: count})
			rec.Reactions = append(rec.Reactions, Reaction{Name: name, Users: users, Count: count})
			m.Reactions += len(users)
		}
	}
}

func (g *gen) subsetOf(rng *rand.Rand, list []string, n int) []string {
	n = min(n, len(list))
	idx := rng.Perm(len(list))[:n]
	sort.Ints(idx)
	out := make([]string, n)
	for i, j := range idx {
		out[i] = list[j]
	}
	return out
}

var words = strings.Fields(`the deploy build review meeting roadmap customer ticket latency graph cache query
index release branch merge test flaky fix design draft doc spec feature flag rollout metric alert pager
coffee lunch friday weekend idea plan budget invoice launch demo bug crash patch server client backend
frontend mobile sync thread reaction emoji channel workspace migration import export archive`)

func (h *history) words(n int) string {
	out := make([]string, n)
	for i := range out {
		out[i] = words[h.rng.IntN(len(words))]
	}
	return strings.Join(out, " ")
}

// text makes a message by u with mrkdwn text and the rich_text block that
// says the same.
func (h *history) text(ts, u string) message {
	g := h.g
	var text strings.Builder
	var elems []blockElement
	plain := func(s string, style *textStyle) {
		text.WriteString(escape(s))
		e := blockElement{Type: "text", Text: s}
		if style != nil {
			e.Style = style
		}
		elems = append(elems, e)
	}
	plain(strings.ToUpper(h.words(1)[:1])+h.words(1)[1:]+" ", nil)
	n := 1 + h.rng.IntN(4)
	var quote, code string
	for k := range n {
		if k > 0 {
			plain(" ", nil)
		}
		switch h.rng.IntN(14) {
		case 0:
			w := h.words(2)
			text.WriteString("*" + w + "*")
			elems = append(elems, blockElement{Type: "text", Text: w, Style: &textStyle{Bold: true}})
		case 1:
			w := h.words(1)
			text.WriteString("_" + w + "_")
			elems = append(elems, blockElement{Type: "text", Text: w, Style: &textStyle{Italic: true}})
		case 2:
			w := h.words(1)
			text.WriteString("~" + w + "~")
			elems = append(elems, blockElement{Type: "text", Text: w, Style: &textStyle{Strike: true}})
		case 3:
			w := "go test ./" + h.words(1)
			text.WriteString("`" + w + "`")
			elems = append(elems, blockElement{Type: "text", Text: w, Style: &textStyle{Code: true}})
		case 4:
			other := h.pick(h.c.Members)
			text.WriteString("<@" + other + ">")
			elems = append(elems, blockElement{Type: "user", UserID: other})
		case 5:
			if len(g.convs) > 0 && g.convs[0].Kind == "channel" {
				ch := g.convs[h.rng.IntN(min(len(g.convs), g.opts.Channels))]
				text.WriteString("<#" + ch.ID + "|" + ch.Name + ">")
				elems = append(elems, blockElement{Type: "channel", Channel: ch.ID})
			}
		case 6:
			url := "https://example.com/" + h.words(1) + "/" + strconv.Itoa(h.rng.IntN(1000))
			label := h.words(2)
			text.WriteString("<" + url + "|" + label + ">")
			elems = append(elems, blockElement{Type: "link", URL: url, Text: label})
		case 7:
			url := "https://docs.example.org/" + h.words(1)
			text.WriteString("<" + url + ">")
			elems = append(elems, blockElement{Type: "link", URL: url})
		case 8:
			name := []string{"smile", "rocket", "+1", "partyparrot", "white_check_mark"}[h.rng.IntN(5)]
			text.WriteString(":" + name + ":")
			elems = append(elems, blockElement{Type: "emoji", Name: name})
		case 9:
			plain("a < b && c > d", nil)
		case 10:
			if h.rng.IntN(4) == 0 {
				text.WriteString("<!here>")
				elems = append(elems, blockElement{Type: "broadcast", Range: "here"})
			} else {
				plain(h.words(3), nil)
			}
		case 11:
			quote = h.words(5)
		case 12:
			code = "func main() {\n\tfmt.Println(\"" + h.words(1) + " <ok>\")\n}"
		default:
			plain(h.words(2+h.rng.IntN(6)), nil)
		}
	}
	blocks := []block{{Type: "rich_text", BlockID: fmt.Sprintf("b%d", h.textSeed), Elements: []blockElement{
		{Type: "rich_text_section", Elements: elems}}}}
	h.textSeed++
	if quote != "" {
		text.WriteString("\n&gt; " + escape(quote))
		blocks[0].Elements = append(blocks[0].Elements, blockElement{Type: "rich_text_quote",
			Elements: []blockElement{{Type: "text", Text: quote}}})
	}
	if code != "" {
		text.WriteString("\n```" + escape(code) + "```")
		blocks[0].Elements = append(blocks[0].Elements, blockElement{Type: "rich_text_preformatted",
			Elements: []blockElement{{Type: "text", Text: code}}})
	}
	usr := g.byID[u]
	msg := message{Type: "message", TS: ts, User: u, Text: text.String(), Team: g.opts.TeamID, UserTeam: g.opts.TeamID,
		Blocks: blocks, ClientMsgID: fmt.Sprintf("%08x-0000-4000-8000-%012x", h.rng.Uint32(), h.rng.Uint64()>>16)}
	if usr != nil {
		msg.UserProfile = &userProfile{AvatarHash: usr.Profile.AvatarHash, Image72: usr.Profile.Image72,
			FirstName: usr.Profile.FirstName, RealName: usr.RealName, DisplayName: usr.Profile.DisplayName,
			Team: g.opts.TeamID, Name: usr.Name}
	}
	return msg
}

// escape is how Slack stores text: &, < and > as entities.
func escape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}

var fileKinds = []struct{ ext, mime, filetype string }{
	{"png", "image/png", "png"}, {"pdf", "application/pdf", "pdf"}, {"txt", "text/plain", "text"},
	{"mp4", "video/mp4", "mp4"}, {"mp3", "audio/mpeg", "mp3"}, {"zip", "application/zip", "zip"},
}

func (h *history) file(u, ts string) file {
	g := h.g
	g.fileSeq++
	k := fileKinds[h.rng.IntN(len(fileKinds))]
	id := fmt.Sprintf("F%08X", 0x600000+g.fileSeq)
	name := h.words(1) + "-" + strconv.Itoa(g.fileSeq) + "." + k.ext
	sec, _ := strconv.ParseInt(ts[:strings.IndexByte(ts, '.')], 10, 64)
	f := file{ID: id, Created: sec, Timestamp: sec, Name: name, Title: name, Mimetype: k.mime, Filetype: k.filetype,
		User: u, Mode: "hosted", Size: int64(200 + h.rng.IntN(3000))}
	if k.ext == "png" {
		f.Size = int64(len(FileContent(File{ID: id, Mimetype: k.mime})))
		f.OriginalW, f.OriginalH = 16, 16
	}
	if h.rng.IntN(25) == 0 {
		// Deleted since: the export keeps only a tombstone.
		g.m.MissingFiles++
		return file{ID: id, Mode: "tombstone"}
	}
	f.URLPrivate = g.opts.FileBaseURL + id + "/" + name
	f.URLPrivateDownload = g.opts.FileBaseURL + id + "/download/" + name
	f.Permalink = "https://example.slack.com/files/" + u + "/" + id + "/" + name
	g.m.Files++
	g.m.FileList = append(g.m.FileList, File{ID: id, Name: name, Mimetype: k.mime, URL: f.URLPrivate, Size: f.Size})
	return f
}

// FileContent is the content of a generated file: an image for image
// types, bytes derived from its ID otherwise (Size of them).
func FileContent(f File) []byte {
	if strings.HasPrefix(f.Mimetype, "image/") {
		img := image.NewRGBA(image.Rect(0, 0, 16, 16))
		hash := fnv.New32a()
		hash.Write([]byte(f.ID))
		v := hash.Sum32()
		for y := range 16 {
			for x := range 16 {
				img.Set(x, y, color.RGBA{uint8(v), uint8(v>>8) ^ uint8(x*16), uint8(v>>16) ^ uint8(y*16), 255})
			}
		}
		var buf bytes.Buffer
		_ = png.Encode(&buf, img)
		return buf.Bytes()
	}
	out := make([]byte, f.Size)
	rng := rand.New(rand.NewPCG(uint64(len(f.ID)), uint64(fnvString(f.ID))))
	for i := range out {
		out[i] = byte('a' + rng.IntN(26))
	}
	return out
}

func fnvString(s string) uint32 {
	h := fnv.New32a()
	h.Write([]byte(s))
	return h.Sum32()
}

// Avatar is the image served for a user's profile picture (AvatarBaseURL).
func Avatar(userID string) []byte { return FileContent(File{ID: userID, Mimetype: "image/png"}) }
