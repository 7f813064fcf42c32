// Package importer is what `tributary import` needs from the homeserver,
// whichever way it reaches it: Target, the operations an importer of
// another network's history (importer/slack) makes — portal rooms and
// where an import of each stopped, ghost users, media, and history as
// forward batches through the one batch-insert path of core/bridging
// (DESIGN decision 7). Local implements it on the core services of a
// stopped server's data; cmd/tributary implements it over a running
// server's control socket, whose handlers call Local in that server, so
// both ways meet the same rules and a running server publishes what is
// imported to its syncing clients at once.
//
// It imports core/bridging, core/rooms, core/types and the storage
// interfaces; importers import it and mautrix, never core themselves.
package importer

import (
	"context"
	"encoding/json/jsontext"
	"encoding/json/v2"
	"fmt"
	"io"
	"sync"

	"maunium.net/go/mautrix/id"
)

// Target is the homeserver as the importer of one network sees it.
type Target interface {
	// Identity is who the import acts as: the appservice whose namespace
	// holds the ghosts, and its bot, which creates the rooms.
	Identity(ctx context.Context) (*Identity, error)
	// Portal is the portal room of a conversation; nil if it has none yet.
	Portal(ctx context.Context, portalID string) (*Portal, error)
	// CreatePortal creates a portal's room as the bot and records it.
	CreatePortal(ctx context.Context, req *CreatePortal) (*Portal, error)
	// SetImportCursor records where an import of a portal stopped.
	SetImportCursor(ctx context.Context, portalID, cursor, meta string) error
	// EnsureGhost registers a ghost of the namespace if needed and gives it
	// the profile (only what changed is set).
	EnsureGhost(ctx context.Context, g *Ghost) error
	// Profile is a local user's display name and avatar; a types.NotFound
	// error if there is no such account.
	Profile(ctx context.Context, user id.UserID) (*Ghost, error)
	// Joined lists a room's joined members.
	Joined(ctx context.Context, roomID id.RoomID) ([]id.UserID, error)
	// Media is the mxc:// URI of a remote file already uploaded ("" if none).
	Media(ctx context.Context, remoteID string) (string, error)
	// Upload stores a file in the media repository as owner and records it
	// as the remote file's.
	Upload(ctx context.Context, up *Upload, body io.Reader) (string, error)
	// BatchSend appends events to a room's timeline, all or none, and
	// returns their real IDs.
	BatchSend(ctx context.Context, roomID id.RoomID, evs []*Event) ([]id.EventID, error)
	// ResolveAliases maps event ID aliases to the real events (those
	// unknown are left out).
	ResolveAliases(ctx context.Context, aliases []id.EventID) (map[id.EventID]id.EventID, error)
	// SendState sends a state event as sender (the bot or a ghost).
	SendState(ctx context.Context, roomID id.RoomID, sender id.UserID, evType, stateKey string, content jsontext.Value) (id.EventID, error)
}

// Identity is the appservice an import acts as.
type Identity struct {
	AppServiceID string    `json:"appservice_id"`
	Bot          id.UserID `json:"bot"`
	ServerName   string    `json:"server_name"`
}

// Portal is a conversation's room and where its import stopped.
type Portal struct {
	Network  string    `json:"network"`
	PortalID string    `json:"portal_id"`
	RoomID   id.RoomID `json:"room_id"`
	Kind     string    `json:"kind"`
	Cursor   string    `json:"cursor"`
	Meta     string    `json:"meta"`
}

// CreatePortal is a portal to create: its key and kind, and the room as a
// createRoom request body (name, topic, preset, creation_content,
// initial_state, power_level_content_override…).
type CreatePortal struct {
	PortalID string         `json:"portal_id"`
	Kind     string         `json:"kind"`
	Room     jsontext.Value `json:"room"`
	// Timestamp is the origin_server_ts of the room's first events (the
	// conversation's creation), in milliseconds.
	Timestamp int64 `json:"timestamp"`
}

// Ghost is a user's profile.
type Ghost struct {
	UserID      id.UserID `json:"user_id"`
	DisplayName string    `json:"displayname"`
	AvatarURL   string    `json:"avatar_url"`
}

// Upload is a remote file to store.
type Upload struct {
	RemoteID    string    `json:"remote_id"`
	Owner       id.UserID `json:"owner"`
	ContentType string    `json:"content_type"`
	FileName    string    `json:"file_name"`
	Size        int64     `json:"size"`
}

