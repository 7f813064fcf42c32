// Package push owns push rules: the spec's server-default rules, each user's
// ruleset (kept as the m.push_rules account data clients see in /sync), the
// /pushrules API, and evaluating events for the notification counts; and
// pushers (/pushers, which users room writers queue notifications for) and
// the /notifications list. Delivery to push gateways is core/push/gateway.
// Evaluation uses mautrix's pushrules package. It imports core/types and
// the storage interfaces.
package push

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
	"maunium.net/go/mautrix/pushrules"

	"github.com/tributary-hs/tributary/core/stream"
	"github.com/tributary-hs/tributary/core/types"
	"github.com/tributary-hs/tributary/storage"
)

// defaultRules are the server-default rules of the spec's "Predefined
// Rules" (client-server API, push notifications module, v1.17+), extracted
// from its JSON definitions. "[the user's Matrix ID]" stands for the user.
//
//go:embed defaults.json
var defaultRules []byte

const userPlaceholder = "[the user's Matrix ID]"

// accountDataType is where a user's ruleset lives.
const accountDataType = "m.push_rules"

// Store is what the service persists to.
type Store interface {
	storage.AccountData
	storage.Pushers
	storage.PushCounts
	storage.ThreadSubscriptions
	// GetEvent and MaxStreamPos order automatic thread subscriptions
	// against unsubscriptions (threads.go).
	GetEvent(ctx context.Context, eventID id.EventID) (*storage.Event, error)
	MaxStreamPos(ctx context.Context) (int64, error)
}

// Service manages and evaluates push rules.
type Service struct {
	store    Store
	notifier stream.Notifier
	// cache holds rulesets until a published account change forgets them.
	cache stream.Cache[id.UserID, *Ruleset]
	// threads turns on thread subscriptions (MSC4306) and their rules.
	threads bool
	// tmu serialises changes of thread subscriptions.
	tmu sync.Mutex
	mu  sync.Mutex
	// withPushers holds the users with HTTP pushers (id.UserID → struct{}),
	// which room writers ask about every notified user. It may hold a user
	// whose pushers are gone (queuing then finds none), never miss one with
	// a pusher: users are added before their pusher is stored, and removed
	// under pmu after checking that none is left.
	withPushers sync.Map
	pmu         sync.Mutex
	// gatewayCheck refuses push gateway hosts (SetGatewayCheck).
	gatewayCheck func(ctx context.Context, host string) error
	// defaultContent is the m.push_rules content of the default ruleset
	// with userPlaceholder for the user (AccountDataContent), encoded once.
	defaultContent struct {
		once sync.Once
		raw  json.RawMessage
		err  error
	}
}

// New builds the service. n (nil: this process alone) carries its changes:
// ruleset writes on the account data stream (sync), and rulesets and
// pushers changed as stream.Accounts changes, whose observer keeps the
// caches of every process true.
func New(store Store, n stream.Notifier, opts ...Option) (*Service, error) {
	if store == nil {
		return nil, errors.New("push: nil store")
	}
	if _, err := Defaults("@check:example.org"); err != nil {
		return nil, fmt.Errorf("push: embedded default rules: %w", err)
	}
	s := &Service{store: store, notifier: n}
	for _, o := range opts {
		o(s)
	}
	if n != nil {
		n.Observe(s.observe)
	}
	return s, nil
}

// observe forgets what changed accounts may have changed: their cached
// ruleset; and it counts them among the users with pushers (which may hold
// users without, never miss one with).
func (s *Service) observe(c stream.Change) {
	if c.Stream != stream.Accounts {
		return
	}
	for _, u := range c.Users {
		s.cache.Forget(u)
		s.withPushers.Store(u, struct{}{})
	}
}

// changed publishes an account's push rules or pushers as changed.
func (s *Service) changed(user id.UserID) {
	if s.notifier != nil {
		s.notifier.Publish(stream.Change{Stream: stream.Accounts, Users: []id.UserID{user}})
	}
}

// Option configures the service.
type Option func(*Service)

// WithThreadSubscriptions turns on thread subscriptions (MSC4306): the
// subscription methods and the postcontent rules that notify for
// subscribed threads only.
func WithThreadSubscriptions() Option { return func(s *Service) { s.threads = true } }

// ThreadSubscriptionsEnabled reports whether thread subscriptions are on.
func (s *Service) ThreadSubscriptionsEnabled() bool { return s.threads }

