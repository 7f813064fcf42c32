package push

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"maunium.net/go/mautrix/id"
	"maunium.net/go/mautrix/pushrules"

	"github.com/tributary-hs/tributary/core/types"
	"github.com/tributary-hs/tributary/storage"
)

// KindHTTP is the kind of pusher that POSTs to a push gateway.
const KindHTTP = "http"

// NotifyPath is the path every HTTP pusher's URL has (push gateway API).
const NotifyPath = "/_matrix/push/v1/notify"

// Field limits: the spec's for app_id and pushkey; the others only keep
// rows bounded.
const (
	maxAppIDChars  = 64
	maxPushKeyLen  = 512
	maxFieldLength = 1024
)

// Pusher is a pusher as GET /pushers shows it.
type Pusher struct {
	PushKey           string          `json:"pushkey"`
	Kind              string          `json:"kind"`
	AppID             string          `json:"app_id"`
	AppDisplayName    string          `json:"app_display_name"`
	DeviceDisplayName string          `json:"device_display_name"`
	ProfileTag        string          `json:"profile_tag,omitempty"`
	Lang              string          `json:"lang"`
	Data              json.RawMessage `json:"data"`
}

// PusherBody is the body of POST /pushers/set as sent. Kind is the raw
// JSON: absent (nil) is an error, null deletes the pusher.
type PusherBody struct {
	Kind              json.RawMessage `json:"kind"`
	AppID             *string         `json:"app_id"`
	PushKey           *string         `json:"pushkey"`
	AppDisplayName    *string         `json:"app_display_name"`
	DeviceDisplayName *string         `json:"device_display_name"`
	ProfileTag        *string         `json:"profile_tag"`
	Lang              *string         `json:"lang"`
	Data              json.RawMessage `json:"data"`
	Append            *bool           `json:"append"`
}

// Start learns which users have pushers. Call it before room writers run.
func (s *Service) Start(ctx context.Context) error {
	users, err := s.store.UsersWithPushers(ctx, KindHTTP)
	if err != nil {
		return fmt.Errorf("push: loading the users with pushers: %w", err)
	}
	for _, u := range users {
		s.withPushers.Store(u, struct{}{})
	}
	return nil
}

// HasPushers reports whether notifications of the user go to push
// gateways (rooms.PushQueuer): room writers queue them for those only.
func (s *Service) HasPushers(user id.UserID) bool {
	_, ok := s.withPushers.Load(user)
	return ok
}

// Pushers lists the user's pushers (GET /pushers).
func (s *Service) Pushers(ctx context.Context, user id.UserID) ([]Pusher, error) {
	ps, err := s.store.ListPushers(ctx, user)
	if err != nil {
		return nil, err
	}
	out := make([]Pusher, 0, len(ps))
	for _, p := range ps {
		out = append(out, Pusher{PushKey: p.PushKey, Kind: p.Kind, AppID: p.AppID, AppDisplayName: p.AppDisplayName,
			DeviceDisplayName: p.DeviceDisplayName, ProfileTag: p.ProfileTag, Lang: p.Lang, Data: p.Data})
	}
	return out, nil
}

// SetGatewayCheck makes SetPusher refuse push gateways on hosts check
// refuses (the delivery's own address guard, applied when the pusher is set).
func (s *Service) SetGatewayCheck(check func(ctx context.Context, host string) error) {
	s.gatewayCheck = check
}

