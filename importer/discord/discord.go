// Package discord imports DiscordChatExporter JSON exports into Matrix
// rooms: `tributary import discord EXPORT_DIR_OR_FILES...`.
//
// Each guild becomes a space and each channel a room (a portal, recorded
// in the server's bridge_portals table under mautrix-discord's bridgev2
// portal IDs: the channel ID, and "*<guild ID>" for a guild's space, so
// that a live Discord bridge adopts the same rooms); direct-message
// channels are rooms outside any space. Threads, which the exporter writes
// as channels of their own, go into their channel's room as m.thread
// relations rooted at the message they start at (or the ThreadCreated
// notice). Each Discord user becomes a ghost @<ghost_prefix><user ID> or,
// through a user map, an existing Matrix account. History goes in as
// forward batches through the server's one batch-insert path, with the
// original senders and times: Discord markdown as HTML, replies
// (m.in_reply_to), edits (the final text and an m.replace), reactions with
// the users who reacted (custom emoji as images), attachments and stickers
// (uploaded when they can be fetched, links otherwise), embeds, renames,
// joins and pins.
//
// A channel's file and its threads' files are read together as streams
// merged in ID order, so a 1M-message export is never held in memory.
// Every event of a message is named by an event ID alias made as bridgev2
// makes deterministic event IDs (room, message ID, part ID), so the live
// bridge can refer to imported messages by the IDs it would have given
// them; the aliases are stored with their batch and are how an import that
// was killed finds what it had already written. Each portal's import_meta
// holds the last imported message ID of each of its channels and threads;
// an import run again starts after them.
package discord

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json/jsontext"
	"encoding/json/v2"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/importer"
)

// Network is the network name of Discord portals.
const Network = "discord"

// Options shape an import.
type Options struct {
	Target importer.Target
	Export *Export
	// GhostPrefix starts the localparts of ghosts (config imports.discord).
	GhostPrefix string
	// UserMap maps Discord user IDs or usernames (lowercase) to the Matrix
	// users who are those people.
	UserMap map[string]id.UserID
	// Download fetches attachments, stickers, custom emoji and guild icons
	// from the CDN (files the export holds itself are always read);
	// Avatars downloads users' avatars.
	Download, Avatars bool
	HTTP              *http.Client
	// BatchEvents is the size of a batch (2,000 events); Workers how many
	// channels are imported at once (2).
	BatchEvents, Workers int
	// Progress is told of messages done (imported or found imported).
	Progress func(messages int)
	// AfterBatch, when set, runs after each batch is committed and before
	// its cursor is recorded (tests stop there to play a crash).
	AfterBatch func()
	Log        *slog.Logger
}

// Summary is what an import did and could not do.
type Summary struct {
	Channels, Threads, NewRooms int
	// Messages were imported, Skipped found imported already, Events
	// written in all.
	Messages, Skipped, Events                                                          int
	ThreadMessages, Replies, Edits, Reactions, CustomEmoji, FilesUploaded, FilesLinked int
	Stickers, Embeds, Joins, Pins                                                      int
	// What could not be carried.
	FailedDownloads, ReactionsNotNamed, EmojiAsText, OrphanThreadMessages, OrphanReplies int
	BadMessages, FailedMessages, PinsNotCarried                                          int
	Unknown                                                                              map[string]int
	// Problems are the first few lines worth reading.
	Problems []string
	Duration time.Duration
}

