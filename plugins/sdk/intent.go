package sdk

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/bridgev2"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/plugins/proto"
)

// intentKind is who an intent acts as.
type intentKind int

const (
	kindBot intentKind = iota
	kindGhost
	// kindPuppet is a local user the host lets the bridge act for.
	kindPuppet
)

// intent is bridgev2's MatrixAPI for one user (the bot, a ghost or a
// double-puppeted user): each call is a MatrixHost call naming the user.
type intent struct {
	m    *Matrix
	user id.UserID
	kind intentKind
}

var (
	_ bridgev2.MatrixAPI                       = (*intent)(nil)
	_ bridgev2.MatrixAPIWithArbitraryRoomState = (*intent)(nil)
)

func (in *intent) GetMXID() id.UserID   { return in.user }
func (in *intent) IsDoublePuppet() bool { return in.kind == kindPuppet }

func (in *intent) registered(ctx context.Context) error {
	if in.kind != kindGhost {
		return nil
	}
	return in.m.ensureRegistered(ctx, in.user)
}

func (in *intent) SendMessage(ctx context.Context, roomID id.RoomID, eventType event.Type, content *event.Content, extra *bridgev2.MatrixSendExtra) (*mautrix.RespSendEvent, error) {
	if extra == nil {
		extra = &bridgev2.MatrixSendExtra{}
	}
	if err := in.registered(ctx); err != nil {
		return nil, err
	}
	if eventType == event.EventRedaction {
		return in.redact(ctx, roomID, content, extra)
	}
	if msg, ok := content.Parsed.(*event.MessageEventContent); ok && eventType == event.EventMessage {
		msg.AddPerMessageProfileFallback()
	}
	var ts int64
	if !extra.Timestamp.IsZero() {
		ts = extra.Timestamp.UnixMilli()
	}
	if in.kind == kindPuppet {
		in.m.markDoublePuppeted(content, ts)
	}
	raw, err := json.Marshal(content)
	if err != nil {
		return nil, err
	}
	req := &proto.SendEventRequest{RoomId: string(roomID), UserId: string(in.user),
		Type: eventType.Type, Content: raw, Timestamp: ts, TxnId: extra.TransactionID}
	resp, err := in.m.host.SendEvent(ctx, req)
	err = hostError("sending "+eventType.Type, err)
	if errors.Is(err, mautrix.MForbidden) && in.kind != kindPuppet {
		// As an appservice intent does: a ghost (or the bot) that is not
		// in the room yet joins it and sends again. A ghost that bridgev2
		// did not list as a member (a network that cannot list members)
		// meets this with its first message.
		if joinErr := in.EnsureJoined(ctx, roomID); joinErr == nil {
			resp, err = in.m.host.SendEvent(ctx, req)
			err = hostError("sending "+eventType.Type, err)
		}
	}
	if err != nil {
		return nil, err
	}
	return &mautrix.RespSendEvent{EventID: id.EventID(resp.EventId)}, nil
}

func (in *intent) redact(ctx context.Context, roomID id.RoomID, content *event.Content, extra *bridgev2.MatrixSendExtra) (*mautrix.RespSendEvent, error) {
	parsed, ok := content.Parsed.(*event.RedactionEventContent)
	if !ok || parsed.Redacts == "" {
		return nil, errors.New("a redaction needs the event it redacts")
	}
	resp, err := in.m.host.Redact(ctx, &proto.RedactRequest{RoomId: string(roomID), UserId: string(in.user),
		EventId: string(parsed.Redacts), Reason: parsed.Reason, TxnId: extra.TransactionID})
	if err != nil {
		return nil, hostError("redacting "+string(parsed.Redacts), err)
	}
	if in.kind == kindPuppet {
		in.m.rememberPuppetEvent(id.EventID(resp.EventId))
	}
	return &mautrix.RespSendEvent{EventID: id.EventID(resp.EventId)}, nil
}

