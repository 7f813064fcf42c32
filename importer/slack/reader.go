package slack

import (
	"archive/zip"
	"bufio"
	"cmp"
	"context"
	"encoding/json/jsontext"
	"encoding/json/v2"
	"errors"
	"fmt"
	"io"
	"iter"
	"os"
	"path"
	"slices"
	"sort"
	"strings"
)

// The export format: what Slack's "Export data" writes, as far as an
// import reads it.

// User is an entry of users.json (org_users.json in Enterprise Grid).
type User struct {
	ID      string  `json:"id"`
	TeamID  string  `json:"team_id"`
	Name    string  `json:"name"`
	Deleted bool    `json:"deleted"`
	Real    string  `json:"real_name"`
	IsBot   bool    `json:"is_bot"`
	Profile Profile `json:"profile"`
}

// Profile is a user's profile.
type Profile struct {
	RealName    string `json:"real_name"`
	DisplayName string `json:"display_name"`
	Email       string `json:"email"`
	Image72     string `json:"image_72"`
	Image512    string `json:"image_512"`
	ImageOrig   string `json:"image_original"`
	AvatarHash  string `json:"avatar_hash"`
	BotID       string `json:"bot_id"`
}

// Conversation is a channel (channels.json), private channel
// (groups.json), group DM (mpims.json) or DM (dms.json).
type Conversation struct {
	ID         string   `json:"id"`
	Name       string   `json:"name"`
	Created    int64    `json:"created"`
	Creator    string   `json:"creator"`
	IsArchived bool     `json:"is_archived"`
	Members    []string `json:"members"`
	Pins       []Pin    `json:"pins"`
	Topic      Text     `json:"topic"`
	Purpose    Text     `json:"purpose"`
	// Kind is where it was listed: KindChannel, KindPrivate, KindGroup, KindDM.
	Kind string `json:"-"`
	// Folder is its folder of day files ("" if it has none).
	Folder string `json:"-"`
	// Messages is how many messages its day files hold (after Check).
	Messages int `json:"-"`
	days     []*zip.File
}

// Conversation kinds.
const (
	KindChannel = "channel"
	KindPrivate = "private"
	KindGroup   = "group"
	KindDM      = "dm"
)

// Text is a topic or purpose.
type Text struct {
	Value   string `json:"value"`
	Creator string `json:"creator"`
	LastSet int64  `json:"last_set"`
}

// Pin is a pinned item of a conversation (id is the message's ts).
type Pin struct {
	ID   string `json:"id"`
	Type string `json:"type"`
	User string `json:"user"`
}

// Message is one message of a day file.
type Message struct {
	Type         string         `json:"type"`
	Subtype      string         `json:"subtype"`
	TS           string         `json:"ts"`
	User         string         `json:"user"`
	BotID        string         `json:"bot_id"`
	Username     string         `json:"username"`
	Text         string         `json:"text"`
	ThreadTS     string         `json:"thread_ts"`
	ParentUserID string         `json:"parent_user_id"`
	Hidden       bool           `json:"hidden"`
	Edited       *Edited        `json:"edited"`
	Reactions    []Reaction     `json:"reactions"`
	Files        []File         `json:"files"`
	Attachments  []Attachment   `json:"attachments"`
	UserProfile  *UserProfile   `json:"user_profile"`
	BotProfile   *BotProfile    `json:"bot_profile"`
	PinnedTo     []string       `json:"pinned_to"`
	Topic        string         `json:"topic"`
	Purpose      string         `json:"purpose"`
	Name         string         `json:"name"`
	OldName      string         `json:"old_name"`
	Item         *PinnedItem    `json:"item"`
	Blocks       jsontext.Value `json:"blocks"`
}

// Edited says who last edited a message, and when.
type Edited struct {
	User string `json:"user"`
	TS   string `json:"ts"`
}

// Reaction is one emoji's reactions: Users may list fewer than Count.
type Reaction struct {
	Name  string   `json:"name"`
	Users []string `json:"users"`
	Count int      `json:"count"`
}

