package sdk

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"maunium.net/go/mautrix/bridgev2"
	"maunium.net/go/mautrix/bridgev2/database"
	"maunium.net/go/mautrix/bridgev2/networkid"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/plugins/proto"
)

// Imported messages: `tributary import` writes a network's history into
// the portal rooms through batch send, not through the bridge, so
// bridgev2's message table knows none of it, and would drop every edit,
// reaction, deletion, reply or read receipt that points at an imported
// message. The import records which network message (and part) each event
// is (and which message each imported reaction is to, by whom, with which
// emoji); the host answers from that record (FindMessage), and the SDK
// writes the parts into bridgev2's message table (with their thread's root)
// and the reactions into its reaction table the first time something
// points at them, so that bridgev2 then handles them as messages and
// reactions it bridged:
//
//   - Matrix → network: done for every plugin. Before an edit, reaction,
//     redaction (of a message or of a reaction), reply, thread message or
//     read receipt goes to bridgev2, the SDK makes sure the events it
//     points at are known.
//   - network → Matrix: a connector queues its remote events through
//     QueueRemoteEvent instead of bridgev2's own (UserLogin.QueueRemoteEvent,
//     Bridge.QueueRemoteEvent); for those that target a message (edits,
//     reactions, reaction removals, deletions:
//     bridgev2.RemoteEventWithTargetMessage) the target is made known
//     first, with its imported reactions. A converted message's thread root or
//     reply target is made known with ImportedMessage, called from the
//     connector's ConvertMessage (bridgev2 looks them up after converting).
//
// The import must give the events the IDs the bridge gives the messages
// (networkid.MessageID and PartID) and reactions (networkid.EmojiID), as
// importer/slack and importer/discord do; the plugin's bot must be in the
// room. Reactions of imports made before the host recorded them (migration
// 0150) are not known: removing one is not bridged.

// QueueRemoteEvent queues a remote event as login.QueueRemoteEvent does,
// after making sure bridgev2 knows the message it targets if an import
// wrote that message. It waits for the host (one call, only for a target
// bridgev2 does not know) but not for the event to be handled.
func QueueRemoteEvent(login *bridgev2.UserLogin, evt bridgev2.RemoteEvent) bridgev2.EventHandlingResult {
	if t, ok := evt.(bridgev2.RemoteEventWithTargetMessage); ok && t.GetTargetMessage() != "" {
		ctx := login.Log.WithContext(context.Background())
		if portal, err := login.Bridge.GetExistingPortalByKey(ctx, evt.GetPortalKey()); err == nil && portal != nil && portal.MXID != "" {
			if _, err := ImportedMessage(ctx, portal, t.GetTargetMessage()); err != nil {
				login.Log.Warn().Err(err).Str("target_message_id", string(t.GetTargetMessage())).
					Msg("Failed to look the target message up among imported messages")
			}
		}
	}
	return login.QueueRemoteEvent(evt)
}

// ImportedMessage returns the parts of message msgID of portal as
// bridgev2's message table has them, first recording them there if an
// import wrote the message and the table does not have it yet; nil if
// neither knows it. A plugin not run by Serve finds nothing.
func ImportedMessage(ctx context.Context, portal *bridgev2.Portal, msgID networkid.MessageID) ([]*database.Message, error) {
	br := portal.Bridge
	parts, err := br.DB.Message.GetAllPartsByID(ctx, portal.Receiver, msgID)
	if err != nil || len(parts) > 0 {
		return parts, err
	}
	m, ok := br.Matrix.(*Matrix)
	if !ok || portal.MXID == "" {
		return nil, nil
	}
	resp, err := m.host.FindMessage(ctx, &proto.FindMessageRequest{Network: br.Network.GetName().NetworkID,
		PortalId: string(portal.ID), Receiver: string(portal.Receiver), MessageId: string(msgID)})
	if err != nil {
		return nil, notFoundIsNil(err)
	}
	return m.recordImported(ctx, resp)
}