func (in *intent) SendState(ctx context.Context, roomID id.RoomID, eventType event.Type, stateKey string, content *event.Content, ts time.Time) (*mautrix.RespSendEvent, error) {
	if err := in.registered(ctx); err != nil {
		return nil, err
	}
	if eventType == event.StateMember {
		target := id.UserID(stateKey)
		if err := in.m.ensureRegistered(ctx, target); err != nil {
			return nil, err
		}
		in.fillMember(ctx, roomID, target, content)
	}
	var millis int64
	if !ts.IsZero() {
		millis = ts.UnixMilli()
	}
	if in.kind == kindPuppet {
		in.m.markDoublePuppeted(content, millis)
	}
	raw, err := json.Marshal(content)
	if err != nil {
		return nil, err
	}
	resp, err := in.m.host.SendState(ctx, &proto.SendStateRequest{RoomId: string(roomID), UserId: string(in.user),
		Type: eventType.Type, StateKey: stateKey, Content: raw, Timestamp: millis})
	if err != nil {
		return nil, hostError("sending "+eventType.Type, err)
	}
	return &mautrix.RespSendEvent{EventID: id.EventID(resp.EventId)}, nil
}

// fillMember gives a member event without a profile the target's name and
// avatar, as appservice bridges do: from the room, the ghost's record, or
// the user's global profile.
func (in *intent) fillMember(ctx context.Context, roomID id.RoomID, target id.UserID, content *event.Content) {
	mc, ok := content.Parsed.(*event.MemberEventContent)
	if !ok || mc.Displayname != "" || mc.AvatarURL != "" {
		return
	}
	log := zerolog.Ctx(ctx)
	if cur, err := in.m.bot.GetStateEvent(ctx, roomID, event.StateMember, string(target)); err == nil {
		if prev, ok := cur.Content.Parsed.(*event.MemberEventContent); ok && (prev.Displayname != "" || prev.AvatarURL != "") {
			mc.Displayname, mc.AvatarURL = prev.Displayname, prev.AvatarURL
			return
		}
	}
	if _, isGhost := in.m.ParseGhostMXID(target); isGhost {
		if ghost, err := in.m.br.GetGhostByMXID(ctx, target); err != nil {
			log.Err(err).Stringer("target_user_id", target).Msg("Failed to get ghost to fill member event")
		} else if ghost != nil {
			mc.Displayname, mc.AvatarURL = ghost.Name, ghost.AvatarMXC
			return
		}
	}
	prof, err := (&intent{m: in.m, user: target}).profile(ctx)
	if err != nil {
		log.Debug().Err(err).Stringer("target_user_id", target).Msg("Failed to get profile to fill member event")
		return
	}
	mc.Displayname, mc.AvatarURL = prof.Displayname, prof.AvatarURL
}

// MarkRead moves the user's read receipt; a double-puppeted user's
// fully-read marker follows, as their own client's would.
func (in *intent) MarkRead(ctx context.Context, roomID id.RoomID, eventID id.EventID, _ time.Time) error {
	_, err := in.m.host.MarkRead(ctx, &proto.MarkReadRequest{RoomId: string(roomID), UserId: string(in.user),
		EventId: string(eventID), FullyRead: in.kind == kindPuppet})
	return hostError("marking "+string(eventID)+" read", err)
}

func (in *intent) MarkUnread(ctx context.Context, roomID id.RoomID, unread bool) error {
	return in.setAccountData(ctx, roomID, event.AccountDataMarkedUnread.Type, &event.MarkedUnreadEventContent{Unread: unread})
}

// MarkTyping sets a ghost's typing notification; double-puppeted users'
// are not sent (their echo cannot be told from the user's own).
func (in *intent) MarkTyping(ctx context.Context, roomID id.RoomID, typingType bridgev2.TypingType, timeout time.Duration) error {
	if typingType != bridgev2.TypingTypeText || in.kind == kindPuppet {
		return nil
	}
	req := &proto.SetTypingRequest{RoomId: string(roomID), UserId: string(in.user),
		Typing: timeout > 0, TimeoutMs: timeout.Milliseconds()}
	_, err := in.m.host.SetTyping(ctx, req)
	err = hostError("typing", err)
	if errors.Is(err, mautrix.MForbidden) && req.Typing {
		// As SendMessage (and mautrix's intents, which join before typing):
		// a ghost that is not in the room yet joins it and types again.
		if joinErr := in.EnsureJoined(ctx, roomID); joinErr == nil {
			_, err = in.m.host.SetTyping(ctx, req)
			err = hostError("typing", err)
		}
	}
	return err
}

