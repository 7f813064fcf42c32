// Package slack imports a Slack workspace export into Matrix rooms:
// `tributary import slack EXPORT.zip`.
//
// The workspace becomes a space, each channel, private channel, DM and
// group DM a room (a portal, recorded in the server's bridge_portals table
// under mautrix-slack's portal IDs "TEAM-CHANNEL", and "TEAM" for the
// space, so that the live Slack bridge adopts the same rooms), each Slack
// user a ghost @<ghost_prefix><team>-<user> (lowercase, mautrix-slack's
// user IDs) or, through a user map, an existing Matrix account. History
// goes in as forward batches through the server's one batch-insert path:
// the original senders and times, threads (m.thread), edits (the final text
// and an m.replace), reactions, files (uploaded when a token lets them be
// downloaded, links otherwise), topics, renames, joins, leaves and pins.
//
// Every event of a message is named by an event ID alias made as mautrix
// bridgev2 makes deterministic event IDs (GenerateDeterministicEventID:
// "$" + unpadded URL-safe base64 of SHA-256(room ID, 0, message ID, 0,
// part ID) + ":backfill.<server name>", message ID "TEAM-CHANNEL-TS"), so
// the live bridge can refer to imported messages (threads, replies) by the
// IDs it would have given them. The aliases are stored in the same
// transaction as their batch: they are the Slack ts → event mapping that
// threads, edits and reactions of later batches and later imports resolve
// through, and how an import that was killed finds what it had already
// written. Each portal's import_cursor holds the ts of its last imported
// message; an import run again starts after it ("delta import").
package slack

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json/jsontext"
	"encoding/json/v2"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/importer"
)

// Network is the network name of Slack portals.
const Network = "slack"

// Options shape an import.
type Options struct {
	Target importer.Target
	Export *Export
	// GhostPrefix starts the localparts of ghosts (config imports.slack).
	GhostPrefix string
	// SpaceName names the workspace's space ("Slack <team>" if empty).
	SpaceName string
	// UserMap maps Slack user IDs or e-mail addresses (lowercase) to the
	// Matrix users who are those people.
	UserMap map[string]id.UserID
	// FilesToken, when set, is a Slack token whose Authorization
	// downloads files (url_private) and lists custom emoji (emoji.list);
	// without it files stay links and custom emoji shortcodes.
	FilesToken string
	// APIURL is Slack's Web API (DefaultAPIURL if empty).
	APIURL string
	// Avatars downloads users' profile images.
	Avatars bool
	HTTP    *http.Client
	// BatchEvents is the size of a batch (2,000 events); Workers how many
	// conversations are imported at once (2).
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
	Conversations, NewRooms int
	// Messages were imported, Skipped found imported already, Events
	// written in all.
	Messages, Skipped, Events                                                     int
	Threads, Replies, Edits, Reactions, FilesUploaded, FilesLinked, Joins, Leaves int
	// CustomEmoji are the custom emoji carried as images.
	CustomEmoji int
	// What could not be carried.
	MissingFiles, FailedDownloads, ReactionsNotNamed, OrphanReplies, BadMessages, FailedMessages, PinsNotCarried int
	Unknown                                                                                                      map[string]int
	// Problems are the first few lines worth reading.
	Problems []string
	Duration time.Duration
}