// File is a shared file; Mode "tombstone" or "hidden_by_limit" means its
// content is gone.
type File struct {
	ID                 string `json:"id"`
	Name               string `json:"name"`
	Title              string `json:"title"`
	Mimetype           string `json:"mimetype"`
	Size               int64  `json:"size"`
	Mode               string `json:"mode"`
	URLPrivate         string `json:"url_private"`
	URLPrivateDownload string `json:"url_private_download"`
	Permalink          string `json:"permalink"`
	OriginalW          int    `json:"original_w"`
	OriginalH          int    `json:"original_h"`
}

// Attachment is a legacy message attachment (bots, unfurls).
type Attachment struct {
	Fallback  string `json:"fallback"`
	Pretext   string `json:"pretext"`
	Title     string `json:"title"`
	TitleLink string `json:"title_link"`
	Text      string `json:"text"`
	Footer    string `json:"footer"`
}

// UserProfile is the profile a message carries of its sender.
type UserProfile struct {
	RealName    string `json:"real_name"`
	DisplayName string `json:"display_name"`
	Name        string `json:"name"`
	Image72     string `json:"image_72"`
}

// BotProfile is the bot a bot message comes from.
type BotProfile struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// PinnedItem is what a pinned_item message pinned.
type PinnedItem struct {
	Type string `json:"type"`
	TS   string `json:"ts"`
}

// Export is an open export. Its day files are read one at a time, never the
// archive whole.
type Export struct {
	name          string
	f             *os.File
	zr            *zip.Reader
	Users         []User
	Conversations []*Conversation
	// TeamID is the workspace's (the team_id most users have).
	TeamID string
	// Stray are day files of folders that no conversation lists.
	Stray []string
}

// ErrFormat marks an archive that is not a readable Slack export.
var ErrFormat = errors.New("not a readable Slack export")

func formatErr(name, format string, args ...any) error {
	return fmt.Errorf("%s: %s: %w", name, fmt.Sprintf(format, args...), ErrFormat)
}

// Open opens an export and reads its lists of users and conversations.
func Open(name string) (*Export, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	zr, err := zip.NewReader(f, st.Size())
	if err != nil {
		f.Close()
		return nil, formatErr(name, "not a zip archive, or a truncated one (%v)", err)
	}
	e := &Export{name: name, f: f, zr: zr}
	if err := e.load(); err != nil {
		f.Close()
		return nil, err
	}
	return e, nil
}

// Close closes the archive.
func (e *Export) Close() error { return e.f.Close() }

// Name is the archive's file name.
func (e *Export) Name() string { return e.name }

func (e *Export) load() error {
	top := map[string]*zip.File{}
	folders := map[string][]*zip.File{}
	for _, f := range e.zr.File {
		name := strings.TrimPrefix(f.Name, "./")
		if strings.HasSuffix(name, "/") || strings.HasPrefix(path.Base(name), ".") {
			continue
		}
		dir, file := path.Split(name)
		dir = strings.TrimSuffix(dir, "/")
		switch {
		case dir == "":
			top[file] = f
		case !strings.Contains(dir, "/") && isDayFile(file):
			folders[dir] = append(folders[dir], f)
		}
	}
	users := top["users.json"]
	if users == nil {
		users = top["org_users.json"]
	}
	if users == nil {
		return formatErr(e.name, "no users.json")
	}
	if top["channels.json"] == nil && top["groups.json"] == nil && top["dms.json"] == nil && top["mpims.json"] == nil {
		return formatErr(e.name, "no channels.json, groups.json, dms.json or mpims.json")
	}
	if err := e.readJSON(users, &e.Users); err != nil {
		return err
	}
	for _, l := range []struct{ file, kind string }{{"channels.json", KindChannel}, {"groups.json", KindPrivate},
		{"mpims.json", KindGroup}, {"dms.json", KindDM}} {
		f := top[l.file]
		if f == nil {
			continue
		}
		var list []*Conversation
		if err := e.readJSON(f, &list); err != nil {
			return err
		}
		for _, c := range list {
			if c == nil || c.ID == "" {
				return formatErr(e.name, "%s lists a conversation without an id", l.file)
			}
			c.Kind = l.kind
			e.Conversations = append(e.Conversations, c)
		}
	}
	used := map[string]bool{}
	for _, c := range e.Conversations {
		for _, dir := range []string{c.Name, c.ID} {
			if dir != "" && folders[dir] != nil && !used[dir] {
				c.Folder, c.days = dir, folders[dir]
				used[dir] = true
				break
			}
		}
		sort.Slice(c.days, func(i, j int) bool { return c.days[i].Name < c.days[j].Name })
	}
	for dir, files := range folders {
		if !used[dir] {
			for _, f := range files {
				e.Stray = append(e.Stray, f.Name)
			}
		}
	}
	sort.Strings(e.Stray)
	teams := map[string]int{}
	for _, u := range e.Users {
		if u.TeamID != "" {
			teams[u.TeamID]++
		}
	}
	for t, n := range teams {
		if n > teams[e.TeamID] || n == teams[e.TeamID] && t < e.TeamID {
			e.TeamID = t
		}
	}
	if e.TeamID == "" {
		return formatErr(e.name, "users.json names no team_id")
	}
	return nil
}