// SetPusher creates, replaces or (kind null) deletes one of the user's
// pushers (POST /pushers/set). deviceID is the device whose access token
// asked: logging it out deletes the pusher.
func (s *Service) SetPusher(ctx context.Context, user id.UserID, deviceID id.DeviceID, b *PusherBody) error {
	if b.Kind == nil {
		return types.MissingParam("kind is required")
	}
	appID, err := requiredString("app_id", b.AppID)
	if err != nil {
		return err
	}
	pushKey, err := requiredString("pushkey", b.PushKey)
	if err != nil {
		return err
	}
	if utf8.RuneCountInString(appID) > maxAppIDChars {
		return types.InvalidParam("app_id is longer than %d characters", maxAppIDChars)
	}
	if len(pushKey) > maxPushKeyLen {
		return types.InvalidParam("pushkey is longer than %d bytes", maxPushKeyLen)
	}
	if string(b.Kind) == "null" {
		s.pmu.Lock()
		defer s.pmu.Unlock()
		if err := s.store.DeletePusher(ctx, user, appID, pushKey); err != nil {
			return err
		}
		return s.forgetIfNone(ctx, user)
	}
	var kind string
	if err := json.Unmarshal(b.Kind, &kind); err != nil {
		return types.BadJSON("kind must be a string or null")
	}
	switch kind {
	case KindHTTP:
	case "email":
		return types.InvalidParam("This server does not send email notifications")
	default:
		return types.InvalidParam("Unknown pusher kind %q", kind)
	}
	var missing []string
	for name, v := range map[string]*string{"app_display_name": b.AppDisplayName,
		"device_display_name": b.DeviceDisplayName, "lang": b.Lang} {
		if v == nil {
			missing = append(missing, name)
		}
	}
	if b.Data == nil || string(b.Data) == "null" {
		missing = append(missing, "data")
	}
	if len(missing) > 0 {
		slices.Sort(missing)
		return types.MissingParam("Missing parameters: %s", strings.Join(missing, ", "))
	}
	for name, v := range map[string]*string{"app_display_name": b.AppDisplayName,
		"device_display_name": b.DeviceDisplayName, "lang": b.Lang, "profile_tag": b.ProfileTag} {
		if v != nil && len(*v) > maxFieldLength {
			return types.InvalidParam("%s is longer than %d bytes", name, maxFieldLength)
		}
	}
	data, host, err := checkData(b.Data)
	if err != nil {
		return err
	}
	if s.gatewayCheck != nil {
		if err := s.gatewayCheck(ctx, host); err != nil {
			return types.InvalidParam("data.url points at an address this server does not push to")
		}
	}
	p := &storage.Pusher{UserID: user, DeviceID: deviceID, Kind: kind, AppID: appID, PushKey: pushKey,
		AppDisplayName: *b.AppDisplayName, DeviceDisplayName: *b.DeviceDisplayName, Lang: *b.Lang, Data: data,
		PushKeyTS: time.Now().UnixMilli()}
	if b.ProfileTag != nil {
		p.ProfileTag = *b.ProfileTag
	}
	s.pmu.Lock()
	defer s.pmu.Unlock()
	// Known before stored: an event committed after the pusher is queued for it.
	s.withPushers.Store(user, struct{}{})
	if err := s.store.SetPusher(ctx, p, b.Append != nil && *b.Append); err != nil {
		_ = s.forgetIfNone(ctx, user)
		return err
	}
	s.changed(user) // other processes count the user among those with pushers
	return nil
}

func requiredString(name string, v *string) (string, error) {
	if v == nil {
		return "", types.MissingParam("%s is required", name)
	}
	if *v == "" {
		return "", types.InvalidParam("%s must not be empty", name)
	}
	return *v, nil
}

// checkData checks an HTTP pusher's data: an object whose url is an
// http(s) URL with the notify path, and whose format, if any, is one the
// spec defines. It is kept as given (custom keys go to the gateway).
func checkData(raw json.RawMessage) (json.RawMessage, string, error) {
	var data map[string]json.RawMessage
	if err := json.Unmarshal(raw, &data); err != nil || data == nil {
		return nil, "", types.BadJSON("data must be an object")
	}
	rawURL, ok := data["url"]
	if !ok {
		return nil, "", types.MissingParam("data.url is required for http pushers")
	}
	var u string
	if err := json.Unmarshal(rawURL, &u); err != nil {
		return nil, "", types.BadJSON("data.url must be a string")
	}
	parsed, err := url.Parse(u)
	if err != nil || (parsed.Scheme != "https" && parsed.Scheme != "http") || parsed.Host == "" || parsed.User != nil {
		return nil, "", types.InvalidParam("data.url must be an absolute https (or http) URL")
	}
	if parsed.Path != NotifyPath {
		return nil, "", types.InvalidParam("data.url must have the path %s", NotifyPath)
	}
	if f, ok := data["format"]; ok {
		var format string
		if err := json.Unmarshal(f, &format); err != nil {
			return nil, "", types.BadJSON("data.format must be a string")
		}
		if format != "event_id_only" {
			return nil, "", types.InvalidParam("Unknown data.format %q", format)
		}
	}
	// Compact, so that what is stored is what was meant.
	out, err := json.Marshal(data)
	return out, parsed.Hostname(), err
}

// forgetIfNone drops the user from withPushers if they have no HTTP
// pusher left. Call it with pmu held.
func (s *Service) forgetIfNone(ctx context.Context, user id.UserID) error {
	ps, err := s.store.ListPushers(ctx, user)
	if err != nil {
		return err
	}
	for _, p := range ps {
		if p.Kind == KindHTTP {
			return nil
		}
	}
	s.withPushers.Delete(user)
	return nil
}

