package ircconn

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Member is a user in a channel.
type Member struct {
	Nick, User, Host string
	// Modes are the member's prefix modes ("o", "v"…), highest rank first.
	Modes string
}

// Channel is what a Tracker knows of a channel.
type Channel struct {
	Name       string
	Topic      string
	TopicSetBy string
	TopicTime  time.Time
	// Modes holds the channel's modes that are not lists or prefixes, with
	// their parameter ("" for flags): 'n' → "", 'k' → "key", 'l' → "50".
	Modes map[byte]string
	// Members is keyed by folded nick.
	Members map[string]Member
	// Joined: we are in the channel on the current connection. Synced: the
	// names list finished (RPL_ENDOFNAMES) since we last joined.
	Joined, Synced bool
}

// Nicks returns the members' nicks, sorted.
func (ch Channel) Nicks() []string {
	out := make([]string, 0, len(ch.Members))
	for _, m := range ch.Members {
		out = append(out, m.Nick)
	}
	slices.Sort(out)
	return out
}

func (ch *Channel) clone() Channel {
	c := *ch
	c.Modes = make(map[byte]string, len(ch.Modes))
	for k, v := range ch.Modes {
		c.Modes[k] = v
	}
	c.Members = make(map[string]Member, len(ch.Members))
	for k, v := range ch.Members {
		c.Members[k] = v
	}
	return c
}

type trackedChannel struct {
	Channel
	names map[string]Member // a NAMES reply being collected, nil otherwise
}

// Tracker follows the channels a connection is in (members with their
// prefix modes, topic, modes) from the lines it receives. It outlives
// connections: fed the events of a new Conn, it keeps each channel's last
// known state until rejoining replaces it (names on RPL_ENDOFNAMES, topic on
// join, modes on RPL_CHANNELMODEIS), so a bridge can diff a channel before
// and after a reconnect. It is safe for concurrent use.
type Tracker struct {
	mu       sync.Mutex
	isupport *ISupport
	nick     string
	chans    map[string]*trackedChannel
}

// NewTracker returns an empty Tracker.
func NewTracker() *Tracker {
	return &Tracker{isupport: &ISupport{}, chans: map[string]*trackedChannel{}}
}

func (t *Tracker) fold(s string) string { return t.isupport.CaseMapping().Fold(s) }

// HandleEvent feeds an event from Conn.Events. The lines of chathistory
// batches are history, not current state, and are skipped.
func (t *Tracker) HandleEvent(ev Event) {
	if ev.Message != nil {
		t.Handle(ev.Message)
		return
	}
	if ev.Batch == nil || ev.Batch.Type == "chathistory" {
		return
	}
	for _, it := range ev.Batch.Items {
		t.HandleEvent(it)
	}
}