func (in *intent) DownloadMedia(ctx context.Context, uri id.ContentURIString, file *event.EncryptedFileInfo) ([]byte, error) {
	if file != nil {
		uri = file.URL
	}
	data, err := in.m.download(ctx, uri, nil)
	if err != nil {
		return nil, err
	}
	if file != nil {
		return file.DecryptInPlaceReturn(data)
	}
	return data, nil
}

// DownloadMediaToFile streams the file into a temporary file for callback.
func (in *intent) DownloadMediaToFile(ctx context.Context, uri id.ContentURIString, file *event.EncryptedFileInfo, _ bool, callback func(*os.File) error) error {
	f, err := os.CreateTemp("", "tributary-download-*")
	if err != nil {
		return fmt.Errorf("failed to create temp file: %w", err)
	}
	defer func() {
		_ = f.Close()
		_ = os.Remove(f.Name())
	}()
	if file != nil {
		// Encrypted media is decrypted in memory.
		data, err := in.DownloadMedia(ctx, uri, file)
		if err != nil {
			return err
		}
		if _, err := f.Write(data); err != nil {
			return err
		}
	} else if _, err := in.m.download(ctx, uri, f); err != nil {
		return err
	}
	if _, err := f.Seek(0, 0); err != nil {
		return err
	}
	if err := callback(f); err != nil {
		return bridgev2.CallbackError{Type: "read", Wrapped: err}
	}
	return nil
}

// UploadMedia stores a file as the user. Rooms of plugins are not
// encrypted (the SDK does no end-to-bridge encryption), so the file goes
// as it is.
func (in *intent) UploadMedia(ctx context.Context, _ id.RoomID, data []byte, fileName, mimeType string) (id.ContentURIString, *event.EncryptedFileInfo, error) {
	if err := in.registered(ctx); err != nil {
		return "", nil, err
	}
	uri, err := in.m.upload(ctx, in.user, fileName, mimeType, int64(len(data)), bytesReader(data))
	return uri, nil, err
}

func (in *intent) UploadMediaStream(ctx context.Context, roomID id.RoomID, size int64, requireFile bool, cb bridgev2.FileStreamCallback) (id.ContentURIString, *event.EncryptedFileInfo, error) {
	if err := in.registered(ctx); err != nil {
		return "", nil, err
	}
	if max := in.m.env.MaxUploadBytes; max > 0 && size > max {
		return "", nil, fmt.Errorf("%w (%d bytes > %d)", bridgev2.ErrMediaTooLarge, size, max)
	}
	tmp, err := os.CreateTemp("", "tributary-upload-*")
	if err != nil {
		return "", nil, fmt.Errorf("failed to create temp file: %w", err)
	}
	defer func() {
		_ = tmp.Close()
		_ = os.Remove(tmp.Name())
	}()
	res, err := cb(tmp)
	if err != nil {
		return "", nil, bridgev2.CallbackError{Type: "write", Wrapped: err}
	}
	f := tmp
	if res.ReplacementFile != "" {
		if !requireFile {
			return "", nil, errors.New("a replacement file is only allowed when a file is required")
		}
		if f, err = os.Open(res.ReplacementFile); err != nil {
			return "", nil, fmt.Errorf("failed to open replacement file: %w", err)
		}
		defer func() {
			_ = f.Close()
			_ = os.Remove(res.ReplacementFile)
		}()
	} else if _, err := f.Seek(0, 0); err != nil {
		return "", nil, err
	}
	info, err := f.Stat()
	if err != nil {
		return "", nil, err
	}
	uri, err := in.m.upload(ctx, in.user, res.FileName, res.MimeType, info.Size(), f)
	return uri, nil, err
}

// SetDisplayName and SetAvatarURL change the user's profile (and so its
// member events in every room) only when it differs, as appservice intents
// do.
func (in *intent) SetDisplayName(ctx context.Context, name string) error {
	if err := in.registered(ctx); err != nil {
		return err
	}
	if cur, err := in.profile(ctx); err != nil {
		return err
	} else if cur.Displayname == name {
		return nil
	}
	_, err := in.m.host.SetProfile(ctx, &proto.SetProfileRequest{UserId: string(in.user), Displayname: &name})
	return hostError("setting the display name", err)
}