// DevicesDeleted is told of deleted devices (users.Options.OnDevicesDeleted):
// storage deleted their pushers with them.
func (s *Service) DevicesDeleted(ctx context.Context, userID id.UserID, _ []id.DeviceID) {
	s.pmu.Lock()
	defer s.pmu.Unlock()
	_ = s.forgetIfNone(ctx, userID) // on failure the user stays in the set: harmless
}

// PusherRejected deletes a pusher whose pushkey its gateway rejected (the
// gateway must not be sent notifications for it again).
func (s *Service) PusherRejected(ctx context.Context, userID id.UserID, pusherID int64) error {
	s.pmu.Lock()
	defer s.pmu.Unlock()
	if err := s.store.DeletePusherByID(ctx, pusherID); err != nil {
		return err
	}
	return s.forgetIfNone(ctx, userID)
}

// Tweaks are the set_tweak actions of a rule as a push gateway gets them
// (a highlight without a value is true).
func Tweaks(actions pushrules.PushActionArray) json.RawMessage {
	tweaks := map[string]any{}
	for _, a := range actions {
		if a == nil || a.Action != pushrules.ActionSetTweak {
			continue
		}
		v := a.Value
		if a.Tweak == pushrules.TweakHighlight && v == nil {
			v = true
		}
		tweaks[string(a.Tweak)] = v
	}
	raw, err := json.Marshal(tweaks)
	if err != nil {
		return json.RawMessage(`{}`)
	}
	return raw
}

// Notification is one of a user's notifications (GET /notifications),
// without its event.
type Notification struct {
	RoomID    id.RoomID
	StreamPos int64
	Highlight bool
	Read      bool
}

// Actions are the actions a notification is shown with: the rule that
// matched is not kept, only whether it notified and highlighted.
func (n *Notification) Actions() []any {
	if n.Highlight {
		return []any{"notify", map[string]any{"set_tweak": "highlight"}}
	}
	return []any{"notify"}
}

// NotificationsPage is a page of notifications, newest first, and the
// token of the next ("" at the end).
type NotificationsPage struct {
	Notifications []Notification
	NextToken     string
}

const (
	defaultNotificationLimit = 20
	maxNotificationLimit     = 100
)

// Notifications pages through a user's notifications, newest first
// (GET /notifications): from is a next_token ("" for the newest), limit
// ("" for the default) bounds the page, only "highlight" keeps highlights.
// Read tells whether the user's read receipts (or own later event) in the
// room are at or after the event.
func (s *Service) Notifications(ctx context.Context, user id.UserID, from, limit, only string) (*NotificationsPage, error) {
	before := int64(math.MaxInt64)
	if from != "" {
		pos, err := strconv.ParseInt(from, 10, 64)
		if err != nil || pos <= 0 {
			return nil, types.InvalidParam("Invalid from token")
		}
		before = pos
	}
	n := defaultNotificationLimit
	if limit != "" {
		l, err := strconv.Atoi(limit)
		if err != nil || l < 0 {
			return nil, types.InvalidParam("limit must be a non-negative integer")
		}
		n = min(l, maxNotificationLimit)
	}
	page := &NotificationsPage{Notifications: []Notification{}}
	if n == 0 {
		return page, nil
	}
	rows, err := s.store.Notifications(ctx, user, before, n, only == "highlight")
	if err != nil {
		return nil, err
	}
	type readPos struct {
		threads map[string]int64
		floor   int64
	}
	reads := map[id.RoomID]readPos{}
	for _, r := range rows {
		rp, ok := reads[r.RoomID]
		if !ok {
			threads, own, err := s.store.ReadPositions(ctx, r.RoomID, user)
			if err != nil {
				return nil, err
			}
			rp = readPos{threads: threads, floor: max(threads[""], own)}
			reads[r.RoomID] = rp
		}
		read := r.StreamPos <= rp.floor
		if pos, ok := rp.threads[r.ThreadID]; ok && r.ThreadID != "" && r.StreamPos <= pos {
			read = true
		}
		page.Notifications = append(page.Notifications, Notification{RoomID: r.RoomID,
			StreamPos: r.StreamPos, Highlight: r.Highlight, Read: read})
	}
	if len(rows) == n {
		page.NextToken = strconv.FormatInt(rows[len(rows)-1].StreamPos, 10)
	}
	return page, nil
}

// EventInfo is what a push gateway is told of an event (core/rooms fills
// it in from the room's current state).
type EventInfo struct {
	EventID           id.EventID
	RoomID            id.RoomID
	Type              string
	Sender            id.UserID
	StateKey          *string
	Content           json.RawMessage
	SenderDisplayName string
	RoomName          string
	RoomAlias         string
}