// template is the server-default ruleset parsed once, with the user
// placeholder left in; personal holds the rules that name the user.
var template struct {
	once     sync.Once
	rs       *Ruleset
	personal map[any]bool // *pushrules.PushRule or *Rule
	err      error
}

// Defaults is the server-default ruleset for a user, with every rule the
// server knows (see Service.defaults). Every user without rules of their
// own gets one, so the rules that do not name the user are shared by all
// of them (2,000 users would otherwise hold 2,000 copies of the same
// 5 KB): the rules of a ruleset, cached or not, are never changed in place
// (update works on a copy); its slices are the user's own.
func Defaults(user id.UserID) (*Ruleset, error) {
	template.once.Do(func() {
		var rs Ruleset
		if template.err = json.Unmarshal(defaultRules, &rs); template.err != nil {
			return
		}
		if len(rs.Room.Map)+len(rs.Sender.Map) > 0 {
			template.err = errors.New("push: the default rules have room or sender rules")
			return
		}
		template.rs, template.personal = &rs, map[any]bool{}
		mark := func(r any) {
			if raw, _ := json.Marshal(r); bytes.Contains(raw, []byte(userPlaceholder)) {
				template.personal[r] = true
			}
		}
		for _, arr := range []pushrules.PushRuleArray{rs.Override, rs.Content, rs.Underride} {
			for _, r := range arr {
				mark(r)
			}
		}
		for _, r := range rs.PostContent {
			mark(r)
		}
	})
	if template.err != nil {
		return nil, template.err
	}
	quoted, _ := json.Marshal(string(user))
	var err error
	rs := Ruleset{PushRuleset: pushrules.PushRuleset{
		Room:   pushrules.PushRuleArray{}.SetTypeAndMap(pushrules.RoomRule),
		Sender: pushrules.PushRuleArray{}.SetTypeAndMap(pushrules.SenderRule)}}
	for _, f := range []struct {
		dst *pushrules.PushRuleArray
		src pushrules.PushRuleArray
	}{{&rs.Override, template.rs.Override}, {&rs.Content, template.rs.Content}, {&rs.Underride, template.rs.Underride}} {
		if *f.dst, err = personalised(f.src, quoted); err != nil {
			return nil, err
		}
		for i, r := range *f.dst {
			if r != f.src[i] { // the user's own copy: Type is not in the JSON
				r.Type = f.src[i].Type
			}
		}
	}
	if rs.PostContent, err = personalised(template.rs.PostContent, quoted); err != nil {
		return nil, err
	}
	return &rs, nil
}

// personalised copies a default rule list for a user: the rules that name
// the user are parsed again with their ID, the others shared.
func personalised[R any](rules []*R, quoted []byte) ([]*R, error) {
	out := make([]*R, len(rules))
	for i, r := range rules {
		if !template.personal[r] {
			out[i] = r
			continue
		}
		raw, _ := json.Marshal(r)
		var mine R
		if err := json.Unmarshal(bytes.ReplaceAll(raw, []byte(`"`+userPlaceholder+`"`), quoted), &mine); err != nil {
			return nil, err
		}
		out[i] = &mine
	}
	return out, nil
}

// defaults is the user's default ruleset on this server: the rules of
// MSC4306 only while thread subscriptions are on (as Synapse filters them).
func (s *Service) defaults(user id.UserID) (*Ruleset, error) {
	rs, err := Defaults(user)
	if err != nil || s.threads {
		return rs, err
	}
	msc4306 := func(id string) bool { return strings.Contains(id, ".msc4306.") }
	rs.PostContent = slices.DeleteFunc(rs.PostContent, func(r *Rule) bool { return msc4306(r.RuleID) })
	return rs, nil
}

type stored struct {
	Global *Ruleset `json:"global"`
}

// Ruleset returns the user's rules: their stored ruleset, brought up to
// the server's default rules, or the defaults.
func (s *Service) Ruleset(ctx context.Context, user id.UserID) (*Ruleset, error) {
	return s.cache.Get(user, func() (*Ruleset, bool, error) {
		defs, err := s.defaults(user)
		if err != nil {
			return nil, false, err
		}
		e, err := s.store.GetAccountData(ctx, user, "", accountDataType)
		switch {
		case errors.Is(err, storage.ErrNotFound):
			return defs, true, nil
		case err != nil:
			return nil, false, err
		}
		var st stored
		if err := json.Unmarshal(e.Content, &st); err != nil || st.Global == nil {
			return nil, false, fmt.Errorf("stored push rules of %s are invalid: %v", user, err)
		}
		withDefaults(st.Global, defs)
		return st.Global, true, nil
	})
}