func (in *intent) SetAvatarURL(ctx context.Context, avatarURL id.ContentURIString) error {
	if err := in.registered(ctx); err != nil {
		return err
	}
	if cur, err := in.profile(ctx); err != nil {
		return err
	} else if cur.AvatarURL == avatarURL {
		return nil
	}
	s := string(avatarURL)
	_, err := in.m.host.SetProfile(ctx, &proto.SetProfileRequest{UserId: string(in.user), AvatarUrl: &s})
	return hostError("setting the avatar", err)
}

type profile struct {
	Displayname string              `json:"displayname"`
	AvatarURL   id.ContentURIString `json:"avatar_url"`
}

func (in *intent) profile(ctx context.Context) (*profile, error) {
	resp, err := in.m.host.GetProfile(ctx, &proto.GetProfileRequest{UserId: string(in.user)})
	if errors.Is(hostError("", err), mautrix.MNotFound) {
		return &profile{}, nil
	} else if err != nil {
		return nil, hostError("getting the profile", err)
	}
	var p profile
	if err := json.Unmarshal(resp.Profile, &p); err != nil {
		return nil, fmt.Errorf("the profile of %s: %w", in.user, err)
	}
	return &p, nil
}

// SetExtraProfileMeta: the homeserver keeps no extra profile fields for
// ghosts (GetCapabilities says so), so there is nothing to set.
func (in *intent) SetExtraProfileMeta(context.Context, any) error { return nil }

// SetProfile replaces a whole profile, which GetCapabilities does not
// offer; bridgev2 sets the fields one by one instead.
func (in *intent) SetProfile(context.Context, any) error {
	return errors.New("replacing a whole profile is not supported")
}

// CreateRoom creates a room as the user. From room version 12 the creator
// holds power no level gives, and may not be listed in the power levels.
func (in *intent) CreateRoom(ctx context.Context, req *mautrix.ReqCreateRoom) (id.RoomID, error) {
	if err := in.registered(ctx); err != nil {
		return "", err
	}
	if in.kind == kindBot {
		if roomID, ok, err := in.m.adoptPortal(ctx, req); err != nil || ok {
			return roomID, err
		}
	}
	for _, u := range req.Invite {
		if err := in.m.ensureRegistered(ctx, u); err != nil {
			return "", err
		}
	}
	if !in.m.cfg.Matrix.FederateRooms {
		if req.CreationContent == nil {
			req.CreationContent = map[string]any{}
		}
		req.CreationContent["m.federate"] = false
	}
	in.dropCreatorsFromPowerLevels(req)
	raw, err := json.Marshal(req)
	if err != nil {
		return "", err
	}
	resp, err := in.m.host.CreateRoom(ctx, &proto.CreateRoomRequest{UserId: string(in.user), Request: raw})
	if err != nil {
		return "", hostError("creating a room", err)
	}
	return id.RoomID(resp.RoomId), nil
}

func (in *intent) dropCreatorsFromPowerLevels(req *mautrix.ReqCreateRoom) {
	rv := req.RoomVersion
	if rv == "" {
		rv = in.m.env.DefaultRoomVersion
	}
	if rv == "" || !rv.PrivilegedRoomCreators() {
		return
	}
	creators := []id.UserID{in.user}
	if extra, ok := req.CreationContent["additional_creators"].([]id.UserID); ok {
		creators = append(creators, extra...)
	}
	if req.PowerLevelOverride != nil {
		for _, c := range creators {
			delete(req.PowerLevelOverride.Users, c)
		}
	}
	for _, evt := range req.InitialState {
		if pl, ok := evt.Content.Parsed.(*event.PowerLevelsEventContent); ok && evt.Type == event.StatePowerLevels {
			for _, c := range creators {
				delete(pl.Users, c)
			}
		}
	}
}