func (s *Summary) add(o *Summary) {
	s.Conversations += o.Conversations
	s.NewRooms += o.NewRooms
	s.Messages += o.Messages
	s.Skipped += o.Skipped
	s.Events += o.Events
	s.Threads += o.Threads
	s.Replies += o.Replies
	s.Edits += o.Edits
	s.Reactions += o.Reactions
	s.FilesUploaded += o.FilesUploaded
	s.FilesLinked += o.FilesLinked
	s.CustomEmoji += o.CustomEmoji
	s.Joins += o.Joins
	s.Leaves += o.Leaves
	s.MissingFiles += o.MissingFiles
	s.FailedDownloads += o.FailedDownloads
	s.ReactionsNotNamed += o.ReactionsNotNamed
	s.OrphanReplies += o.OrphanReplies
	s.BadMessages += o.BadMessages
	s.FailedMessages += o.FailedMessages
	s.PinsNotCarried += o.PinsNotCarried
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
	fmt.Fprintf(w, "Imported %d messages (%d events) into %d conversations (%d new rooms) in %s",
		s.Messages, s.Events, s.Conversations, s.NewRooms, s.Duration.Round(time.Millisecond))
	if secs := s.Duration.Seconds(); secs > 0 && s.Messages > 0 {
		fmt.Fprintf(w, ", %.0f messages/s", float64(s.Messages)/secs)
	}
	fmt.Fprintln(w)
	if s.Skipped > 0 {
		fmt.Fprintf(w, "  %d messages were imported before\n", s.Skipped)
	}
	fmt.Fprintf(w, "  %d threads (%d replies), %d edits, %d reactions, %d files uploaded, %d files as links, %d joins, %d leaves\n",
		s.Threads, s.Replies, s.Edits, s.Reactions, s.FilesUploaded, s.FilesLinked, s.Joins, s.Leaves)
	if s.CustomEmoji > 0 {
		fmt.Fprintf(w, "  %d custom emoji as images\n", s.CustomEmoji)
	}
	var lost []string
	for _, l := range []struct {
		n    int
		what string
	}{{s.MissingFiles, "files no longer in the export (deleted or hidden)"},
		{s.FailedDownloads, "files that could not be downloaded (kept as links)"},
		{s.ReactionsNotNamed, "reactions whose people the export does not name"},
		{s.OrphanReplies, "thread replies whose thread start is not in the export (imported as messages)"},
		{s.BadMessages, "messages that could not be read"},
		{s.FailedMessages, "messages the server refused"},
		{s.PinsNotCarried, "pins beyond the latest 100 of a channel"}} {
		if l.n > 0 {
			lost = append(lost, fmt.Sprintf("  %d %s", l.n, l.what))
		}
	}
	for _, k := range slices.Sorted(maps.Keys(s.Unknown)) {
		lost = append(lost, fmt.Sprintf("  %d messages of unknown subtype %q (their text kept as a notice)", s.Unknown[k], k))
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
	e      *Export
	ident  *importer.Identity
	team   string
	space  *importer.Portal
	log    *slog.Logger
	mu     sync.Mutex // guards people, rooms and sum
	people map[string]*person
	rooms  map[string]*importer.Portal // by conversation ID
	sum    *Summary
	// emojiList is the workspace's custom emoji (nil: none known);
	// emojiMXC their images so far ("" for one that has none), under
	// emojiMu, which is taken before mu.
	emojiList map[string]string
	emojiMu   sync.Mutex
	emojiMXC  map[string]id.ContentURIString
}

// person is a Slack user (or bot) and who they are on Matrix.
type person struct {
	mxid   id.UserID
	name   string
	avatar string
	mapped bool
	ready  bool
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
	r := &run{o: o, t: o.Target, e: o.Export, team: o.Export.TeamID, log: o.Log, people: map[string]*person{},
		rooms: map[string]*importer.Portal{}, sum: &Summary{Unknown: map[string]int{}}, emojiMXC: map[string]id.ContentURIString{}}
	var err error
	if r.ident, err = r.t.Identity(ctx); err != nil {
		return nil, err
	}
	if err := r.mapPeople(ctx); err != nil {
		return nil, err
	}
	if err := r.ensureGhosts(ctx); err != nil {
		return nil, err
	}
	if err := r.ensurePortals(ctx); err != nil {
		return nil, err
	}
	if o.FilesToken != "" {
		r.listEmoji(ctx)
	}
	convs := slices.Clone(r.e.Conversations)
	sort.SliceStable(convs, func(i, j int) bool { return convs[i].Messages > convs[j].Messages })
	err = importer.Each(ctx, o.Workers, convs, (*Conversation).label, r.importConversation)
	r.sum.Duration = time.Since(start)
	r.sum.Conversations = len(convs)
	if err != nil {
		return r.sum, err
	}
	return r.sum, ctx.Err()
}

func (c *Conversation) label() string {
	if c.Name != "" {
		return c.Name + " (" + c.ID + ")"
	}
	return c.ID
}

// ghostID is a Slack user's ghost, as mautrix-slack names them.
func (r *run) ghostID(slackID string) id.UserID {
	return id.NewUserID(r.o.GhostPrefix+strings.ToLower(r.team)+"-"+strings.ToLower(slackID), r.ident.ServerName)
}

func displayName(u *User) string {
	for _, n := range []string{u.Profile.DisplayName, u.Profile.RealName, u.Real, u.Name} {
		if n = strings.TrimSpace(n); n != "" {
			return n
		}
	}
	return u.ID
}

// mapPeople decides who each user is on Matrix; a user map naming an
// account that does not exist stops the import before it writes anything.
func (r *run) mapPeople(ctx context.Context) error {
	for i := range r.e.Users {
		u := &r.e.Users[i]
		p := &person{mxid: r.ghostID(u.ID), name: displayName(u)}
		target := r.o.UserMap[u.ID]
		if target == "" && u.Profile.Email != "" {
			target = r.o.UserMap[strings.ToLower(u.Profile.Email)]
		}
		if target != "" {
			prof, err := r.t.Profile(ctx, target)
			if err != nil {
				return fmt.Errorf("user map: %s (Slack user %s): %w", target, u.ID, err)
			}
			p = &person{mxid: target, name: prof.DisplayName, avatar: prof.AvatarURL, mapped: true, ready: true}
		}
		r.people[u.ID] = p
		if u.Profile.BotID != "" && r.people[u.Profile.BotID] == nil {
			r.people[u.Profile.BotID] = p // bot messages name the bot ID
		}
	}
	return nil
}

// ensureGhosts registers the ghosts of users.json with their profiles.
func (r *run) ensureGhosts(ctx context.Context) error {
	work := make(chan *User)
	errs := make(chan error, 4)
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for u := range work {
				p := r.people[u.ID]
				if p.mapped {
					continue
				}
				g := &importer.Ghost{UserID: p.mxid, DisplayName: p.name}
				if r.o.Avatars {
					g.AvatarURL = r.avatar(ctx, u)
				}
				if err := r.t.EnsureGhost(ctx, g); err != nil {
					errs <- fmt.Errorf("ghost of %s: %w", u.ID, err)
					return
				}
				r.mu.Lock()
				p.avatar, p.ready = g.AvatarURL, true
				r.mu.Unlock()
			}
		}()
	}
	var err error
