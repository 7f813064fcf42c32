package discord

import (
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
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// The export format: what DiscordChatExporter's JSON format writes, as far
// as an import reads it.

// Guild is the server a channel is of ("0", "Direct Messages" for DMs).
type Guild struct {
	ID      string `json:"id"`
	Name    string `json:"name"`
	IconURL string `json:"iconUrl"`
}

// Channel is a file's channel. A thread's category is the channel it
// branches off.
type Channel struct {
	ID         string `json:"id"`
	Type       string `json:"type"`
	CategoryID string `json:"categoryId"`
	Category   string `json:"category"`
	Name       string `json:"name"`
	Topic      string `json:"topic"`
}

// Message is one message of a file.
type Message struct {
	ID              string       `json:"id"`
	Type            string       `json:"type"`
	Timestamp       string       `json:"timestamp"`
	TimestampEdited string       `json:"timestampEdited"`
	IsPinned        bool         `json:"isPinned"`
	Content         string       `json:"content"`
	Author          User         `json:"author"`
	Attachments     []Attachment `json:"attachments"`
	Embeds          []Embed      `json:"embeds"`
	Stickers        []Sticker    `json:"stickers"`
	Reactions       []Reaction   `json:"reactions"`
	Mentions        []User       `json:"mentions"`
	Reference       *Reference   `json:"reference"`
}

// User is an author, a mentioned user or one who reacted.
type User struct {
	ID        string `json:"id"`
	Name      string `json:"name"`
	Nickname  string `json:"nickname"`
	IsBot     bool   `json:"isBot"`
	AvatarURL string `json:"avatarUrl"`
}

// Attachment is a file of a message; its URL is the CDN's, or a path
// relative to the file when the export was made with its media.
type Attachment struct {
	ID            string `json:"id"`
	URL           string `json:"url"`
	FileName      string `json:"fileName"`
	FileSizeBytes int64  `json:"fileSizeBytes"`
}

// Embed is a rich embed (bots, link previews).
type Embed struct {
	Title       string       `json:"title"`
	URL         string       `json:"url"`
	Description string       `json:"description"`
	Author      *EmbedAuthor `json:"author"`
	Fields      []EmbedField `json:"fields"`
	Footer      *EmbedFooter `json:"footer"`
}

// EmbedAuthor names who an embed is by.
type EmbedAuthor struct {
	Name string `json:"name"`
}

// EmbedField is a name and a value of an embed.
type EmbedField struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// EmbedFooter is an embed's small print.
type EmbedFooter struct {
	Text string `json:"text"`
}

// Sticker is a sticker of a message (Format Png, Apng, Gif or Lottie).
type Sticker struct {
	ID        string `json:"id"`
	Name      string `json:"name"`
	Format    string `json:"format"`
	SourceURL string `json:"sourceUrl"`
}

// Reaction is one emoji's reactions: Users may list fewer than Count.
type Reaction struct {
	Emoji Emoji  `json:"emoji"`
	Count int    `json:"count"`
	Users []User `json:"users"`
}

// Emoji is a Unicode emoji (no ID; Name is the character) or a custom one.
type Emoji struct {
	ID       string `json:"id"`
	Name     string `json:"name"`
	Code     string `json:"code"`
	ImageURL string `json:"imageUrl"`
}

// Reference is what a reply, a pin notice or a thread's first message
// points at.
type Reference struct {
	MessageID string `json:"messageId"`
	ChannelID string `json:"channelId"`
	GuildID   string `json:"guildId"`
}

// File is one exported channel.
type File struct {
	Path    string
	Guild   Guild
	Channel Channel
	// Messages is how many messages it holds and Ordered whether they are
	// in ID order, as the exporter writes them (after Check).
	Messages int
	Ordered  bool
}

// Export is the files of an import. Each is read as a stream, never whole.
type Export struct {
	Files []*File
}

// ErrFormat marks a file that is not a readable DiscordChatExporter JSON
// export.
var ErrFormat = errors.New("not a readable DiscordChatExporter JSON export")

func formatErr(name, format string, args ...any) error {
	return fmt.Errorf("%s: %s: %w", name, fmt.Sprintf(format, args...), ErrFormat)
}

// Open reads the heads (guild and channel) of the export's files: JSON
// files, or directories whose *.json files are taken.
func Open(paths ...string) (*Export, error) {
	e := &Export{}
	seen := map[string]bool{}
	for _, p := range paths {
		st, err := os.Stat(p)
		if err != nil {
			return nil, err
		}
		names := []string{p}
		if st.IsDir() {
			ents, err := os.ReadDir(p)
			if err != nil {
				return nil, err
			}
			names = names[:0]
			for _, ent := range ents {
				if !ent.IsDir() && strings.EqualFold(filepath.Ext(ent.Name()), ".json") {
					names = append(names, filepath.Join(p, ent.Name()))
				}
			}
			if len(names) == 0 {
				return nil, fmt.Errorf("%s: no .json files", p)
			}
		}
		sort.Strings(names)
		for _, n := range names {
			if abs, err := filepath.Abs(n); err == nil {
				if seen[abs] {
					continue
				}
				seen[abs] = true
			}
			f, err := readHead(n)
			if err != nil {
				return nil, err
			}
			e.Files = append(e.Files, f)
		}
	}
	if len(e.Files) == 0 {
		return nil, errors.New("no export files given")
	}
	return e, nil
}

// readHead reads a file up to its messages.
func readHead(name string) (*File, error) {
	fh, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	f := &File{Path: name}
	dec := jsontext.NewDecoder(bufio.NewReaderSize(fh, 64<<10))
	if err := f.toMessages(dec); err != nil {
		return nil, err
	}
	if f.Channel.ID == "" {
		return nil, formatErr(name, "no channel before the messages")
	}
	if _, err := strconv.ParseUint(f.Channel.ID, 10, 64); err != nil {
		return nil, formatErr(name, "channel id %q is not a Discord ID", f.Channel.ID)
	}
	if f.Guild.ID == "" {
		f.Guild = Guild{ID: "0", Name: "Direct Messages"}
	}
	return f, nil
}

// toMessages reads the head, leaving dec at the messages' '['.
func (f *File) toMessages(dec *jsontext.Decoder) error {
	if tok, err := dec.ReadToken(); err != nil || tok.Kind() != '{' {
		return formatErr(f.Path, "not a JSON object (%v)", errOr(err, "starts with "+tok.String()))
	}
	for dec.PeekKind() != '}' {
		tok, err := dec.ReadToken()
		if err != nil {
			return formatErr(f.Path, "%v", err)
		}
		switch tok.String() {
		case "messages":
			if dec.PeekKind() != '[' {
				return formatErr(f.Path, "messages is not a list")
			}
			_, err := dec.ReadToken()
			return err
		case "guild":
			err = json.UnmarshalDecode(dec, &f.Guild)
		case "channel":
			err = json.UnmarshalDecode(dec, &f.Channel)
		default:
			err = dec.SkipValue()
		}
		if err != nil {
			return formatErr(f.Path, "%s: %v", tok.String(), err)
		}
	}
	return formatErr(f.Path, "no messages")
}

func errOr(err error, s string) string {
	if err != nil {
		return err.Error()
	}
	return s
}

// Check reads every file through once before anything is imported: a
// damaged file (cut short, not JSON, a message that is not an object) is
// an error here, so that an import never stops halfway on it. It counts
// each file's messages; progress, when set, is called after each file with
// the messages counted so far.
func (e *Export) Check(ctx context.Context, progress func(messages int)) error {
	total := 0
	for _, f := range e.Files {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := f.check(); err != nil {
			return err
		}
		total += f.Messages
		if progress != nil {
			progress(total)
		}
	}
	return nil
}

func (f *File) check() error {
	fh, err := os.Open(f.Path)
	if err != nil {
		return err
	}
	defer fh.Close()
	dec := jsontext.NewDecoder(bufio.NewReaderSize(fh, 256<<10))
	if err := f.toMessages(dec); err != nil {
		return err
	}
	f.Messages, f.Ordered = 0, true
	var last uint64
	var probe struct {
		ID string `json:"id"`
	}
	for dec.PeekKind() != ']' {
		v, err := dec.ReadValue()
		if err != nil {
			return formatErr(f.Path, "message %d: %v", f.Messages, err)
		}
		if v.Kind() != '{' {
			return formatErr(f.Path, "message %d is not a JSON object", f.Messages)
		}
		probe.ID = ""
		if json.Unmarshal(v, &probe) == nil {
			if n, err := strconv.ParseUint(probe.ID, 10, 64); err == nil {
				if n < last {
					f.Ordered = false
				}
				last = n
			}
		}
		f.Messages++
	}
	if _, err := dec.ReadToken(); err != nil {
		return formatErr(f.Path, "%v", err)
	}
	for dec.PeekKind() != '}' {
		if err := dec.SkipValue(); err != nil { // the name, then its value
			return formatErr(f.Path, "%v", err)
		}
	}
	if _, err := dec.ReadToken(); err != nil {
		return formatErr(f.Path, "%v", err)
	}
	if _, err := dec.ReadToken(); err != io.EOF {
		return formatErr(f.Path, "more after the export's end")
	}
	return nil
}

// Item is a message read from a file, or why one could not be.
type Item struct {
	Msg *Message
	// ID is the message's ID as a number, TS its time in milliseconds.
	ID uint64
	TS int64
	// Err is a message that is not one (an ID that is not a snowflake…):
	// the import reports it and goes on.
	Err error
	// Fatal: the file cannot be read on (the import stops).
	Fatal bool
	File  *File
}

// Items reads a file's messages in ID order; a file that cannot be read
// ends the sequence with an error Item.
func (f *File) Items() iter.Seq[Item] {
	return func(yield func(Item) bool) {
		fh, err := os.Open(f.Path)
		if err != nil {
			yield(Item{Err: err, Fatal: true, File: f})
			return
		}
		defer fh.Close()
		// Names are not checked for duplicates here: check did, and refuses
		// a file that has some (the check took a quarter of the decoding).
		dec := jsontext.NewDecoder(bufio.NewReaderSize(fh, 256<<10), jsontext.AllowDuplicateNames(true))
		if err := f.toMessages(dec); err != nil {
			yield(Item{Err: err, Fatal: true, File: f})
			return
		}
		var held []Item // a file out of order is read whole, then sorted
		for i := 0; dec.PeekKind() != ']'; i++ {
			v, err := dec.ReadValue()
			if err != nil {
				yield(Item{Err: formatErr(f.Path, "%v", err), Fatal: true, File: f})
				return
			}
			it := parse(v, i, f)
			if !f.Ordered && it.Err == nil {
				held = append(held, it)
				continue
			}
			if !yield(it) {
				return
			}
		}
		slices.SortStableFunc(held, func(a, b Item) int { return cmp.Compare(a.ID, b.ID) })
		for _, it := range held {
			if !yield(it) {
				return
			}
		}
	}
}

func parse(v jsontext.Value, i int, f *File) Item {
	m := new(Message)
	if err := json.Unmarshal(v, m, jsontext.AllowDuplicateNames(true)); err != nil {
		return Item{Err: fmt.Errorf("message %d: %v", i, err), File: f}
	}
	id, err := strconv.ParseUint(m.ID, 10, 64)
	if err != nil || id == 0 {
		return Item{Err: fmt.Errorf("message %d: id %q is not a Discord ID", i, m.ID), File: f}
	}
	ts := snowflakeMillis(id)
	if t, err := time.Parse(time.RFC3339Nano, m.Timestamp); err == nil {
		ts = t.UnixMilli()
	}
	return Item{Msg: m, ID: id, TS: ts, File: f}
}

// snowflakeMillis is the time a Discord ID was made.
func snowflakeMillis(id uint64) int64 { return int64(id>>22) + 1420070400000 }

// parseStamp reads an exporter's time in milliseconds (0 if it is none).
func parseStamp(s string) int64 {
	if s == "" {
		return 0
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return 0
	}
	return t.UnixMilli()
}