// AccountDataContent is the m.push_rules content a first sync gives a
// user without stored rules (every caller has just read their account data
// and found none): the server's default ruleset for them. Callers must not
// change it.
//
// It is the default ruleset's encoding with the user's ID put in, without
// loading (and caching) the user's ruleset: encoding per user and keeping
// it on their cached ruleset held 5 KB for each user who ever synced, and
// the ruleset itself 1.5 KB more for users who never get a notification
// (together 25 MB of a 4,000-user crowd's heap, twice that in RSS).
func (s *Service) AccountDataContent(_ context.Context, user id.UserID) (json.RawMessage, error) {
	tmpl, err := s.defaultTemplate()
	if err != nil {
		return nil, err
	}
	quoted, err := json.Marshal(string(user))
	if err != nil {
		return nil, err
	}
	return bytes.ReplaceAll(tmpl, []byte(`"`+userPlaceholder+`"`), quoted), nil
}

// defaultTemplate is the m.push_rules content of this server's default
// ruleset for userPlaceholder: Defaults puts a user's ID only where the
// placeholder stands as a whole JSON string, so putting the user's encoded
// ID in its place gives the content of their default ruleset.
func (s *Service) defaultTemplate() (json.RawMessage, error) {
	d := &s.defaultContent
	d.once.Do(func() {
		var rs *Ruleset
		if rs, d.err = s.defaults(userPlaceholder); d.err == nil {
			d.raw, d.err = Marshal(stored{Global: rs})
		}
	})
	return d.raw, d.err
}

// Marshal encodes push rules (a ruleset, a rule, actions) as the spec
// writes them: mautrix writes every set_tweak action with a "value", null
// when it has none, and matrix-js-sdk then reads highlight as null (no
// highlight for mentions in encrypted rooms) while nheko refuses the whole
// m.push_rules event. A set_tweak without a value is written without one.
func Marshal(v any) (json.RawMessage, error) {
	raw, err := json.Marshal(v)
	if err != nil || !bytes.Contains(raw, []byte(`"value":null`)) {
		return raw, err
	}
	var tree any
	if err := json.Unmarshal(raw, &tree); err != nil {
		return nil, err
	}
	var walk func(any)
	walk = func(n any) {
		switch n := n.(type) {
		case map[string]any:
			if _, tweak := n["set_tweak"]; tweak {
				if v, ok := n["value"]; ok && v == nil {
					delete(n, "value")
				}
			}
			for _, c := range n {
				walk(c)
			}
		case []any:
			for _, c := range n {
				walk(c)
			}
		}
	}
	walk(tree)
	return json.Marshal(tree)
}