send:
	for i := range r.e.Users {
		select {
		case work <- &r.e.Users[i]:
		case err = <-errs:
			break send
		}
	}
	close(work)
	wg.Wait()
	if err == nil {
		select {
		case err = <-errs:
		default:
		}
	}
	return err
}

// avatar uploads a user's profile image once ("" if it has none or it
// cannot be had).
func (r *run) avatar(ctx context.Context, u *User) string {
	src := u.Profile.Image512
	if src == "" {
		src = u.Profile.Image72
	}
	if src == "" {
		return ""
	}
	key := "avatar:" + src
	if mxc, err := r.t.Media(ctx, key); err == nil && mxc != "" {
		return mxc
	}
	mxc, err := r.download(ctx, src, "", key, r.people[u.ID].mxid, "avatar.png")
	if err != nil {
		r.mu.Lock()
		r.sum.problem("avatar of %s: %v", u.ID, err)
		r.mu.Unlock()
		return ""
	}
	return mxc
}

// download fetches a file (with the files token when given) into the
// media repository.
func (r *run) download(ctx context.Context, src, token, remoteID string, owner id.UserID, name string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, src, nil)
	if err != nil {
		return "", err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := r.o.HTTP.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET %s: %s", src, resp.Status)
	}
	ctype := resp.Header.Get("Content-Type")
	if strings.HasPrefix(ctype, "text/html") {
		// Slack answers a missing or bad token with its login page.
		return "", fmt.Errorf("GET %s: a web page, not the file (is the token right?)", src)
	}
	return r.t.Upload(ctx, &importer.Upload{RemoteID: remoteID, Owner: owner, ContentType: ctype, FileName: name,
		Size: resp.ContentLength}, resp.Body)
}