// knowImportedTargets makes sure bridgev2 knows the events evt points at
// (see above): those of its relation, its reply, its redaction, its
// receipts.
func (m *Matrix) knowImportedTargets(ctx context.Context, evt *event.Event) {
	if portal, err := m.br.GetPortalByMXID(ctx, evt.RoomID); err != nil || portal == nil {
		return // not a portal: bridgev2 bridges nothing of it
	}
	var targets []id.EventID
	switch c := evt.Content.Parsed.(type) {
	case *event.MessageEventContent:
		if rel := c.RelatesTo; rel != nil {
			targets = append(targets, rel.EventID, rel.GetReplyTo())
		}
	case *event.ReactionEventContent:
		targets = append(targets, c.RelatesTo.EventID)
	case *event.RedactionEventContent:
		targets = append(targets, c.Redacts, evt.Redacts)
	case *event.ReceiptEventContent:
		// Receipts name events by their real IDs, where references in
		// content name imported ones by alias (the host rewrites those):
		// a receipt of an imported event is moved to its alias, which is
		// what bridgev2's table has.
		for eventID, receipts := range *c {
			if alias := m.importedAlias(ctx, eventID); alias != "" {
				delete(*c, eventID)
				(*c)[alias] = receipts
			}
		}
	}
	for _, t := range targets {
		if t != "" {
			m.importedAlias(ctx, t)
		}
	}
}

// importedAlias makes sure bridgev2 knows the imported message event t is
// part of (see above), and returns the alias t is a real ID of ("" if t is
// no such real ID).
func (m *Matrix) importedAlias(ctx context.Context, t id.EventID) id.EventID {
	if known, err := m.br.DB.Message.GetPartByMXID(ctx, t); err != nil || known != nil {
		return ""
	}
	if known, err := m.br.DB.Reaction.GetByMXID(ctx, t); err != nil || known != nil {
		return ""
	}
	m.mu.Lock()
	alias, ok := m.importedReal[t]
	m.mu.Unlock()
	if ok {
		return alias
	}
	resp, err := m.host.FindMessage(ctx, &proto.FindMessageRequest{Network: m.br.Network.GetName().NetworkID,
		EventId: string(t)})
	var parts []*database.Message
	if err == nil {
		parts, err = m.recordImported(ctx, resp)
	}
	if status.Code(err) != codes.NotFound {
		if err = notFoundIsNil(err); err != nil {
			m.log.Warn().Err(err).Stringer("target_event_id", t).Msg("Failed to look the event up among imported messages")
		}
		if err != nil || len(parts) == 0 {
			return "" // asked again next time
		}
	}
	for _, p := range resp.GetParts() {
		if id.EventID(p.EventId) == t && p.Alias != "" {
			alias = id.EventID(p.Alias)
		}
	}
	for _, r := range resp.GetReactions() {
		if id.EventID(r.EventId) == t && r.Alias != "" {
			alias = id.EventID(r.Alias)
		}
	}
	m.mu.Lock()
	if len(m.importedReal) > 10_000 {
		clear(m.importedReal) // a bound; a lookup is one host call
	}
	m.importedReal[t] = alias // "" too: not imported, not asked again
	m.mu.Unlock()
	return alias
}