// HasStored reports whether the user's ruleset is stored as account data
// (else sync shows the defaults once).
func (s *Service) HasStored(ctx context.Context, user id.UserID) (bool, error) {
	_, err := s.store.GetAccountData(ctx, user, "", accountDataType)
	if errors.Is(err, storage.ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// update changes a user's ruleset under the service lock and stores it.
func (s *Service) update(ctx context.Context, user id.UserID, fn func(rs *Ruleset) error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	cur, err := s.Ruleset(ctx, user)
	if err != nil {
		return err
	}
	// Work on a copy: a failed change must leave the cached ruleset alone.
	raw, _ := json.Marshal(cur)
	var rs Ruleset
	if err := json.Unmarshal(raw, &rs); err != nil {
		return err
	}
	if err := fn(&rs); err != nil {
		return err
	}
	content, err := Marshal(stored{Global: &rs})
	if err != nil {
		return err
	}
	pos, err := s.store.PutAccountData(ctx, user, "", accountDataType, content)
	if err != nil {
		return err
	}
	s.cache.Put(user, &rs)
	if s.notifier != nil {
		s.notifier.Publish(stream.Change{Stream: stream.AccountData, Pos: pos, Users: []id.UserID{user}})
	}
	s.changed(user) // other processes forget their copy (this one reloads it once)
	return nil
}

// CopyRoomRules gives a user's rules for one room to another (a room
// upgrade, as Synapse does): the room rule named after the room and the
// override and underride rules that match its room_id exactly. Rules the
// user already has for the new room are kept.
func (s *Service) CopyRoomRules(ctx context.Context, user id.UserID, from, to id.RoomID) error {
	has, err := s.HasStored(ctx, user)
	if err != nil || !has {
		return err // defaults only: nothing of the room to copy
	}
	return s.update(ctx, user, func(rs *Ruleset) error {
		if r := rs.Room.Map[string(from)]; r != nil && rs.Room.Map[string(to)] == nil {
			c := *r
			c.RuleID = string(to)
			if rs.Room.Map == nil {
				rs.Room.Map = map[string]*pushrules.PushRule{}
			}
			rs.Room.Map[string(to)] = &c
		}
		for _, arr := range []*pushrules.PushRuleArray{&rs.Override, &rs.Underride} {
			var add pushrules.PushRuleArray
			for _, r := range *arr {
				if r.Default || !matchesRoom(r, from) {
					continue
				}
				raw, _ := json.Marshal(r)
				var c pushrules.PushRule
				if json.Unmarshal(raw, &c) != nil {
					continue
				}
				c.RuleID = strings.Replace(c.RuleID, string(from), string(to), 1)
				if c.RuleID == r.RuleID {
					c.RuleID += "-" + string(to)
				}
				if _, i := find(&rs.PushRuleset, pushrules.OverrideRule, c.RuleID); i >= 0 {
					continue
				}
				if _, i := find(&rs.PushRuleset, pushrules.UnderrideRule, c.RuleID); i >= 0 {
					continue
				}
				for _, cond := range c.Conditions {
					if cond.Key == "room_id" && cond.Pattern == string(from) {
						cond.Pattern = string(to)
					}
				}
				add = append(add, &c)
			}
			*arr = append(add, *arr...)
		}
		return nil
	})
}

// matchesRoom: one of the rule's conditions is an exact room_id match of room.
func matchesRoom(r *pushrules.PushRule, room id.RoomID) bool {
	for _, c := range r.Conditions {
		if c.Kind == pushrules.KindEventMatch && c.Key == "room_id" && c.Pattern == string(room) {
			return true
		}
	}
	return false
}

var kinds = []pushrules.PushRuleType{pushrules.OverrideRule, pushrules.ContentRule, PostContentRule,
	pushrules.RoomRule, pushrules.SenderRule, pushrules.UnderrideRule}

func checkKind(kind string) (pushrules.PushRuleType, error) {
	k := pushrules.PushRuleType(kind)
	if !slices.Contains(kinds, k) {
		return "", types.InvalidParam("Unknown push rule kind %q", kind)
	}
	return k, nil
}

// findRef finds a rule of any kind.
func findRef(rs *Ruleset, kind pushrules.PushRuleType, ruleID string) (RuleRef, bool) {
	if kind == PostContentRule {
		i := slices.IndexFunc(rs.PostContent, func(r *Rule) bool { return r.RuleID == ruleID })
		if i < 0 {
			return RuleRef{}, false
		}
		return RuleRef{post: rs.PostContent[i]}, true
	}
	r, _ := find(&rs.PushRuleset, kind, ruleID)
	return RuleRef{std: r}, r != nil
}

// find returns the rule and, for array kinds, its index.
func find(rs *pushrules.PushRuleset, kind pushrules.PushRuleType, ruleID string) (*pushrules.PushRule, int) {
	switch kind {
	case pushrules.RoomRule:
		return rs.Room.Map[ruleID], -1
	case pushrules.SenderRule:
		return rs.Sender.Map[ruleID], -1
	}
	arr := array(rs, kind)
	for i, r := range *arr {
		if r.RuleID == ruleID {
			return r, i
		}
	}
	return nil, -1
}

func array(rs *pushrules.PushRuleset, kind pushrules.PushRuleType) *pushrules.PushRuleArray {
	switch kind {
	case pushrules.OverrideRule:
		return &rs.Override
	case pushrules.ContentRule:
		return &rs.Content
	default:
		return &rs.Underride
	}
}

var errNoRule = types.NotFound("Unknown push rule")

// GetRule returns one rule (GET /pushrules/global/{kind}/{ruleId}).
func (s *Service) GetRule(ctx context.Context, user id.UserID, kind, ruleID string) (RuleRef, error) {
	k, err := checkKind(kind)
	if err != nil {
		return RuleRef{}, err
	}
	rs, err := s.Ruleset(ctx, user)
	if err != nil {
		return RuleRef{}, err
	}
	r, ok := findRef(rs, k, ruleID)
	if !ok {
		return RuleRef{}, errNoRule
	}
	return r, nil
}

// RuleBody is the body of PUT /pushrules/global/{kind}/{ruleId}.
type RuleBody struct {
	Actions    pushrules.PushActionArray  `json:"actions"`
	Conditions []*pushrules.PushCondition `json:"conditions"`
	Pattern    string                     `json:"pattern"`
}

// PutRule creates or replaces a user-defined rule, placed before or after
// another user-defined rule, else first among the user's rules of its kind.
func (s *Service) PutRule(ctx context.Context, user id.UserID, kind, ruleID, before, after string, body *RuleBody) error {
	k, err := checkKind(kind)
	if err != nil {
		return err
	}
	if ruleID == "" || strings.HasPrefix(ruleID, ".") || strings.ContainsAny(ruleID, "/\\") {
		return types.InvalidParam("Rule IDs must not be empty, start with '.' or contain slashes")
	}
	if body.Actions == nil {
		return types.MissingParam("actions is required")
	}
	if err := checkActions(body.Actions); err != nil {
		return err
	}
	switch k {
	case PostContentRule:
		// MSC4306: postcontent holds the server's rules only, for now.
		return types.InvalidParam("Rules of kind postcontent cannot be added")
	case pushrules.ContentRule:
		if body.Pattern == "" {
			return types.MissingParam("pattern is required for content rules")
		}
	case pushrules.RoomRule:
		if !strings.HasPrefix(ruleID, "!") {
			return types.InvalidParam("Room rule IDs are room IDs")
		}
	case pushrules.SenderRule:
		if !strings.HasPrefix(ruleID, "@") {
			return types.InvalidParam("Sender rule IDs are user IDs")
		}
	}
	return s.update(ctx, user, func(rs *Ruleset) error {
		rule := &pushrules.PushRule{Type: k, RuleID: ruleID, Actions: body.Actions, Enabled: true,
			Conditions: body.Conditions, Pattern: body.Pattern}
		switch k {
		case pushrules.RoomRule:
			rule.Conditions = []*pushrules.PushCondition{{Kind: pushrules.KindEventMatch, Key: "room_id", Pattern: ruleID}}
			rs.Room.Map[ruleID] = rule
			return nil
		case pushrules.SenderRule:
			rule.Conditions = []*pushrules.PushCondition{{Kind: pushrules.KindEventMatch, Key: "user_id", Pattern: ruleID}}
			rs.Sender.Map[ruleID] = rule
			return nil
		}
		arr := array(&rs.PushRuleset, k)
		*arr = slices.DeleteFunc(*arr, func(r *pushrules.PushRule) bool { return r.RuleID == ruleID })
		at := 0
		if k == pushrules.OverrideRule && len(*arr) > 0 && (*arr)[0].RuleID == ".m.rule.master" {
			at = 1 // master always comes first
		}
		for _, ref := range []struct {
			id     string
			offset int
		}{{before, 0}, {after, 1}} {
			if ref.id == "" {
				continue
			}
			if strings.HasPrefix(ref.id, ".") {
				return types.InvalidParam("Rules cannot be placed relative to server-default rules")
			}
			_, i := find(&rs.PushRuleset, k, ref.id)
			if i < 0 {
				return types.NotFound("Unknown rule %q to place relative to", ref.id)
			}
			at = i + ref.offset
		}
		*arr = slices.Insert(*arr, at, rule)
		return nil
	})
}

// checkActions refuses tweak values of the wrong type: evaluating a rule
// whose sound is not a string would fail for every event it matches.
func checkActions(actions pushrules.PushActionArray) error {
	for _, a := range actions {
		if a == nil {
			return types.BadJSON("actions must not hold null")
		}
		if a.Action != pushrules.ActionSetTweak {
			continue
		}
		switch a.Tweak {
		case pushrules.TweakSound:
			if _, ok := a.Value.(string); !ok {
				return types.BadJSON("The sound tweak's value must be a string")
			}
		case pushrules.TweakHighlight:
			if _, ok := a.Value.(bool); !ok && a.Value != nil {
				return types.BadJSON("The highlight tweak's value must be a boolean")
			}
		}
	}
	return nil
}

// DeleteRule deletes a user-defined rule.
func (s *Service) DeleteRule(ctx context.Context, user id.UserID, kind, ruleID string) error {
	k, err := checkKind(kind)
	if err != nil {
		return err
	}
	if strings.HasPrefix(ruleID, ".") {
		return types.InvalidParam("Server-default rules cannot be deleted")
	}
	if k == PostContentRule {
		return errNoRule // only server-default rules, which cannot be deleted
	}
	return s.update(ctx, user, func(rs *Ruleset) error {
		switch k {
		case pushrules.RoomRule, pushrules.SenderRule:
			m := rs.Room.Map
			if k == pushrules.SenderRule {
				m = rs.Sender.Map
			}
			if _, ok := m[ruleID]; !ok {
				return errNoRule
			}
			delete(m, ruleID)
			return nil
		}
		arr := array(&rs.PushRuleset, k)
		n := len(*arr)
		*arr = slices.DeleteFunc(*arr, func(r *pushrules.PushRule) bool { return r.RuleID == ruleID })
		if len(*arr) == n {
			return errNoRule
		}
		return nil
	})
}

// SetEnabled enables or disables a rule.
func (s *Service) SetEnabled(ctx context.Context, user id.UserID, kind, ruleID string, enabled bool) error {
	return s.modify(ctx, user, kind, ruleID, func(r RuleRef) { r.setEnabled(enabled) })
}

// SetActions replaces a rule's actions.
func (s *Service) SetActions(ctx context.Context, user id.UserID, kind, ruleID string, actions pushrules.PushActionArray) error {
	if actions == nil {
		return types.MissingParam("actions is required")
	}
	if err := checkActions(actions); err != nil {
		return err
	}
	return s.modify(ctx, user, kind, ruleID, func(r RuleRef) { r.setActions(actions) })
}

func (s *Service) modify(ctx context.Context, user id.UserID, kind, ruleID string, fn func(RuleRef)) error {
	k, err := checkKind(kind)
	if err != nil {
		return err
	}
	return s.update(ctx, user, func(rs *Ruleset) error {
		r, ok := findRef(rs, k, ruleID)
		if !ok {
			return errNoRule
		}
		fn(r)
		return nil
	})
}

// RoomContext is what rule conditions may ask about the room of an event.
type RoomContext struct {
	MemberCount  int
	PowerLevels  *event.PowerLevelsEventContent
	DisplayNames map[id.UserID]string
}

type evalRoom struct {
	ctx  *RoomContext
	user id.UserID
	// memo is shared by the users an event is evaluated for (nil: none).
	memo *eventMemo
}

func (r *evalRoom) GetOwnDisplayname() string                      { return r.ctx.DisplayNames[r.user] }
func (r *evalRoom) GetMemberCount() int                            { return r.ctx.MemberCount }
func (r *evalRoom) GetPowerLevels() *event.PowerLevelsEventContent { return r.ctx.PowerLevels }

// Outcome is what a user's rules say of an event.
type Outcome struct {
	User      id.UserID
	Notify    bool
	Highlight bool
	// Actions are those of the rule that matched (for push gateways' tweaks).
	Actions pushrules.PushActionArray
}

// Evaluate runs each user's rules on an event and returns those that
// notify, in the order of users.
func (s *Service) Evaluate(ctx context.Context, room *RoomContext, ev *event.Event, users []id.UserID) ([]Outcome, error) {
	return s.AppendEvaluate(ctx, room, ev, users, nil)
}

// AppendEvaluate is Evaluate appending the outcomes to out, which a
// caller evaluating event after event may reuse.
func (s *Service) AppendEvaluate(ctx context.Context, room *RoomContext, ev *event.Event, users []id.UserID, out []Outcome) ([]Outcome, error) {
	root := threadOf(ev)
	var subscribed map[id.UserID]bool
	if root != "" && s.threads {
		subs, err := s.store.ThreadSubscribers(ctx, ev.RoomID, root)
		if err != nil {
			return nil, err
		}
		subscribed = make(map[id.UserID]bool, len(subs))
		for _, u := range subs {
			subscribed[u] = true
		}
	}
	memo := memos.Get().(*eventMemo)
	defer memo.release()
	// One room for all users, whose user changes: the rules take it as
	// an interface, and a value per user was an allocation each.
	er := &evalRoom{ctx: room, memo: memo}
	for _, u := range users {
		if u == ev.Sender {
			continue
		}
		rs, err := s.Ruleset(ctx, u)
		if err != nil {
			return nil, err
		}
		er.user = u
		actions := rs.actions(er, ev, threadState{inThread: root != "", subscribed: subscribed[u]})
		should := actions.Should()
		if should.Notify {
			out = append(out, Outcome{User: u, Notify: true, Highlight: should.Highlight, Actions: actions})
		}
	}
	return out, nil
}