// Event is one event of a batch, with its original sender and time and
// the alias it is known by (core/bridging.BatchEvent).
type Event struct {
	Alias          id.EventID     `json:"event_id,omitempty"`
	Type           string         `json:"type"`
	StateKey       *string        `json:"state_key,omitempty"`
	Sender         id.UserID      `json:"sender"`
	Content        jsontext.Value `json:"content"`
	OriginServerTS int64          `json:"origin_server_ts"`
	// Message and Part name the network message the event is (a part of),
	// as the network's bridge names them (bridgev2's networkid.MessageID and
	// PartID), for an event with an alias: recorded, so that the live bridge
	// can act on the message (storage.BridgeMessage). Empty for events that
	// are no message part of their own (edits, state), but see Emoji.
	// SenderID is the network's ID of the sender as the bridge names its
	// ghosts (also when the sender is a Matrix user standing for them).
	//
	// Emoji, for an m.reaction, is its emoji as the bridge names it
	// (networkid.EmojiID): the reaction is recorded too, Message and Part
	// then naming the message part reacted to and SenderID who reacted, so
	// that the live bridge can remove it on the network and redact it when
	// it is removed there.
	Message  string `json:"message,omitempty"`
	Part     string `json:"part,omitempty"`
	SenderID string `json:"sender_id,omitempty"`
	Emoji    string `json:"emoji,omitempty"`
}

// Span is where one source message's events start in a batch; Key names
// the message (its timestamp or ID) in reports.
type Span struct {
	Start int
	Key   string
}

// Unwritten drops from a batch the events whose aliases are taken already
// (an earlier run wrote them before it was stopped). It returns the events
// left, the spans moved to match, and how many messages had all their
// events written before.
func Unwritten(ctx context.Context, t Target, evs []*Event, spans []Span) ([]*Event, []Span, int, error) {
	var aliases []id.EventID
	for _, ev := range evs {
		if ev.Alias != "" {
			aliases = append(aliases, ev.Alias)
		}
	}
	if len(aliases) == 0 {
		return evs, spans, 0, nil
	}
	have, err := t.ResolveAliases(ctx, aliases)
	if err != nil || len(have) == 0 {
		return evs, spans, 0, err
	}
	keep := make([]*Event, 0, len(evs))
	newStart := make([]int, len(evs)+1)
	for i, ev := range evs {
		newStart[i] = len(keep)
		if _, ok := have[ev.Alias]; ev.Alias != "" && ok {
			continue
		}
		keep = append(keep, ev)
	}
	newStart[len(evs)] = len(keep)
	out := make([]Span, 0, len(spans))
	written := 0
	for i, sp := range spans {
		end := len(evs)
		if i+1 < len(spans) {
			end = spans[i+1].Start
		}
		if end > sp.Start && newStart[end] == newStart[sp.Start] {
			written++
		}
		out = append(out, Span{Start: newStart[sp.Start], Key: sp.Key})
	}
	return keep, out, written, nil
}

// MemberEvent is a membership of user in a room of the import: an invite
// is sent by bot (marked is_direct for a direct chat), any other
// membership by the user, with their name and avatar.
func MemberEvent(bot, user id.UserID, name, avatar, membership string, direct bool, ts int64) *Event {
	content := map[string]any{"membership": membership}
	if name != "" {
		content["displayname"] = name
	}
	if avatar != "" {
		content["avatar_url"] = avatar
	}
	if direct && membership == "invite" {
		content["is_direct"] = true
	}
	sender := user
	if membership == "invite" {
		sender = bot
	}
	raw, _ := json.Marshal(content) // a map of strings and bools
	key := string(user)
	return &Event{Type: "m.room.member", StateKey: &key, Sender: sender, Content: raw, OriginServerTS: ts}
}

// Each runs fn on the items, workers of them at once, in the order given.
// The first error (named by label) stops handing out items, lets those
// running finish, and is returned.
func Each[T any](ctx context.Context, workers int, items []T, label func(T) string, fn func(context.Context, T) error) error {
	work := make(chan T)
	errs := make(chan error, len(items))
	var wg sync.WaitGroup
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for it := range work {
				if err := fn(cctx, it); err != nil {
					errs <- fmt.Errorf("%s: %w", label(it), err)
					cancel()
				}
			}
		}()
	}
feed:
	for _, it := range items {
		select {
		case work <- it:
		case <-cctx.Done():
			break feed
		}
	}
	close(work)
	wg.Wait()
	close(errs)
	return <-errs
}