// recordImported writes an imported message's parts into bridgev2's
// message table (the portal must be one bridgev2 has) and returns them.
func (m *Matrix) recordImported(ctx context.Context, resp *proto.FindMessageResponse) ([]*database.Message, error) {
	key := networkid.PortalKey{ID: networkid.PortalID(resp.PortalId), Receiver: networkid.UserLoginID(resp.Receiver)}
	portal, err := m.br.GetExistingPortalByKey(ctx, key)
	if err != nil || portal == nil || portal.MXID != id.RoomID(resp.RoomId) {
		return nil, err
	}
	var out []*database.Message
	for _, p := range resp.Parts {
		sender := id.UserID(p.Sender)
		senderID := networkid.UserID(p.SenderId)
		if senderID == "" {
			senderID, _ = m.ParseGhostMXID(sender)
		}
		if senderID == "" {
			return nil, fmt.Errorf("imported message %s: no network sender recorded", resp.MessageId)
		}
		// bridgev2's message table needs its sender's ghost row.
		if _, err := m.br.GetGhostByID(ctx, senderID); err != nil {
			return nil, err
		}
		// The events the plugin is sent name the part by its alias (the
		// host rewrites references), and the host takes the alias for the
		// event in what the plugin sends.
		mxid := id.EventID(p.Alias)
		if mxid == "" {
			mxid = id.EventID(p.EventId)
		}
		msg := &database.Message{ID: networkid.MessageID(resp.MessageId), PartID: networkid.PartID(p.PartId),
			MXID: mxid, Room: key, SenderID: senderID, SenderMXID: sender,
			Timestamp: time.UnixMilli(p.Timestamp), ThreadRoot: networkid.MessageID(p.ThreadRoot)}
		if mt := m.br.Network.GetDBMetaTypes().Message; mt != nil {
			msg.Metadata = mt()
		}
		if err := m.br.DB.Message.Insert(ctx, msg); err != nil {
			// Another goroutine recorded it first: read what it wrote.
			known, rerr := m.br.DB.Message.GetPartByMXID(ctx, msg.MXID)
			if rerr != nil || known == nil {
				return nil, err
			}
			msg = known
		}
		out = append(out, msg)
	}
	reactions, err := m.recordImportedReactions(ctx, key, resp, out)
	if err != nil {
		// The message is recorded: what points at it works; removing
		// its imported reactions will not.
		m.log.Warn().Err(err).Str("message_id", resp.MessageId).Msg("Failed to record an imported message's reactions")
	}
	m.log.Debug().Str("message_id", resp.MessageId).Int("parts", len(out)).Int("reactions", reactions).
		Msg("Recorded an imported message")
	return out, nil
}

// recordImportedReactions writes the reactions an import wrote to a message
// (whose parts were just recorded) into bridgev2's reaction table, so that
// removing one on either side removes it on the other; it returns how many.
func (m *Matrix) recordImportedReactions(ctx context.Context, key networkid.PortalKey, resp *proto.FindMessageResponse,
	parts []*database.Message) (int, error) {
	n := 0
	for _, r := range resp.Reactions {
		if !slices.ContainsFunc(parts, func(p *database.Message) bool { return p.PartID == networkid.PartID(r.PartId) }) {
			continue // its part is gone (redacted): so is the reaction for bridgev2
		}
		mxid := id.EventID(r.Alias)
		if mxid == "" {
			mxid = id.EventID(r.EventId)
		}
		if r.SenderId == "" || r.EmojiId == "" {
			continue
		}
		senderID := networkid.UserID(r.SenderId)
		emojiID := networkid.EmojiID(r.EmojiId)
		// A reaction bridged live since is the one bridgev2 keeps.
		if known, err := m.br.DB.Reaction.GetByID(ctx, key.Receiver, networkid.MessageID(resp.MessageId),
			networkid.PartID(r.PartId), senderID, emojiID); err != nil {
			return n, err
		} else if known != nil {
			continue
		}
		if known, err := m.br.DB.Reaction.GetByMXID(ctx, mxid); err != nil {
			return n, err
		} else if known != nil {
			continue
		}
		if _, err := m.br.GetGhostByID(ctx, senderID); err != nil {
			return n, err
		}
		re := &database.Reaction{Room: key, MessageID: networkid.MessageID(resp.MessageId), MessagePartID: networkid.PartID(r.PartId),
			SenderID: senderID, SenderMXID: id.UserID(r.Sender), EmojiID: emojiID, MXID: mxid,
			Timestamp: time.UnixMilli(r.Timestamp), Emoji: cmp.Or(r.Emoji, r.EmojiId)}
		if mt := m.br.Network.GetDBMetaTypes().Reaction; mt != nil {
			re.Metadata = mt()
		}
		if err := m.br.DB.Reaction.Upsert(ctx, re); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

// notFoundIsNil: a host answering NOT_FOUND (nothing imported) or
// UNIMPLEMENTED (an older host) has no imported message; that is no error.
func notFoundIsNil(err error) error {
	if c := status.Code(err); c == codes.NotFound || c == codes.Unimplemented {
		return nil
	}
	return hostError("finding an imported message", err)
}