func (s *Summary) add(o *Summary) {
	for _, p := range []struct{ to, from *int }{{&s.Messages, &o.Messages}, {&s.Skipped, &o.Skipped},
		{&s.Events, &o.Events}, {&s.ThreadMessages, &o.ThreadMessages}, {&s.Replies, &o.Replies},
		{&s.Edits, &o.Edits}, {&s.Reactions, &o.Reactions}, {&s.CustomEmoji, &o.CustomEmoji},
		{&s.FilesUploaded, &o.FilesUploaded}, {&s.FilesLinked, &o.FilesLinked}, {&s.Stickers, &o.Stickers},
		{&s.Embeds, &o.Embeds}, {&s.Joins, &o.Joins}, {&s.Pins, &o.Pins}, {&s.FailedDownloads, &o.FailedDownloads},
		{&s.ReactionsNotNamed, &o.ReactionsNotNamed}, {&s.EmojiAsText, &o.EmojiAsText},
		{&s.OrphanThreadMessages, &o.OrphanThreadMessages}, {&s.OrphanReplies, &o.OrphanReplies},
		{&s.BadMessages, &o.BadMessages}, {&s.FailedMessages, &o.FailedMessages}, {&s.PinsNotCarried, &o.PinsNotCarried},
		{&s.Threads, &o.Threads}} {
		*p.to += *p.from
	}
	for k, v := range o.Unknown {
		if s.Unknown == nil {
			s.Unknown = map[string]int{}
		}
		s.Unknown[k] += v
	}
	for _, p := range o.Problems {
		s.problem("%s", p)
	}
}

const maxProblems = 20

func (s *Summary) problem(format string, args ...any) {
	if len(s.Problems) < maxProblems {
		s.Problems = append(s.Problems, fmt.Sprintf(format, args...))
	}
}

// Write prints the summary.
func (s *Summary) Write(w io.Writer) {
	fmt.Fprintf(w, "Imported %d messages (%d events) of %d channels and %d threads (%d new rooms) in %s",
		s.Messages, s.Events, s.Channels, s.Threads, s.NewRooms, s.Duration.Round(time.Millisecond))
	if secs := s.Duration.Seconds(); secs > 0 && s.Messages > 0 {
		fmt.Fprintf(w, ", %.0f messages/s", float64(s.Messages)/secs)
	}
	fmt.Fprintln(w)
	if s.Skipped > 0 {
		fmt.Fprintf(w, "  %d messages were imported before\n", s.Skipped)
	}
	fmt.Fprintf(w, "  %d thread messages, %d replies, %d edits, %d reactions (%d custom emoji as images), %d files uploaded, "+
		"%d files as links, %d stickers, %d embeds, %d joins, %d pins\n", s.ThreadMessages, s.Replies, s.Edits, s.Reactions,
		s.CustomEmoji, s.FilesUploaded, s.FilesLinked, s.Stickers, s.Embeds, s.Joins, s.Pins)
	var lost []string
	for _, l := range []struct {
		n    int
		what string
	}{{s.FailedDownloads, "files that could not be downloaded (kept as links)"},
		{s.ReactionsNotNamed, "reactions whose people the export does not name"},
		{s.EmojiAsText, "custom emoji reactions without an image (kept as :name:)"},
		{s.OrphanThreadMessages, "thread messages whose thread start is not in the export (imported as messages)"},
		{s.OrphanReplies, "replies to messages not in the export (imported without the reply)"},
		{s.BadMessages, "messages that could not be read"},
		{s.FailedMessages, "messages the server refused"},
		{s.PinsNotCarried, "pins beyond the latest " + fmt.Sprint(maxPins) + " of a channel"}} {
		if l.n > 0 {
			lost = append(lost, fmt.Sprintf("  %d %s", l.n, l.what))
		}
	}
	for _, k := range slices.Sorted(maps.Keys(s.Unknown)) {
		lost = append(lost, fmt.Sprintf("  %d messages of unknown type %q (their text kept as a notice)", s.Unknown[k], k))
	}
	if len(lost) > 0 {
		fmt.Fprintln(w, "Not carried:")
		for _, l := range lost {
			fmt.Fprintln(w, l)
		}
	}
	for _, p := range s.Problems {
		fmt.Fprintln(w, "  "+p)
	}
}

// run is one import.
type run struct {
	o      Options
	t      importer.Target
	ident  *importer.Identity
	log    *slog.Logger
	groups []*group
	mu     sync.Mutex // guards people, rooms, spaces, mapped and sum
	people map[string]*person
	spaces map[string]*importer.Portal // by guild ID
	rooms  map[string]*importer.Portal // by channel ID (threads: their channel's)
	names  map[string]string           // channel names by ID
	mapped []*person
	sum    *Summary
}

