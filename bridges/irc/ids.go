package irc

import (
	"context"
	"fmt"
	"hash/fnv"
	"strconv"
	"strings"
	"sync"
	"time"

	"maunium.net/go/mautrix/bridgev2/database"
	"maunium.net/go/mautrix/bridgev2/networkid"
	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/bridges/irc/ircconn"
)

// Portal IDs are "<network>/<folded channel>" for channels and
// "<network>/@<ghost ID>" for private conversations (with the login as
// receiver): a DM portal follows its IRC user across nick changes, as the
// ghost does.

func channelPortalKey(network, foldedChannel string) networkid.PortalKey {
	return networkid.PortalKey{ID: networkid.PortalID(network + "/" + foldedChannel)}
}

func dmPortalKey(network string, ghost networkid.UserID, login networkid.UserLoginID) networkid.PortalKey {
	return networkid.PortalKey{ID: networkid.PortalID(network + "/@" + string(ghost)), Receiver: login}
}

// parsePortalID splits a portal ID: the channel (folded), or the ghost of
// a DM.
func parsePortalID(pid networkid.PortalID) (network, channel string, dm networkid.UserID, ok bool) {
	network, rest, ok := strings.Cut(string(pid), "/")
	if !ok || rest == "" {
		return "", "", "", false
	}
	if strings.HasPrefix(rest, "@") {
		return network, "", networkid.UserID(rest[1:]), len(rest) > 1
	}
	return network, rest, "", true
}

// loginID is a Matrix user's login on the network: one per user, so a
// second login with another nick replaces the first.
func loginID(network string, user id.UserID) networkid.UserLoginID {
	return networkid.UserLoginID(network + "/" + string(user))
}

// messageID is an IRC message's ID: its msgid where the server tags lines
// with one (the same for every connection, and kept in InspIRCd's history
// replay), else one made of what every connection sees alike.
func messageID(m *ircconn.Message) networkid.MessageID {
	if mid := m.MsgID(); mid != "" {
		return networkid.MessageID(mid)
	}
	return syntheticMessageID(m.Prefix().Name, m.Time(), m.Trailing())
}

// syntheticMessageID identifies a message without msgid: its sender, the
// server time (milliseconds; zero without server-time) and a hash of the
// text.
func syntheticMessageID(nick string, ts time.Time, text string) networkid.MessageID {
	h := fnv.New64a()
	h.Write([]byte(text))
	var ms int64
	if !ts.IsZero() {
		ms = ts.UnixMilli()
	}
	return networkid.MessageID(fmt.Sprintf("~%s/%d/%x", nick, ms, h.Sum64()))
}

// isRealMsgID reports whether a message ID is a server msgid (usable in
// +draft/reply and CHATHISTORY) rather than one the bridge made up.
func isRealMsgID(mid networkid.MessageID) bool {
	return mid != "" && !strings.HasPrefix(string(mid), "~") && !strings.HasPrefix(string(mid), "mx/")
}

// kvStore is the part of bridgev2's key-value store the nick registry uses.
type kvStore interface {
	Get(ctx context.Context, key database.Key) string
	Set(ctx context.Context, key database.Key, value string)
	Delete(ctx context.Context, key database.Key)
}

// nickRegistry maps nicks to ghost IDs so that a ghost follows its user
// across NICK changes. A nick seen for the first time gets its folded form
// as ghost ID (with "_2", "_3"… when another user, who changed nick since,
// already has that ID); NICK moves the ghost to the new nick. Both
// directions are kept in the bridge's key-value store, so they survive
// restarts. Every connection in a channel sees the same NICK: renaming is
// idempotent. It is safe for concurrent use.
type nickRegistry struct {
	kv      kvStore
	network string

	mu   sync.Mutex
	fold func(string) string
}

func newNickRegistry(kv kvStore, network string) *nickRegistry {
	return &nickRegistry{kv: kv, network: network, fold: ircconn.CaseMappingRFC1459.Fold}
}

// setCaseMapping follows the server's CASEMAPPING.
func (r *nickRegistry) setCaseMapping(cm ircconn.CaseMapping) {
	r.mu.Lock()
	r.fold = cm.Fold
	r.mu.Unlock()
}

func (r *nickRegistry) nickKey(folded string) database.Key {
	return database.Key("irc:" + r.network + ":nick:" + folded)
}

func (r *nickRegistry) ghostKey(ghost networkid.UserID) database.Key {
	return database.Key("irc:" + r.network + ":ghost:" + string(ghost))
}

// GhostID returns the ghost of whoever has nick now, assigning one when the
// nick is new.
func (r *nickRegistry) GhostID(ctx context.Context, nick string) networkid.UserID {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.ghostIDLocked(ctx, nick)
}

func (r *nickRegistry) ghostIDLocked(ctx context.Context, nick string) networkid.UserID {
	folded := r.fold(nick)
	if g := r.kv.Get(ctx, r.nickKey(folded)); g != "" {
		return networkid.UserID(g)
	}
	ghost := networkid.UserID(folded)
	for i := 2; ; i++ {
		holder := r.kv.Get(ctx, r.ghostKey(ghost))
		if holder == "" || r.fold(holder) == folded {
			break
		}
		ghost = networkid.UserID(folded + "_" + strconv.Itoa(i))
	}
	r.kv.Set(ctx, r.nickKey(folded), string(ghost))
	r.kv.Set(ctx, r.ghostKey(ghost), nick)
	return ghost
}

// Rename moves the ghost of oldNick to newNick. It returns the ghost and
// whether this call changed anything (false when another connection's copy
// of the same NICK got here first).
func (r *nickRegistry) Rename(ctx context.Context, oldNick, newNick string) (networkid.UserID, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	oldF, newF := r.fold(oldNick), r.fold(newNick)
	if g := r.kv.Get(ctx, r.nickKey(newF)); g != "" && r.kv.Get(ctx, r.nickKey(oldF)) == "" &&
		r.kv.Get(ctx, r.ghostKey(networkid.UserID(g))) == newNick {
		return networkid.UserID(g), false // already renamed
	}
	ghost := r.ghostIDLocked(ctx, oldNick)
	if oldF != newF {
		r.kv.Delete(ctx, r.nickKey(oldF))
	}
	r.kv.Set(ctx, r.nickKey(newF), string(ghost))
	changed := r.kv.Get(ctx, r.ghostKey(ghost)) != newNick
	r.kv.Set(ctx, r.ghostKey(ghost), newNick)
	return ghost, changed
}

// Nick returns the ghost's current nick, or "" when the ghost is unknown.
func (r *nickRegistry) Nick(ctx context.Context, ghost networkid.UserID) string {
	return r.kv.Get(ctx, r.ghostKey(ghost))
}