// DeleteRoom empties a portal: ghosts leave, other users are kicked
// (unless puppetsOnly), then the user leaves.
func (in *intent) DeleteRoom(ctx context.Context, roomID id.RoomID, puppetsOnly bool) error {
	if roomID == "" {
		return nil
	}
	resp, err := in.m.host.GetMembers(ctx, &proto.GetMembersRequest{RoomId: string(roomID), UserId: string(in.user)})
	if err != nil {
		return hostError("getting the members of "+string(roomID), err)
	}
	log := zerolog.Ctx(ctx)
	for _, pe := range resp.Events {
		evt := eventFromHost(pe)
		member := id.UserID(evt.GetStateKey())
		mc, ok := evt.Content.Parsed.(*event.MemberEventContent)
		if !ok || mc.Membership != event.MembershipJoin || member == in.user {
			continue
		}
		if _, ghost := in.m.ParseGhostMXID(member); ghost {
			err = in.m.membership(ctx, roomID, member, member, proto.Membership_MEMBERSHIP_LEAVE, "")
		} else if !puppetsOnly {
			err = in.m.membership(ctx, roomID, in.user, member, proto.Membership_MEMBERSHIP_LEAVE, "Deleting portal")
		}
		if err != nil {
			log.Err(err).Stringer("user_id", member).Msg("Failed to remove a member while deleting the portal")
		}
	}
	if err := in.m.membership(ctx, roomID, in.user, in.user, proto.Membership_MEMBERSHIP_LEAVE, ""); err != nil {
		log.Err(err).Msg("Failed to leave the portal while deleting it")
	}
	return nil
}

func (m *Matrix) membership(ctx context.Context, roomID id.RoomID, user, target id.UserID, ms proto.Membership, reason string) error {
	_, err := m.host.SetMembership(ctx, &proto.SetMembershipRequest{RoomId: string(roomID), UserId: string(user),
		Target: string(target), Membership: ms, Reason: reason})
	return hostError("changing the membership of "+string(target), err)
}

// EnsureJoined joins the room; a ghost the room keeps out is invited by
// the bot first, as appservice intents do.
func (in *intent) EnsureJoined(ctx context.Context, roomID id.RoomID, _ ...bridgev2.EnsureJoinedParams) error {
	if err := in.registered(ctx); err != nil {
		return err
	}
	req := &proto.EnsureJoinedRequest{RoomId: string(roomID), UserId: string(in.user)}
	if in.kind != kindBot {
		req.Inviter = string(in.m.env.BotUserID)
	}
	_, err := in.m.host.EnsureJoined(ctx, req)
	return hostError("joining "+string(roomID), err)
}

func (in *intent) EnsureInvited(ctx context.Context, roomID id.RoomID, userID id.UserID) error {
	if err := in.m.ensureRegistered(ctx, userID); err != nil {
		return err
	}
	if cur, err := in.GetStateEvent(ctx, roomID, event.StateMember, string(userID)); err == nil {
		if mc, ok := cur.Content.Parsed.(*event.MemberEventContent); ok &&
			(mc.Membership == event.MembershipInvite || mc.Membership == event.MembershipJoin) {
			return nil
		}
	}
	return in.m.membership(ctx, roomID, in.user, userID, proto.Membership_MEMBERSHIP_INVITE, "")
}

// TagRoom puts the room under tag (or takes it out) in the user's m.tag
// room account data; only one of favourite and low priority is kept.
func (in *intent) TagRoom(ctx context.Context, roomID id.RoomID, tag event.RoomTag, isTagged bool) error {
	var tags event.TagEventContent
	if raw, err := in.getAccountData(ctx, roomID, event.AccountDataRoomTags.Type); err != nil && !errors.Is(err, mautrix.MNotFound) {
		return err
	} else if raw != nil {
		if err := json.Unmarshal(raw, &tags); err != nil {
			return err
		}
	}
	if tags.Tags == nil {
		tags.Tags = map[event.RoomTag]event.TagMetadata{}
	}
	_, had := tags.Tags[tag]
	if had == isTagged {
		return nil
	}
	if isTagged {
		for _, other := range []event.RoomTag{event.RoomTagFavourite, event.RoomTagLowPriority} {
			delete(tags.Tags, other)
		}
		tags.Tags[tag] = event.TagMetadata{MauDoublePuppetSource: in.m.dpValue}
	} else {
		delete(tags.Tags, tag)
	}
	return in.setAccountData(ctx, roomID, event.AccountDataRoomTags.Type, &tags)
}