// person is a Discord user and who they are on Matrix.
type person struct {
	mxid   id.UserID
	name   string
	avatar string
	mapped bool
}

// group is a channel's room: the channel's files and its threads'.
type group struct {
	key     string // the channel ID: the portal ID
	main    []*File
	threads []*File // by thread ID
	guild   Guild
	name    string
	topic   string
	kind    string
	catID   string
	total   int
}

func (g *group) label() string { return "#" + g.name + " (" + g.key + ")" }

// isThread reports whether a channel type is a thread's.
func isThread(t string) bool { return strings.Contains(t, "Thread") }

// kindOf is the portal kind of a channel type.
func kindOf(t string) string {
	switch t {
	case "DirectTextChat":
		return "dm"
	case "DirectGroupTextChat":
		return "group"
	}
	return "channel"
}

// Import imports the export. It stops on errors of the server (a database
// that fails, a target that cannot be reached), never on a message.
func Import(ctx context.Context, o Options) (*Summary, error) {
	start := time.Now()
	if o.BatchEvents <= 0 {
		o.BatchEvents = 2000
	}
	if o.Workers <= 0 {
		o.Workers = 2
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.HTTP == nil {
		o.HTTP = &http.Client{Timeout: 2 * time.Minute}
	}
	r := &run{o: o, t: o.Target, log: o.Log, people: map[string]*person{}, spaces: map[string]*importer.Portal{},
		rooms: map[string]*importer.Portal{}, names: map[string]string{}, sum: &Summary{Unknown: map[string]int{}}}
	var err error
	if r.ident, err = r.t.Identity(ctx); err != nil {
		return nil, err
	}
	r.plan()
	if err := r.mapPeople(ctx); err != nil {
		return nil, err
	}
	if err := r.ensurePortals(ctx); err != nil {
		return nil, err
	}
	groups := slices.Clone(r.groups)
	slices.SortStableFunc(groups, func(a, b *group) int { return b.total - a.total })
	err = importer.Each(ctx, o.Workers, groups, (*group).label, r.importGroup)
	r.sum.Duration = time.Since(start)
	if err != nil {
		return r.sum, err
	}
	return r.sum, ctx.Err()
}

// plan groups the files by room: a channel's own files (an export may be
// cut in parts) and its threads'.
func (r *run) plan() {
	byKey := map[string]*group{}
	var order []string
	get := func(key string) *group {
		g := byKey[key]
		if g == nil {
			g = &group{key: key, kind: "channel"}
			byKey[key] = g
			order = append(order, key)
		}
		return g
	}
	for _, f := range r.o.Export.Files {
		ch := f.Channel
		if isThread(ch.Type) && ch.CategoryID != "" {
			g := get(ch.CategoryID)
			g.threads = append(g.threads, f)
			if g.name == "" {
				g.name, g.guild = ch.Category, f.Guild // until the channel's own file says
			}
			r.sum.Threads++
		} else {
			g := get(ch.ID)
			g.main = append(g.main, f)
			g.name, g.guild, g.topic, g.kind, g.catID = ch.Name, f.Guild, ch.Topic, kindOf(ch.Type), ch.CategoryID
			r.sum.Channels++
		}
		r.names[ch.ID] = ch.Name
		byKey[r.groupKey(f)].total += f.Messages
	}
	for _, k := range order {
		g := byKey[k]
		if g.name == "" {
			g.name = g.key
		}
		r.names[g.key] = g.name
		slices.SortFunc(g.threads, func(a, b *File) int { return cmpID(a.Channel.ID, b.Channel.ID) })
		r.groups = append(r.groups, g)
	}
}

func (r *run) groupKey(f *File) string {
	if isThread(f.Channel.Type) && f.Channel.CategoryID != "" {
		return f.Channel.CategoryID
	}
	return f.Channel.ID
}

// cmpID orders Discord IDs (decimal numbers without leading zeros).
func cmpID(a, b string) int {
	if len(a) != len(b) {
		return len(a) - len(b)
	}
	return strings.Compare(a, b)
}

// ghostID is a Discord user's ghost, as bridgev2 names them.
func (r *run) ghostID(discordID string) id.UserID {
	return id.NewUserID(r.o.GhostPrefix+strings.ToLower(discordID), r.ident.ServerName)
}

// mapPeople checks the user map: an account that does not exist stops the
// import before it writes anything.
func (r *run) mapPeople(ctx context.Context) error {
	done := map[id.UserID]*person{}
	for _, k := range slices.Sorted(maps.Keys(r.o.UserMap)) {
		target := r.o.UserMap[k]
		if done[target] != nil {
			continue
		}
		prof, err := r.t.Profile(ctx, target)
		if err != nil {
			return fmt.Errorf("user map: %s (Discord user %s): %w", target, k, err)
		}
		p := &person{mxid: target, name: prof.DisplayName, avatar: prof.AvatarURL, mapped: true}
		done[target] = p
		r.mapped = append(r.mapped, p)
	}
	return nil
}

// who is the Matrix user of a Discord user, registered on first sight.
func (r *run) who(ctx context.Context, u *User) (*person, error) {
	if u.ID == "" {
		return nil, errors.New("a user without an ID")
	}
	r.mu.Lock()
	p := r.people[u.ID]
	r.mu.Unlock()
	if p != nil {
		return p, nil
	}
	target := r.o.UserMap[u.ID]
	if target == "" && u.Name != "" {
		target = r.o.UserMap[strings.ToLower(u.Name)]
	}
	if target != "" {
		for _, m := range r.mapped {
			if m.mxid == target {
				p = m
			}
		}
	}
	if p == nil {
		name := u.Nickname
		if name == "" {
			name = u.Name
		}
		if name == "" {
			name = u.ID
		}
		if u.IsBot {
			name += " (bot)"
		}
		p = &person{mxid: r.ghostID(u.ID), name: name}
		g := &importer.Ghost{UserID: p.mxid, DisplayName: name}
		if r.o.Avatars && u.AvatarURL != "" {
			g.AvatarURL = r.fetchOnce(ctx, "avatar:"+u.AvatarURL, u.AvatarURL, "", p.mxid, "avatar.png")
		}
		if err := r.t.EnsureGhost(ctx, g); err != nil {
			return nil, fmt.Errorf("ghost of %s: %w", u.ID, err)
		}
		p.avatar = g.AvatarURL
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if q := r.people[u.ID]; q != nil {
		return q, nil
	}
	r.people[u.ID] = p
	return p, nil
}

// User implements Resolver.
func (r *run) User(discordID string) (id.UserID, string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if p := r.people[discordID]; p != nil {
		return p.mxid, p.name
	}
	return "", ""
}

// Channel implements Resolver.
func (r *run) Channel(discordID string) (id.RoomID, string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	name := r.names[discordID]
	if p := r.rooms[discordID]; p != nil {
		return p.RoomID, name
	}
	return "", name
}

// fetchOnce uploads a remote file once (by key) and returns its mxc:// URI,
// "" when it cannot be had (counted and reported).
func (r *run) fetchOnce(ctx context.Context, key, src, base string, owner id.UserID, name string) string {
	if mxc, err := r.t.Media(ctx, key); err == nil && mxc != "" {
		return mxc
	}
	mxc, err := r.fetch(ctx, src, base, key, owner, name, "")
	if errors.Is(err, errNoDownload) {
		return ""
	}
	if err != nil {
		r.mu.Lock()
		r.sum.FailedDownloads++
		r.sum.problem("%s: %v", src, err)
		r.mu.Unlock()
		return ""
	}
	return mxc
}

// fetch stores a file of the export (a path relative to the export file's
// folder, base) or of the CDN into the media repository.
func (r *run) fetch(ctx context.Context, src, base, remoteID string, owner id.UserID, name, ctype string) (string, error) {
	u, err := url.Parse(src)
	if err != nil {
		return "", err
	}
	if u.Scheme == "" || u.Scheme == "file" {
		p := u.Path
		if !filepath.IsAbs(p) {
			p = filepath.Join(base, filepath.FromSlash(p))
		}
		f, err := os.Open(p)
		if err != nil {
			return "", err
		}
		defer f.Close()
		st, err := f.Stat()
		if err != nil {
			return "", err
		}
		return r.t.Upload(ctx, &importer.Upload{RemoteID: remoteID, Owner: owner, ContentType: ctype, FileName: name,
			Size: st.Size()}, f)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return "", fmt.Errorf("not a web address")
	}
	if !r.o.Download {
		return "", errNoDownload
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, src, nil)
	if err != nil {
		return "", err
	}
	resp, err := r.o.HTTP.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET %s: %s", src, resp.Status)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "" {
		ctype = ct
	}
	return r.t.Upload(ctx, &importer.Upload{RemoteID: remoteID, Owner: owner, ContentType: ctype, FileName: name,
		Size: resp.ContentLength}, resp.Body)
}

// errNoDownload: downloads are off; the file stays a link.
var errNoDownload = errors.New("downloads are off")

func mustJSON(v any) jsontext.Value {
	raw, err := json.Marshal(v, json.Deterministic(true))
	if err != nil {
		panic(err) // only maps and strings of this package
	}
	return raw
}

// portalKey names, in a portal's create event, the conversation it is of.
const portalKey = "org.tributary.portal"

// roomPower: everyone may set the name and the topic, as the export shows
// members renaming channels (Discord's roles are not carried); the rest is
// createRoom's defaults.
var roomPower = map[string]any{"events": map[string]any{
	"m.room.name": 0, "m.room.topic": 0, "m.room.power_levels": 100, "m.room.history_visibility": 100,
	"m.room.canonical_alias": 50, "m.room.avatar": 50, "m.room.tombstone": 150, "m.room.server_acl": 100,
	"m.room.encryption": 100, "m.room.pinned_events": 50,
}}

// guildPortalID is mautrix-discord's portal ID of a guild's space: a
// guild's ID may be its default channel's too.
func guildPortalID(guildID string) string { return "*" + guildID }

// ensurePortals makes a space per guild and a room per channel where there
// is none yet, and joins the people mapped to Matrix users to the spaces.
func (r *run) ensurePortals(ctx context.Context) error {
	for _, g := range r.groups {
		if g.guild.ID == "0" || g.kind != "channel" || r.spaces[g.guild.ID] != nil {
			continue
		}
		sp, err := r.t.Portal(ctx, guildPortalID(g.guild.ID))
		if err != nil {
			return err
		}
		created := snowflakeMillis(parseID(g.guild.ID))
		if sp == nil {
			state := []any{map[string]any{"type": "m.room.guest_access", "state_key": "",
				"content": map[string]any{"guest_access": "forbidden"}}}
			if g.guild.IconURL != "" && r.o.Download {
				if mxc := r.fetchOnce(ctx, "icon:"+g.guild.IconURL, g.guild.IconURL, "", r.ident.Bot, "icon.png"); mxc != "" {
					state = append(state, map[string]any{"type": "m.room.avatar", "state_key": "", "content": map[string]any{"url": mxc}})
				}
			}
			req := mustJSON(map[string]any{"name": g.guild.Name, "preset": "private_chat", "initial_state": state,
				"creation_content": map[string]any{"type": "m.space", portalKey: Network + ":" + guildPortalID(g.guild.ID)}})
			if sp, err = r.t.CreatePortal(ctx, &importer.CreatePortal{PortalID: guildPortalID(g.guild.ID), Kind: "space",
				Room: req, Timestamp: created}); err != nil {
				return fmt.Errorf("space of %s: %w", g.guild.Name, err)
			}
			r.sum.NewRooms++
		}
		r.spaces[g.guild.ID] = sp
		if err := r.joinMapped(ctx, sp.RoomID, created); err != nil {
			return fmt.Errorf("space of %s: %w", g.guild.Name, err)
		}
	}
	for _, g := range r.groups {
		p, err := r.t.Portal(ctx, g.key)
		if err != nil {
			return err
		}
		if p == nil {
			if p, err = r.createRoom(ctx, g); err != nil {
				return fmt.Errorf("%s: %w", g.label(), err)
			}
			r.sum.NewRooms++
		}
		r.mu.Lock()
		r.rooms[g.key] = p
		for _, f := range g.threads {
			r.rooms[f.Channel.ID] = p
		}
		r.mu.Unlock()
	}
	return nil
}

func parseID(s string) uint64 {
	var v uint64
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0
		}
		v = v*10 + uint64(c-'0')
	}
	return v
}