// Handle feeds one line.
func (t *Tracker) Handle(m *Message) {
	t.mu.Lock()
	defer t.mu.Unlock()
	src := m.Prefix()
	self := t.nick != "" && t.isupport.CaseMapping().Equal(src.Name, t.nick)
	switch m.Command {
	case RPL_WELCOME:
		// A new connection: nothing is joined until we join again, and the
		// new server's ISUPPORT replaces the old.
		t.nick = m.Param(0)
		t.isupport = &ISupport{}
		for _, ch := range t.chans {
			ch.Joined, ch.Synced, ch.names = false, false, nil
		}
	case RPL_ISUPPORT:
		t.isupport.Apply(m.Params)
		t.refold()
	case "NICK":
		newNick := m.Param(0)
		if self {
			t.nick = newNick
		}
		for _, ch := range t.chans {
			for _, set := range []map[string]Member{ch.Members, ch.names} {
				if mem, ok := set[t.fold(src.Name)]; ok {
					delete(set, t.fold(src.Name))
					mem.Nick = newNick
					set[t.fold(newNick)] = mem
				}
			}
		}
	case "JOIN":
		name := m.Param(0)
		ch := t.chans[t.fold(name)]
		if self {
			if ch == nil {
				ch = &trackedChannel{Channel: Channel{Name: name, Members: map[string]Member{}}}
				t.chans[t.fold(name)] = ch
			}
			ch.Name = name
			ch.Joined, ch.Synced = true, false
			ch.Topic, ch.TopicSetBy, ch.TopicTime = "", "", time.Time{}
			ch.Modes = map[byte]string{}
			ch.names = map[string]Member{}
		}
		if ch != nil {
			mem := Member{Nick: src.Name, User: src.User, Host: src.Host}
			ch.Members[t.fold(src.Name)] = mem
			if ch.names != nil {
				ch.names[t.fold(src.Name)] = mem
			}
		}
	case "PART", "KICK":
		name, who := m.Param(0), src.Name
		if m.Command == "KICK" {
			who = m.Param(1)
		}
		ch := t.chans[t.fold(name)]
		if ch == nil {
			return
		}
		if t.isupport.CaseMapping().Equal(who, t.nick) {
			delete(t.chans, t.fold(name))
			return
		}
		delete(ch.Members, t.fold(who))
		delete(ch.names, t.fold(who))
	case "QUIT":
		for _, ch := range t.chans {
			delete(ch.Members, t.fold(src.Name))
			delete(ch.names, t.fold(src.Name))
		}
	case "CHGHOST":
		for _, ch := range t.chans {
			if mem, ok := ch.Members[t.fold(src.Name)]; ok {
				mem.User, mem.Host = m.Param(0), m.Param(1)
				ch.Members[t.fold(src.Name)] = mem
			}
		}
	case RPL_NAMREPLY: // me type channel :names
		ch := t.chans[t.fold(m.Param(2))]
		if ch == nil {
			return
		}
		if ch.names == nil {
			ch.names = map[string]Member{}
		}
		modes, symbols := t.isupport.Prefix()
		for _, entry := range strings.Fields(m.Param(3)) {
			var mem Member
			for entry != "" {
				i := strings.IndexByte(symbols, entry[0])
				if i < 0 {
					break
				}
				mem.Modes += modes[i : i+1]
				entry = entry[1:]
			}
			p := ParsePrefix(entry)
			mem.Nick, mem.User, mem.Host = p.Name, p.User, p.Host
			mem.Modes = orderModes(mem.Modes, modes)
			ch.names[t.fold(mem.Nick)] = mem
		}
	case RPL_ENDOFNAMES:
		ch := t.chans[t.fold(m.Param(1))]
		if ch == nil || ch.names == nil {
			return
		}
		ch.Members, ch.names = ch.names, nil
		ch.Synced = true
	case RPL_TOPIC:
		if ch := t.chans[t.fold(m.Param(1))]; ch != nil {
			ch.Topic = m.Param(2)
		}
	case RPL_NOTOPIC:
		if ch := t.chans[t.fold(m.Param(1))]; ch != nil {
			ch.Topic, ch.TopicSetBy, ch.TopicTime = "", "", time.Time{}
		}
	case RPL_TOPICWHOTIME:
		if ch := t.chans[t.fold(m.Param(1))]; ch != nil {
			ch.TopicSetBy = ParsePrefix(m.Param(2)).Name
			if sec, err := strconv.ParseInt(m.Param(3), 10, 64); err == nil {
				ch.TopicTime = time.Unix(sec, 0).UTC()
			}
		}
	case "TOPIC":
		if ch := t.chans[t.fold(m.Param(0))]; ch != nil {
			ch.Topic, ch.TopicSetBy = m.Param(1), src.Name
			ch.TopicTime = m.Time()
			if ch.TopicTime.IsZero() {
				ch.TopicTime = time.Now().UTC()
			}
		}
	case RPL_CHANNELMODEIS: // me channel modes params…
		if ch := t.chans[t.fold(m.Param(1))]; ch != nil && len(m.Params) >= 3 {
			ch.Modes = map[byte]string{}
			t.applyModes(ch, m.Params[2], m.Params[3:])
		}
	case "MODE":
		if ch := t.chans[t.fold(m.Param(0))]; ch != nil && len(m.Params) >= 2 {
			t.applyModes(ch, m.Params[1], m.Params[2:])
		}
	}
}

// refold re-keys the maps after CASEMAPPING changed.
func (t *Tracker) refold() {
	chans := make(map[string]*trackedChannel, len(t.chans))
	for _, ch := range t.chans {
		members := make(map[string]Member, len(ch.Members))
		for _, m := range ch.Members {
			members[t.fold(m.Nick)] = m
		}
		ch.Members = members
		chans[t.fold(ch.Name)] = ch
	}
	t.chans = chans
}