// who is the Matrix user of a Slack user or bot ID, registered on first
// sight when users.json does not list them.
func (r *run) who(ctx context.Context, slackID string, m *Message) (*person, error) {
	r.mu.Lock()
	p := r.people[slackID]
	r.mu.Unlock()
	if p != nil && p.ready {
		return p, nil
	}
	name := slackID
	if m != nil {
		switch {
		case m.Username != "" && slackID == m.BotID:
			name = m.Username
		case m.BotProfile != nil && m.BotProfile.Name != "" && slackID == m.BotID:
			name = m.BotProfile.Name
		case m.UserProfile != nil && slackID == m.User:
			name = displayName(&User{ID: slackID, Real: m.UserProfile.RealName, Name: m.UserProfile.Name,
				Profile: Profile{DisplayName: m.UserProfile.DisplayName}})
		}
	}
	np := &person{mxid: r.ghostID(slackID), name: name}
	if err := r.t.EnsureGhost(ctx, &importer.Ghost{UserID: np.mxid, DisplayName: name}); err != nil {
		return nil, fmt.Errorf("ghost of %s: %w", slackID, err)
	}
	np.ready = true
	r.mu.Lock()
	defer r.mu.Unlock()
	if q := r.people[slackID]; q != nil && q.ready {
		return q, nil
	}
	r.people[slackID] = np
	return np, nil
}

// User implements slackfmt.Resolver.
func (r *run) User(slackID string) (id.UserID, string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if p := r.people[slackID]; p != nil {
		return p.mxid, p.name
	}
	return "", ""
}

// Channel implements slackfmt.Resolver.
func (r *run) Channel(slackID string) (id.RoomID, string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range r.e.Conversations {
		if c.ID == slackID {
			if p := r.rooms[c.ID]; p != nil {
				return p.RoomID, c.Name
			}
			return "", c.Name
		}
	}
	return "", ""
}

// portalID is mautrix-slack's portal ID of a conversation.
func (r *run) portalID(channelID string) string { return r.team + "-" + channelID }

func mustJSON(v any) jsontext.Value {
	raw, err := json.Marshal(v, json.Deterministic(true))
	if err != nil {
		panic(err) // only maps and strings of this package
	}
	return raw
}

// portalKey names, in a portal's create event, the conversation it is of.
const portalKey = "org.tributary.portal"

// roomPower lets everyone set the topic and the name, as Slack lets
// members; the rest is createRoom's defaults.
var roomPower = map[string]any{"events": map[string]any{
	"m.room.name": 0, "m.room.topic": 0, "m.room.power_levels": 100, "m.room.history_visibility": 100,
	"m.room.canonical_alias": 50, "m.room.avatar": 50, "m.room.tombstone": 150, "m.room.server_acl": 100,
	"m.room.encryption": 100, "m.room.pinned_events": 50,
}}

// ensurePortals makes the space and a room per conversation where there
// is none yet, and joins the people mapped to Matrix users to the space.
func (r *run) ensurePortals(ctx context.Context) error {
	created := int64(0)
	for _, c := range r.e.Conversations {
		if c.Created > 0 && (created == 0 || c.Created < created) {
			created = c.Created
		}
	}
	name := r.o.SpaceName
	if name == "" {
		name = "Slack " + r.team
	}
	var err error
	if r.space, err = r.t.Portal(ctx, r.team); err != nil {
		return err
	}
	if r.space == nil {
		req := mustJSON(map[string]any{"name": name, "preset": "private_chat",
			"creation_content": map[string]any{"type": "m.space", portalKey: Network + ":" + r.team},
			"initial_state": []any{map[string]any{"type": "m.room.guest_access", "state_key": "",
				"content": map[string]any{"guest_access": "forbidden"}}}})
		if r.space, err = r.t.CreatePortal(ctx, &importer.CreatePortal{PortalID: r.team, Kind: "space", Room: req,
			Timestamp: created * 1000}); err != nil {
			return fmt.Errorf("space: %w", err)
		}
		r.sum.NewRooms++
	}
	// The people already on Matrix are in the space, where they find the
	// rooms (public channels are open to the space's members).
	if err := r.joinMapped(ctx, r.space.RoomID, created*1000); err != nil {
		return fmt.Errorf("space: %w", err)
	}
	for _, c := range r.e.Conversations {
		p, err := r.t.Portal(ctx, r.portalID(c.ID))
		if err != nil {
			return err
		}
		if p == nil {
			if p, err = r.createRoom(ctx, c); err != nil {
				return fmt.Errorf("%s: %w", c.label(), err)
			}
			r.sum.NewRooms++
		}
		r.mu.Lock()
		r.rooms[c.ID] = p
		r.mu.Unlock()
	}
	return nil
}