// isDayFile reports whether a file name is YYYY-MM-DD.json.
func isDayFile(name string) bool {
	if len(name) != len("2006-01-02.json") || !strings.HasSuffix(name, ".json") {
		return false
	}
	for i, c := range name[:10] {
		if i == 4 || i == 7 {
			if c != '-' {
				return false
			}
		} else if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

func (e *Export) readJSON(f *zip.File, v any) error {
	rc, err := f.Open()
	if err != nil {
		return formatErr(e.name, "%s: %v", f.Name, err)
	}
	defer rc.Close()
	if err := json.UnmarshalRead(rc, v); err != nil {
		return formatErr(e.name, "%s: %v", f.Name, err)
	}
	return nil
}

// Check reads every day file through once before anything is imported: a
// damaged archive (a checksum that fails, a file cut short, JSON that is
// not a list of objects) is an error here, so that an import never stops
// halfway on it. It counts each conversation's messages; progress, when
// set, is called after each day file with the messages counted so far.
func (e *Export) Check(ctx context.Context, progress func(messages int)) error {
	total := 0
	for _, c := range e.Conversations {
		c.Messages = 0
		for _, f := range c.days {
			if err := ctx.Err(); err != nil {
				return err
			}
			n, err := e.checkDay(f)
			if err != nil {
				return err
			}
			c.Messages += n
			total += n
			if progress != nil {
				progress(total)
			}
		}
	}
	return nil
}

// checkDay reads a day file whole (the zip reader checks its CRC at its
// end) and counts its messages.
func (e *Export) checkDay(f *zip.File) (int, error) {
	rc, err := f.Open()
	if err != nil {
		return 0, formatErr(e.name, "%s: %v", f.Name, err)
	}
	defer rc.Close()
	dec := jsontext.NewDecoder(bufio.NewReaderSize(rc, 64<<10))
	if tok, err := dec.ReadToken(); err != nil || tok.Kind() != '[' {
		return 0, formatErr(e.name, "%s: not a JSON list of messages (%v)", f.Name, errOr(err, "starts with "+tok.String()))
	}
	n := 0
	for dec.PeekKind() != ']' {
		v, err := dec.ReadValue()
		if err != nil {
			return 0, formatErr(e.name, "%s: %v", f.Name, err)
		}
		if v.Kind() != '{' {
			return 0, formatErr(e.name, "%s: message %d is not a JSON object", f.Name, n)
		}
		n++
	}
	if _, err := dec.ReadToken(); err != nil {
		return 0, formatErr(e.name, "%s: %v", f.Name, err)
	}
	if _, err := io.Copy(io.Discard, rc); err != nil {
		return 0, formatErr(e.name, "%s: %v", f.Name, err)
	}
	return n, nil
}

func errOr(err error, s string) string {
	if err != nil {
		return err.Error()
	}
	return s
}

// Item is a message read from a day file, or why one could not be.
type Item struct {
	Msg *Message
	// Err is a message that is not one (a ts that is not a string…): the
	// import reports it and goes on. Day is its file.
	Err error
	Day string
}

// Messages reads a conversation's messages day by day, in ts order within
// each day; a day file that cannot be read at all ends the sequence with
// an error Item.
func (e *Export) Messages(c *Conversation) iter.Seq[Item] {
	return func(yield func(Item) bool) {
		for _, f := range c.days {
			msgs, err := e.readDay(f)
			if err != nil {
				yield(Item{Err: err, Day: f.Name})
				return
			}
			for _, it := range msgs {
				if !yield(it) {
					return
				}
			}
		}
	}
}

// readDay reads a day file's messages, in ts order, those that cannot be
// read after them as errors. Each message is decoded from the stream in one
// pass, without checking its names for duplicates (Check did, and refuses
// an archive that has some): reading each message as a value first, then
// decoding that, with the check, took twice the CPU. A day file holding a
// message that does not decode is read again the careful way, which tells
// that message apart from the rest.
func (e *Export) readDay(f *zip.File) ([]Item, error) {
	if out, ok := e.readDayFast(f); ok {
		return sortDay(out, nil), nil
	}
	return e.readDayCareful(f)
}

// readDayFast is readDay when every message decodes; ok is false otherwise.
func (e *Export) readDayFast(f *zip.File) (out []Item, ok bool) {
	rc, err := f.Open()
	if err != nil {
		return nil, false
	}
	defer rc.Close()
	dec := jsontext.NewDecoder(bufio.NewReaderSize(rc, 64<<10), jsontext.AllowDuplicateNames(true))
	if tok, err := dec.ReadToken(); err != nil || tok.Kind() != '[' {
		return nil, false
	}
	for dec.PeekKind() != ']' {
		m := new(Message)
		if err := json.UnmarshalDecode(dec, m); err != nil {
			return nil, false
		}
		if _, ok := parseTS(m.TS); !ok {
			return nil, false
		}
		out = append(out, Item{Msg: m, Day: f.Name})
	}
	if _, err := dec.ReadToken(); err != nil {
		return nil, false
	}
	return out, true
}

// readDayCareful is readDay that reads each message as a JSON value first,
// so that one that does not decode is reported and the rest are read.
func (e *Export) readDayCareful(f *zip.File) ([]Item, error) {
	rc, err := f.Open()
	if err != nil {
		return nil, formatErr(e.name, "%s: %v", f.Name, err)
	}
	defer rc.Close()
	dec := jsontext.NewDecoder(bufio.NewReaderSize(rc, 64<<10))
	if tok, err := dec.ReadToken(); err != nil || tok.Kind() != '[' {
		return nil, formatErr(e.name, "%s: not a JSON list of messages", f.Name)
	}
	var out, bad []Item
	for i := 0; dec.PeekKind() != ']'; i++ {
		v, err := dec.ReadValue()
		if err != nil {
			return nil, formatErr(e.name, "%s: %v", f.Name, err)
		}
		m := new(Message)
		if err := json.Unmarshal(v, m); err != nil {
			bad = append(bad, Item{Err: fmt.Errorf("message %d: %v", i, err), Day: f.Name})
			continue
		}
		if _, ok := parseTS(m.TS); !ok {
			bad = append(bad, Item{Err: fmt.Errorf("message %d: ts %q is not a Slack timestamp", i, m.TS), Day: f.Name})
			continue
		}
		out = append(out, Item{Msg: m, Day: f.Name})
	}
	return sortDay(out, bad), nil
}

// sortDay puts a day's messages in ts order, the bad ones after them:
// Slack writes a day in ts order; the import's cursor and thread
// references lean on it.
func sortDay(out, bad []Item) []Item {
	slices.SortStableFunc(out, func(a, b Item) int {
		ta, _ := parseTS(a.Msg.TS)
		tb, _ := parseTS(b.Msg.TS)
		return cmp.Compare(ta, tb)
	})
	return append(out, bad...)
}

// parseTS reads a Slack ts ("1700000000.000100") as microseconds.
func parseTS(ts string) (int64, bool) {
	sec, frac, ok := strings.Cut(ts, ".")
	if sec == "" || len(sec) > 12 || len(frac) > 6 || !ok && frac != "" {
		return 0, false
	}
	var us int64
	for _, c := range sec {
		if c < '0' || c > '9' {
			return 0, false
		}
		us = us*10 + int64(c-'0')
	}
	var f int64
	for i := 0; i < 6; i++ {
		f *= 10
		if i < len(frac) {
			c := frac[i]
			if c < '0' || c > '9' {
				return 0, false
			}
			f += int64(c - '0')
		}
	}
	return us*1_000_000 + f, true
}