func (in *intent) MuteRoom(ctx context.Context, roomID id.RoomID, until time.Time) error {
	_, err := in.m.host.SetRoomMuted(ctx, &proto.SetRoomMutedRequest{UserId: string(in.user), RoomId: string(roomID),
		Muted: until.After(time.Now())})
	return hostError("muting "+string(roomID), err)
}

func (in *intent) GetEvent(ctx context.Context, roomID id.RoomID, eventID id.EventID) (*event.Event, error) {
	pe, err := in.m.host.GetEvent(ctx, &proto.GetEventRequest{RoomId: string(roomID), UserId: string(in.user),
		EventId: string(eventID)})
	if err != nil {
		return nil, hostError("getting "+string(eventID), err)
	}
	evt := eventFromHost(pe)
	if evt.Type == event.EventEncrypted {
		return nil, errors.New("can't decrypt the event")
	}
	return evt, nil
}

// GetStateEvent reads a state event as the user; mautrix.MNotFound when
// there is none.
func (in *intent) GetStateEvent(ctx context.Context, roomID id.RoomID, eventType event.Type, stateKey string) (*event.Event, error) {
	pe, err := in.m.host.GetStateEvent(ctx, &proto.GetStateEventRequest{RoomId: string(roomID), UserId: string(in.user),
		Type: eventType.Type, StateKey: stateKey})
	if err != nil {
		return nil, hostError("getting "+eventType.Type+" state", err)
	}
	return eventFromHost(pe), nil
}

func (in *intent) setAccountData(ctx context.Context, roomID id.RoomID, typ string, content any) error {
	raw, err := json.Marshal(content)
	if err != nil {
		return err
	}
	_, err = in.m.host.SetAccountData(ctx, &proto.SetAccountDataRequest{UserId: string(in.user), RoomId: string(roomID),
		Type: typ, Content: raw})
	return hostError("setting "+typ, err)
}

func (in *intent) getAccountData(ctx context.Context, roomID id.RoomID, typ string) (json.RawMessage, error) {
	resp, err := in.m.host.GetAccountData(ctx, &proto.GetAccountDataRequest{UserId: string(in.user),
		RoomId: string(roomID), Type: typ})
	if err != nil {
		return nil, hostError("getting "+typ, err)
	}
	return resp.Content, nil
}

// eventFromHost turns an event the host sent into mautrix's type, content
// parsed as an appservice's transaction events are.
func eventFromHost(pe *proto.Event) *event.Event {
	evt := &event.Event{
		ID:        id.EventID(pe.EventId),
		RoomID:    id.RoomID(pe.RoomId),
		Sender:    id.UserID(pe.Sender),
		Type:      event.Type{Type: pe.Type, Class: event.MessageEventType},
		StateKey:  pe.StateKey,
		Timestamp: pe.OriginServerTs,
	}
	evt.Mautrix.EventSource = event.SourceTimeline
	if pe.StateKey != nil {
		evt.Type.Class = event.StateEventType
		evt.Mautrix.EventSource = event.SourceTimeline & event.SourceJoin
	}
	if len(pe.Content) > 0 {
		_ = json.Unmarshal(pe.Content, &evt.Content)
	}
	if len(pe.Unsigned) > 0 {
		_ = json.Unmarshal(pe.Unsigned, &evt.Unsigned)
		if evt.Unsigned.PrevContent != nil {
			_ = evt.Unsigned.PrevContent.ParseRaw(evt.Type)
		}
	}
	// As appservices do: content of unknown types stays raw; content that
	// does not parse is left as far as it parsed.
	_ = evt.Content.ParseRaw(evt.Type)
	return evt
}

// ephemeralFromHost turns a transaction's typing notification or receipt
// into mautrix's type, as an appservice's transaction ephemeral events are.
func ephemeralFromHost(pe *proto.Event) *event.Event {
	evt := &event.Event{RoomID: id.RoomID(pe.RoomId), Type: event.Type{Type: pe.Type, Class: event.EphemeralEventType}}
	evt.Mautrix.EventSource = event.SourceEphemeral
	if len(pe.Content) > 0 {
		_ = json.Unmarshal(pe.Content, &evt.Content)
	}
	_ = evt.Content.ParseRaw(evt.Type)
	return evt
}