func (r *run) joinMapped(ctx context.Context, roomID id.RoomID, ts int64) error {
	joined, err := r.t.Joined(ctx, roomID)
	if err != nil {
		return err
	}
	in := map[id.UserID]bool{}
	for _, u := range joined {
		in[u] = true
	}
	var evs []*importer.Event
	for _, k := range slices.Sorted(maps.Keys(r.people)) {
		p := r.people[k]
		if !p.mapped || in[p.mxid] {
			continue
		}
		in[p.mxid] = true
		evs = append(evs, r.membership(p, "invite", false, ts), r.membership(p, "join", false, ts))
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

func (r *run) createRoom(ctx context.Context, c *Conversation) (*importer.Portal, error) {
	server := r.ident.ServerName
	state := []any{
		map[string]any{"type": "m.space.parent", "state_key": string(r.space.RoomID),
			"content": map[string]any{"via": []string{server}, "canonical": true}},
		map[string]any{"type": "m.room.guest_access", "state_key": "", "content": map[string]any{"guest_access": "forbidden"}},
	}
	name := c.Name
	switch c.Kind {
	case KindChannel:
		// Open to the workspace, as on Slack: the members of its space.
		state = append(state, map[string]any{"type": "m.room.join_rules", "state_key": "", "content": map[string]any{
			"join_rule": "restricted", "allow": []any{map[string]any{"type": "m.room_membership", "room_id": r.space.RoomID}}}})
	case KindDM, KindGroup:
		var names []string
		for _, m := range c.Members {
			if p := r.people[m]; p != nil {
				names = append(names, p.name)
			} else {
				names = append(names, m)
			}
		}
		name = strings.Join(names, ", ")
		state = state[1:] // DMs are not in the space
	}
	req := map[string]any{"preset": "private_chat", "initial_state": state, "power_level_content_override": roomPower,
		// Room IDs are create event hashes (room v12): conversations made in
		// the same second by the same bot need something of their own.
		"creation_content": map[string]any{portalKey: Network + ":" + r.portalID(c.ID)}}
	if name != "" {
		req["name"] = name
	}
	p, err := r.t.CreatePortal(ctx, &importer.CreatePortal{PortalID: r.portalID(c.ID), Kind: c.Kind, Room: mustJSON(req),
		Timestamp: c.Created * 1000})
	if err != nil {
		return nil, err
	}
	if c.Kind == KindChannel || c.Kind == KindPrivate {
		child := mustJSON(map[string]any{"via": []string{server}, "suggested": c.Kind == KindChannel})
		if _, err := r.t.SendState(ctx, r.space.RoomID, r.ident.Bot, "m.space.child", string(p.RoomID), child); err != nil {
			return nil, fmt.Errorf("add to the space: %w", err)
		}
	}
	return p, nil
}

// alias is the event ID alias of a part of a message: mautrix bridgev2's
// deterministic event ID of (room, message ID "TEAM-CHANNEL-TS", part).
func alias(roomID id.RoomID, server, team, channel, ts, part string) id.EventID {
	h := sha256.New()
	h.Write([]byte(roomID))
	h.Write([]byte{0})
	h.Write([]byte(team + "-" + channel + "-" + ts))
	h.Write([]byte{0})
	h.Write([]byte(part))
	return id.EventID("$" + base64.RawURLEncoding.EncodeToString(h.Sum(nil)) + ":backfill." + server)
}

// tsMillis is a Slack ts in milliseconds.
func tsMillis(us int64) int64 { return us / 1000 }