func (r *run) joinMapped(ctx context.Context, roomID id.RoomID, ts int64) error {
	if len(r.mapped) == 0 {
		return nil
	}
	joined, err := r.t.Joined(ctx, roomID)
	if err != nil {
		return err
	}
	in := map[id.UserID]bool{}
	for _, u := range joined {
		in[u] = true
	}
	var evs []*importer.Event
	for _, p := range r.mapped {
		if !in[p.mxid] {
			in[p.mxid] = true
			evs = append(evs, r.membership(p, "invite", false, ts), r.membership(p, "join", false, ts))
		}
	}
	if len(evs) == 0 {
		return nil
	}
	_, err = r.t.BatchSend(ctx, roomID, evs)
	return err
}

func (r *run) membership(p *person, membership string, direct bool, ts int64) *importer.Event {
	return importer.MemberEvent(r.ident.Bot, p.mxid, p.name, p.avatar, membership, direct, ts)
}

func (r *run) createRoom(ctx context.Context, g *group) (*importer.Portal, error) {
	server := r.ident.ServerName
	space := r.spaces[g.guild.ID]
	state := []any{
		map[string]any{"type": "m.room.guest_access", "state_key": "", "content": map[string]any{"guest_access": "forbidden"}},
	}
	if space != nil {
		state = append(state, map[string]any{"type": "m.space.parent", "state_key": string(space.RoomID),
			"content": map[string]any{"via": []string{server}, "canonical": true}},
			// Open to the guild, as on Discord: the members of its space.
			map[string]any{"type": "m.room.join_rules", "state_key": "", "content": map[string]any{
				"join_rule": "restricted", "allow": []any{map[string]any{"type": "m.room_membership", "room_id": space.RoomID}}}})
	}
	req := map[string]any{"preset": "private_chat", "initial_state": state, "power_level_content_override": roomPower,
		// Room IDs are create event hashes (room v12): channels made in the
		// same second by the same bot need something of their own.
		"creation_content": map[string]any{portalKey: Network + ":" + g.key}, "name": g.name}
	created := snowflakeMillis(parseID(g.key))
	p, err := r.t.CreatePortal(ctx, &importer.CreatePortal{PortalID: g.key, Kind: g.kind, Room: mustJSON(req), Timestamp: created})
	if err != nil {
		return nil, err
	}
	if space != nil {
		// Channels sort by category, then by age, as Discord lists them.
		order := g.catID
		if order == "" {
			order = "~"
		}
		child := mustJSON(map[string]any{"via": []string{server}, "suggested": true, "order": order + "-" + g.key})
		if _, err := r.t.SendState(ctx, space.RoomID, r.ident.Bot, "m.space.child", string(p.RoomID), child); err != nil {
			return nil, fmt.Errorf("add to the space: %w", err)
		}
	}
	return p, nil
}

// alias is the event ID alias of a part of a message: bridgev2's
// deterministic event ID of (room, message ID, part ID).
func alias(roomID id.RoomID, server, messageID, part string) id.EventID {
	h := sha256.New()
	h.Write([]byte(roomID))
	h.Write([]byte{0})
	h.Write([]byte(messageID))
	h.Write([]byte{0})
	h.Write([]byte(part))
	return id.EventID("$" + base64.RawURLEncoding.EncodeToString(h.Sum(nil)) + ":backfill." + server)
}

func (r *run) progress(n int) {
	if r.o.Progress != nil {
		r.o.Progress(n)
	}
}