// applyModes applies a mode string with its parameters, using CHANMODES to
// know which modes take one and PREFIX for member modes.
func (t *Tracker) applyModes(ch *trackedChannel, modestr string, params []string) {
	a, b, c, _ := t.isupport.ChanModes()
	prefixModes, _ := t.isupport.Prefix()
	next := func() string {
		if len(params) == 0 {
			return ""
		}
		p := params[0]
		params = params[1:]
		return p
	}
	adding := true
	for i := 0; i < len(modestr); i++ {
		mode := modestr[i]
		switch {
		case mode == '+':
			adding = true
		case mode == '-':
			adding = false
		case strings.IndexByte(prefixModes, mode) >= 0:
			nick := next()
			for _, set := range []map[string]Member{ch.Members, ch.names} {
				mem, ok := set[t.fold(nick)]
				if !ok {
					continue
				}
				if adding {
					if strings.IndexByte(mem.Modes, mode) < 0 {
						mem.Modes = orderModes(mem.Modes+string(mode), prefixModes)
					}
				} else {
					mem.Modes = strings.ReplaceAll(mem.Modes, string(mode), "")
				}
				set[t.fold(nick)] = mem
			}
		case strings.IndexByte(a, mode) >= 0:
			next() // list modes (bans, exceptions) are not tracked
		case strings.IndexByte(b, mode) >= 0:
			p := next()
			if adding {
				ch.Modes[mode] = p
			} else {
				delete(ch.Modes, mode)
			}
		case strings.IndexByte(c, mode) >= 0:
			if adding {
				ch.Modes[mode] = next()
			} else {
				delete(ch.Modes, mode)
			}
		default:
			if adding {
				ch.Modes[mode] = ""
			} else {
				delete(ch.Modes, mode)
			}
		}
	}
}

// orderModes sorts member modes by their rank in PREFIX.
func orderModes(modes, rank string) string {
	b := []byte(modes)
	slices.SortFunc(b, func(x, y byte) int {
		return strings.IndexByte(rank, x) - strings.IndexByte(rank, y)
	})
	return string(slices.Compact(b))
}

// Nick returns our nick as the tracker last saw it.
func (t *Tracker) Nick() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.nick
}

// Channel returns a copy of what is known of a channel.
func (t *Tracker) Channel(name string) (Channel, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	ch, ok := t.chans[t.fold(name)]
	if !ok {
		return Channel{}, false
	}
	return ch.clone(), true
}

// Channels returns the names of the tracked channels, sorted.
func (t *Tracker) Channels() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]string, 0, len(t.chans))
	for _, ch := range t.chans {
		out = append(out, ch.Name)
	}
	slices.Sort(out)
	return out
}

// Forget drops a channel (a bridge that stopped bridging it).
func (t *Tracker) Forget(name string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.chans, t.fold(name))
}

// Rejoin joins, on c, every tracked channel not joined on the current
// connection (with its key, if mode +k was known): call it after feeding
// the tracker the new connection's registration events.
func (t *Tracker) Rejoin(ctx context.Context, c *Conn) error {
	t.mu.Lock()
	type join struct{ name, key string }
	var joins []join
	for _, ch := range t.chans {
		if !ch.Joined {
			joins = append(joins, join{ch.Name, ch.Modes['k']})
		}
	}
	t.mu.Unlock()
	for _, j := range joins {
		if err := c.Join(ctx, j.name, j.key); err != nil {
			return err
		}
	}
	return nil
}

// DiffMembers returns the nicks in after but not before (joined) and in
// before but not after (left), each sorted: what changed in a channel while
// the bridge was disconnected. Keys are compared folded, as in Members.
func DiffMembers(before, after Channel) (joined, left []string) {
	for k, m := range after.Members {
		if _, ok := before.Members[k]; !ok {
			joined = append(joined, m.Nick)
		}
	}
	for k, m := range before.Members {
		if _, ok := after.Members[k]; !ok {
			left = append(left, m.Nick)
		}
	}
	slices.Sort(joined)
	slices.Sort(left)
	return joined, left
}
